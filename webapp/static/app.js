// Upload an image to /predict and show the label, its confidence and a bar per class.
// Text from the server is only ever set with textContent, so class names cannot run script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (!form) return;
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  const status = document.getElementById("status");
  const result = document.getElementById("result");
  const preview = document.getElementById("preview");
  let previewUrl = null;

  function showStatus(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function showPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
  }

  function showAnswer(answer) {
    document.getElementById("label").textContent = answer.prediction;
    document.getElementById("confidence").textContent =
      `${(answer.confidence * 100).toFixed(1)}% confident`;
    const bars = document.getElementById("bars");
    bars.replaceChildren();
    for (const [name, probability] of Object.entries(answer.probabilities)) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(probability * 100).toFixed(1)}%`;
      bar.appendChild(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(probability * 100).toFixed(1)}%`;
      item.append(label, bar, value);
      bars.appendChild(item);
    }
    result.hidden = false;
  }

  async function classify(file) {
    if (!file) {
      showStatus("Choose an image first.", true);
      return;
    }
    showPreview(file);
    result.hidden = true;
    showStatus(`Classifying ${file.name}…`, false);
    const body = new FormData();
    body.append("file", file);
    try {
      const response = await fetch(`${form.action}?top_k=${form.dataset.topK}`, {
        method: "POST",
        body,
        headers: { Accept: "application/json" },
      });
      const answer = await response.json();
      if (!response.ok) {
        showStatus(answer.error || `The server answered ${response.status}.`, true);
        return;
      }
      showStatus("", false);
      showAnswer(answer);
    } catch (error) {
      showStatus("The server could not be reached; try again.", true);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    classify(input.files[0]);
  });
  input.addEventListener("change", () => classify(input.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    classify(event.dataTransfer.files[0]);
  });
});
