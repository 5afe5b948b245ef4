// The "try it" page: sends the photo to POST /emotion/annotate, shows the returned image
// and a table of the faces (read from the X-Emotion-Faces header) with all six scores.
"use strict";

const EMOTIONS = ["happy", "sad", "angry", "fear", "surprise", "neutral"];
const $ = (id) => document.getElementById(id);

function element(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function swatch(emotion) {
  const node = element("span", { class: "swatch" });
  node.style.background = `var(--${emotion})`;
  return node;
}

function showLegend() {
  for (const emotion of EMOTIONS) {
    const item = element("li");
    item.append(swatch(emotion), emotion);
    $("legend").append(item);
  }
  const head = $("faces-head");
  for (const emotion of EMOTIONS) head.append(element("th", { class: "score" }, emotion));
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
  document.body.dataset.state = isError ? "error" : "busy";
}

function showFaces(faces) {
  const body = $("faces").querySelector("tbody");
  body.replaceChildren();
  faces.forEach((face, index) => {
    const row = element("tr", { class: "face" });
    const name = element("td", { class: "emotion" });
    name.append(swatch(face.emotion), face.emotion);
    row.append(element("td", {}, String(index + 1)), name,
               element("td", {}, face.confidence.toFixed(2)),
               element("td", { title: "the face detector's score" },
                       face.detection_confidence == null ? "given" : face.detection_confidence.toFixed(2)),
               element("td", {}, `[${face.bounding_box.join(", ")}]`));
    for (const emotion of EMOTIONS) {
      const p = face.scores[emotion];
      const cell = element("td", { class: "score", title: `${emotion} ${p}` });
      const bar = element("div", { class: "bar" });
      const fill = element("span");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = `var(--${emotion})`;
      bar.append(fill);
      cell.append(bar, element("span", { class: "value" }, p.toFixed(2)));
      row.append(cell);
    }
    body.append(row);
  });
  $("faces").hidden = faces.length === 0;
}

async function annotate(file) {
  setStatus(`Sending ${file.name} ...`);
  const form = new FormData();
  form.append("image", file, file.name);
  let response;
  try {
    const key = $("key").value.trim();
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    response = await fetch("/emotion/annotate", { method: "POST", body: form, headers });
  } catch (error) {
    setStatus(`The service cannot be reached: ${error}`, true);
    return;
  }
  if (!response.ok) {
    if (response.status === 401) $("key-row").hidden = false;  // ask for the key, then retry
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    setStatus(message, true);
    $("result").hidden = true;
    $("faces").hidden = true;
    return;
  }
  const faces = JSON.parse(response.headers.get("X-Emotion-Faces") || "[]");
  const image = $("annotated");
  if (image.src) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(await response.blob());
  $("result").hidden = false;
  showFaces(faces);
  const count = faces.length === 1 ? "1 face" : `${faces.length} faces`;
  setStatus(faces.length ? `${file.name}: ${count}` : `${file.name}: no face found`);
  document.body.dataset.state = "done";  // tests wait for this
}

function setUp() {
  showLegend();
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) annotate(event.target.files[0]);
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) annotate(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
}

setUp();
