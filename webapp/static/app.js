// Classify one image or many: choose, drop (files or a folder) or paste them. Each image
// is shrunk in the browser before upload (the model looks at a few dozen pixels; the
// original is never sent), the images go to /predict a batch at a time, and each gets a
// card: thumbnail, label, confidence, top classes, and on request the Grad-CAM heatmap
// (/predict?explain=1). Text from the server is only ever set with textContent, so
// class names cannot run script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (!form) return;
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const template = document.getElementById("card-template");
  const imageSize = Number(form.dataset.imageSize);
  const maxFiles = Number(form.dataset.maxFiles);
  const topK = form.dataset.topK;
  // A side a few times the model's input: enough for the decoder, tiny to upload.
  const uploadSide = Math.max(256, 4 * imageSize);
  let run = 0; // a new choice of images replaces the cards of the previous one
  let thumbnails = []; // object URLs the cards show, freed when the cards are replaced

  function showStatus(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  // The image as a PNG no larger than uploadSide, upright (EXIF orientation applied);
  // the file itself when the browser cannot decode it (the server then says why).
  async function shrink(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (error) {
      return file;
    }
    const scale = Math.min(1, uploadSide / Math.max(bitmap.width, bitmap.height));
    if (scale === 1 && file.size < 512 * 1024) {
      bitmap.close();
      return file; // already small: send it as it is
    }
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const context = canvas.getContext("2d");
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    return blob || file;
  }

  // The thumbnail is the shrunk image, so a phone photo is decoded once, not kept whole.
  function showThumbnail(card, blob) {
    const url = URL.createObjectURL(blob);
    thumbnails.push(url);
    card.querySelector(".thumb").src = url;
  }

  // A server with IMGCLF_API_TOKEN asks for it once; the browser keeps it for this
  // session only (sessionStorage), and asks again if the server refuses it.
  const TOKEN_KEY = "imgclf-api-token";

  function authorization(askAgain) {
    if (form.dataset.tokenRequired !== "true") return {};
    let token = sessionStorage.getItem(TOKEN_KEY);
    if (!token || askAgain) {
      token = window.prompt("This server needs its API token:") || "";
      sessionStorage.setItem(TOKEN_KEY, token);
    }
    return { Authorization: `Bearer ${token}` };
  }

  async function post(uploads, query, askAgain = false) {
    const body = new FormData();
    for (const upload of uploads) body.append("file", upload.blob, upload.name);
    const response = await fetch(`${form.action}?${query}`, {
      method: "POST",
      body,
      headers: { Accept: "application/json", ...authorization(askAgain) },
    });
    if (response.status === 401 && !askAgain) return post(uploads, query, true);
    const answer = await response.json();
    return { ok: response.ok, status: response.status, answer };
  }

  function addCard(file) {
    const card = template.content.firstElementChild.cloneNode(true);
    const thumb = card.querySelector(".thumb");
    thumb.addEventListener("error", () => thumb.classList.add("broken"));
    thumb.alt = file.name;
    card.querySelector(".file").textContent = file.name;
    card.querySelector(".label").textContent = "Classifying…";
    results.appendChild(card);
    return card;
  }

  function showAnswer(card, answer, upload) {
    const label = card.querySelector(".label");
    // "not sure — maybe Sandal" below the model's confidence threshold.
    label.textContent = answer.answer || answer.prediction;
    label.classList.toggle("uncertain", Boolean(answer.uncertain));
    // Unlike the training images: said plainly, the best guess still shown but greyed.
    card.querySelector(".unfamiliar-note").hidden = !answer.unfamiliar;
    card.querySelector(".answer").classList.toggle("unfamiliar", Boolean(answer.unfamiliar));
    card.querySelector(".confidence").textContent =
      `${(answer.confidence * 100).toFixed(1)}% confident`;
    const bars = card.querySelector(".bars");
    bars.replaceChildren();
    for (const [name, probability] of Object.entries(answer.probabilities)) {
      const item = document.createElement("li");
      const nameSpan = document.createElement("span");
      nameSpan.className = "name";
      nameSpan.textContent = name;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(probability * 100).toFixed(1)}%`;
      bar.appendChild(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(probability * 100).toFixed(1)}%`;
      item.append(nameSpan, bar, value);
      bars.appendChild(item);
    }
    const toggle = card.querySelector(".explain-toggle");
    toggle.closest("label").hidden = false;
    toggle.addEventListener("change", () => showHeatmap(card, toggle, upload));
    card.classList.add("done");
  }

  function showError(card, message) {
    const label = card.querySelector(".label");
    label.textContent = message;
    label.classList.add("error");
    card.classList.add("failed", "done");
  }

  async function showHeatmap(card, toggle, upload) {
    const heatmap = card.querySelector(".heatmap");
    if (toggle.checked && !heatmap.getAttribute("src")) {
      try {
        const { ok, status: code, answer } = await post([upload], `top_k=${topK}&explain=1`);
        if (!ok) throw new Error(answer.error || `The server answered ${code}.`);
        heatmap.src = `data:image/png;base64,${answer.heatmap_png}`;
      } catch (error) {
        toggle.checked = false;
        showError(card, error.message || "The heatmap could not be made.");
        return;
      }
    }
    heatmap.hidden = !toggle.checked;
  }

  // Several images per request; if the server refuses a batch (one bad file refuses
  // the whole request), its images are sent one by one so each card gets its answer.
  async function classifyBatch(uploads, cards, thisRun) {
    let reply;
    try {
      reply = await post(uploads, `top_k=${topK}`);
    } catch (error) {
      cards.forEach((card) => showError(card, "The server could not be reached; try again."));
      return;
    }
    if (thisRun !== run) return;
    if (reply.ok) {
      const answers = uploads.length > 1 ? reply.answer : [reply.answer];
      answers.forEach((answer, i) => showAnswer(cards[i], answer, uploads[i]));
    } else if (uploads.length > 1) {
      for (let i = 0; i < uploads.length; i += 1) {
        await classifyBatch([uploads[i]], [cards[i]], thisRun);
      }
    } else {
      showError(cards[0], reply.answer.error || `The server answered ${reply.status}.`);
    }
  }

  async function classify(files) {
    const images = Array.from(files);
    if (!images.length) {
      showStatus("Choose an image first.", true);
      return;
    }
    run += 1;
    const thisRun = run;
    thumbnails.forEach((url) => URL.revokeObjectURL(url));
    thumbnails = [];
    results.replaceChildren();
    results.hidden = false;
    showStatus(images.length > 1 ? `Classifying ${images.length} images…` : "", false);
    const cards = images.map(addCard);
    for (let start = 0; start < images.length; start += maxFiles) {
      const uploads = [];
      for (const file of images.slice(start, start + maxFiles)) {
        // One at a time: a 12-megapixel photo takes about 50 MB while it is decoded.
        const blob = await shrink(file);
        if (thisRun !== run) return;
        showThumbnail(cards[start + uploads.length], blob);
        uploads.push({ name: file.name, blob });
      }
      await classifyBatch(uploads, cards.slice(start, start + maxFiles), thisRun);
    }
    if (thisRun !== run) return;
    const failed = results.querySelectorAll(".failed").length;
    showStatus(
      failed ? `${failed} of ${images.length} could not be classified.` : "",
      Boolean(failed),
    );
  }

  // Files from a drop, walking dropped folders where the browser allows it.
  async function droppedFiles(dataTransfer) {
    const entries = Array.from(dataTransfer.items || [])
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    if (!entries.some((entry) => entry.isDirectory)) return Array.from(dataTransfer.files);
    const files = [];
    async function walk(entry) {
      if (entry.isFile) {
        files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        let batch;
        do {
          batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
          for (const child of batch) await walk(child);
        } while (batch.length);
      }
    }
    for (const entry of entries) await walk(entry);
    return files.filter((file) => file.type.startsWith("image/"));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    classify(input.files);
  });
  input.addEventListener("change", () => classify(input.files));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    classify(await droppedFiles(event.dataTransfer));
  });
  document.addEventListener("paste", (event) => {
    const pasted = Array.from(event.clipboardData ? event.clipboardData.files : []);
    if (pasted.length) {
      event.preventDefault();
      classify(pasted);
    }
  });
});
