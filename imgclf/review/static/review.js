// The review page: findings from /api/state, each decision posted at once to /api/decide,
// which writes labels/decisions.csv and answers with the new state.
(() => {
  const list = document.getElementById("findings");
  const template = document.getElementById("finding");
  const kindFilter = document.getElementById("kind");
  const classFilter = document.getElementById("class");
  const showDecided = document.getElementById("show-decided");
  const status = document.getElementById("status");
  let state = null;
  let shown = []; // the findings on the page, in order
  let current = 0; // index into shown
  let currentKey = null; // the finding selected, kept when the list is drawn again
  const history = []; // keys of findings decided in this visit, for undo

  const percent = (p) => `${Math.round(100 * p)}%`;
  const decisionOf = (finding) => finding.files.map((f) => state.decisions[f]).filter(Boolean);
  const isDecided = (finding) => decisionOf(finding).length > 0;

  function describe(decision) {
    if (decision.action === "relabel") return `${decision.file}: relabelled as ${decision.label}`;
    if (decision.action === "exclude") return `${decision.file}: excluded`;
    return `${decision.file}: kept as it is`;
  }

  async function send(finding, changes, undo = false) {
    status.textContent = "";
    const response = await fetch("/api/decide", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ finding: finding.key, changes, undo }),
    });
    const answer = await response.json();
    if (!response.ok) {
      status.textContent = answer.error;
      return;
    }
    if (!undo) history.push(finding.key);
    const key = finding.key;
    state = answer;
    render(undo ? key : nextAfter(key));
  }

  // The key of the first undecided finding after `key` (the page moves on by itself).
  function nextAfter(key) {
    const at = shown.findIndex((f) => f.key === key);
    const later = shown.slice(at + 1).concat(shown.slice(0, at + 1));
    const next = later.find((f) => !isDecided(f) && f.key !== key);
    return next ? next.key : key;
  }

  function button(text, onClick, primary = false) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    if (primary) element.className = "primary";
    element.addEventListener("click", onClick);
    return element;
  }

  function relabelMenu(finding, file) {
    const menu = document.createElement("select");
    menu.setAttribute("aria-label", `relabel ${file}`);
    menu.append(new Option("Relabel as…", ""));
    for (const name of state.classes) {
      if (name !== finding.label) menu.append(new Option(name, name));
    }
    menu.addEventListener("change", () => {
      if (menu.value) send(finding, [{ file, action: "relabel", label: menu.value }]);
    });
    return menu;
  }

  // The actions of a finding by keyboard key; the buttons call the same ones.
  function actions(finding) {
    const [file] = finding.files;
    if (finding.kind === "near_duplicate") {
      const found = {};
      if (finding.files.length === 2) {
        found["1"] = ["Keep only the first", [{ file: finding.partner_file, action: "exclude" }]];
        found["2"] = ["Keep only the second", [{ file: finding.file, action: "exclude" }]];
      } else {
        found.x = [`Exclude the ${finding.split === "test" ? finding.partner_split : finding.split} copy`,
          [{ file, action: "exclude" }]];
      }
      found.b = ["Keep both", finding.files.map((f) => ({ file: f, action: "keep" }))];
      return found;
    }
    const found = {};
    if (finding.suggested && finding.suggested !== finding.label) {
      found.a = [`Take the suggestion: ${finding.suggested}`,
        [{ file, action: "relabel", label: finding.suggested }]];
    }
    found.s = [`Keep “${finding.label}”`, [{ file, action: "keep" }]];
    found.x = ["Exclude", [{ file, action: "exclude" }]];
    return found;
  }

  function figure(file, split, label) {
    const element = document.createElement("figure");
    const image = document.createElement("img");
    image.loading = "lazy";
    image.src = `/image/${file.split("/").map(encodeURIComponent).join("/")}`;
    image.alt = `${file} (${label})`;
    const caption = document.createElement("figcaption");
    caption.textContent = `${split} · ${label}`;
    element.append(image, caption);
    return element;
  }

  function card(finding, index) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.key = finding.key;
    item.querySelector(".kind").textContent = state.kinds[finding.kind];
    item.querySelector(".new").hidden = !state.since.new.includes(finding.key);
    const images = item.querySelector(".images");
    images.append(figure(finding.file, finding.split, finding.label));
    if (finding.partner_file) {
      images.append(figure(finding.partner_file, finding.partner_split, finding.partner_label));
    }
    item.querySelector(".file").textContent = finding.partner_file
      ? `${finding.file} and ${finding.partner_file}` : `${finding.split}: ${finding.file}`;
    const labels = item.querySelector(".labels");
    const given = document.createElement("span");
    given.className = "given";
    given.textContent = finding.label;
    labels.append("Label: ", given);
    if (finding.suggested) {
      const suggested = document.createElement("span");
      suggested.className = "suggested";
      suggested.textContent = finding.suggested;
      const by = finding.kind === "mistake" ? "model says" : "suggested";
      labels.append(` · ${by}: `, suggested, ` (${percent(finding.probability)})`);
    } else if (finding.kind === "outlier") {
      labels.append(` · typicality ${finding.score.toFixed(2)} (a typical image: about 0.37)`);
    } else if (finding.kind === "near_duplicate") {
      labels.append(` · distance ${finding.score.toFixed(2)} (0: identical)`);
    }
    const decided = decisionOf(finding);
    const done = item.querySelector(".decided");
    done.hidden = decided.length === 0;
    done.textContent = decided.map(describe).join("; ");
    item.classList.toggle("done", decided.length > 0);
    const bar = item.querySelector(".actions");
    for (const [key, [text, changes]] of Object.entries(actions(finding))) {
      bar.append(button(`${text} (${key})`, () => send(finding, changes), key === "a"));
    }
    if (finding.kind !== "near_duplicate") bar.append(relabelMenu(finding, finding.files[0]));
    if (decided.length) bar.append(button("Undo (u)", () => undo(finding)));
    item.addEventListener("click", () => select(index, false));
    return item;
  }

  function undo(finding) {
    send(finding, finding.files.filter((f) => state.decisions[f]).map((file) => ({ file })), true);
  }

  function matches(finding) {
    if (kindFilter.value && finding.kind !== kindFilter.value) return false;
    const names = [finding.label, finding.suggested, finding.partner_label];
    if (classFilter.value && !names.includes(classFilter.value)) return false;
    return showDecided.checked || !isDecided(finding);
  }

  function select(index, scroll = true) {
    const items = list.children;
    if (!items.length) return;
    current = Math.max(0, Math.min(index, items.length - 1));
    currentKey = shown[current].key;
    for (const item of items) item.classList.remove("current");
    items[current].classList.add("current");
    if (scroll) items[current].scrollIntoView({ block: "nearest" });
  }

  function render(keepKey) {
    shown = state.findings.filter((f) => matches(f) || f.key === keepKey);
    list.replaceChildren(...shown.map(card));
    document.getElementById("empty").hidden = shown.length > 0;
    const reviewed = state.findings.filter(isDecided).length;
    document.getElementById("progress").textContent =
      `${reviewed} of ${state.findings.length} reviewed`;
    const at = shown.findIndex((f) => f.key === (keepKey || currentKey));
    select(at >= 0 ? at : current);
  }

  function fillFilters() {
    for (const [kind, words] of Object.entries(state.kinds)) {
      const count = state.findings.filter((f) => f.kind === kind).length;
      kindFilter.append(new Option(`${words} (${count})`, kind));
    }
    for (const name of state.classes) classFilter.append(new Option(name, name));
    const problems = document.getElementById("problems");
    problems.hidden = state.problems.length === 0;
    problems.textContent = state.problems.join(" · ");
    document.getElementById("decisions-file").textContent = state.decisions_file;
    const since = state.since;
    if (since.when && (since.resolved || since.new.length)) {
      const banner = document.getElementById("since");
      banner.hidden = false;
      banner.textContent = `Since your last decision (${since.when}): ${since.resolved} ` +
        `finding(s) gone, ${since.new.length} new (marked “new”).`;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLSelectElement || event.target instanceof HTMLInputElement) return;
    const finding = shown[current];
    if (event.key === "ArrowDown" || event.key === "j") select(current + 1);
    else if (event.key === "ArrowUp" || event.key === "k") select(current - 1);
    else if (event.key === "u") {
      const key = history.pop() || (finding && finding.key);
      const target = state.findings.find((f) => f.key === key);
      if (target && isDecided(target)) undo(target);
    } else if (finding && actions(finding)[event.key]) send(finding, actions(finding)[event.key][1]);
    else return;
    event.preventDefault();
  });
  for (const control of [kindFilter, classFilter, showDecided]) {
    control.addEventListener("change", () => render(null));
  }

  fetch("/api/state").then((r) => r.json()).then((answer) => {
    state = answer;
    fillFilters();
    render(null);
  });
})();
