// Upload an image to /predict and show the label, its confidence and a bar per class;
// on request, fetch the Grad-CAM heatmap (/predict?explain=1) and lay it over the preview.
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
  const heatmap = document.getElementById("heatmap");
  const toggle = document.getElementById("explain-toggle");
  let previewUrl = null;
  let currentFile = null;

  function showStatus(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function showPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.src = previewUrl;
  }

  async function post(file, query) {
    const body = new FormData();
    body.append("file", file);
    const response = await fetch(`${form.action}?${query}`, {
      method: "POST",
      body,
      headers: { Accept: "application/json" },
    });
    return { response, answer: await response.json() };
  }

  function showAnswer(answer) {
    const label = document.getElementById("label");
    // "not sure — maybe Sandal" below the model's confidence threshold.
    label.textContent = answer.answer || answer.prediction;
    label.classList.toggle("uncertain", Boolean(answer.uncertain));
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
    currentFile = file;
    heatmap.hidden = true;
    heatmap.removeAttribute("src");
    toggle.checked = false;
    result.hidden = true;
    showStatus(`Classifying ${file.name}…`, false);
    try {
      const { response, answer } = await post(file, `top_k=${form.dataset.topK}`);
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

  async function showHeatmap() {
    if (!toggle.checked) {
      heatmap.hidden = true;
      return;
    }
    if (!heatmap.getAttribute("src")) {
      const file = currentFile;
      showStatus("Computing the heatmap…", false);
      try {
        const { response, answer } = await post(file, `top_k=${form.dataset.topK}&explain=1`);
        if (file !== currentFile) return; // another image was chosen meanwhile
        if (!response.ok) {
          showStatus(answer.error || `The server answered ${response.status}.`, true);
          toggle.checked = false;
          return;
        }
        heatmap.src = `data:image/png;base64,${answer.heatmap_png}`;
        showStatus("", false);
      } catch (error) {
        showStatus("The server could not be reached; try again.", true);
        toggle.checked = false;
        return;
      }
    }
    heatmap.hidden = !toggle.checked;
  }

  toggle.addEventListener("change", showHeatmap);
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
