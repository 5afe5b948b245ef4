// The "try it" page. A photo goes to POST /emotion/annotate: the returned image and a table of
// the faces (read from the X-Emotion-Faces header) with all six scores. A clip goes to
// POST /emotion/video (the JSON: one timeline of the six scores per person, drawn here as
// SVG) and POST /emotion/video/annotate (the WebM, played in a <video>), both at once.
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

function hideResults() {
  $("result").hidden = true;
  $("faces").hidden = true;
  $("clip").hidden = true;
}

// POST the file as `field` to `path`; the response, or null after showing the error.
async function send(path, field, file, fields = {}) {
  const form = new FormData();
  form.append(field, file, file.name);
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  let response;
  try {
    const key = $("key").value.trim();
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    response = await fetch(path, { method: "POST", body: form, headers });
  } catch (error) {
    setStatus(`The service cannot be reached: ${error}`, true);
    return null;
  }
  if (!response.ok) {
    if (response.status === 401) $("key-row").hidden = false;  // ask for the key, then retry
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    setStatus(message, true);
    hideResults();
    return null;
  }
  return response;
}

function isVideo(file) {
  return file.type.startsWith("video/") || /\.(mp4|mov|m4v|webm|avi|mkv)$/i.test(file.name);
}

async function annotate(file) {
  setStatus(`Sending ${file.name} ...`);
  const response = await send("/emotion/annotate", "image", file);
  if (!response) return;
  hideResults();
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

// One person's six scores over the clip: a polyline per emotion, time across, score up.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000, HEIGHT = 90;

function timeline(track, points, duration) {
  const box = element("div", { class: "timeline", "data-track": String(track.track_id) });
  const shares = EMOTIONS.filter((e) => track.frame_shares[e] >= 0.05)
    .map((e) => `${e} ${Math.round(100 * track.frame_shares[e])}%`).join(", ");
  const title = element("h3", {}, "");
  title.append(swatch(track.dominant_emotion),
               `#${track.track_id} ${track.dominant_emotion}: ${track.first_t.toFixed(1)}-${track.last_t.toFixed(1)} s, `
               + `${track.frames_seen} frames (${shares})`);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `scores of person #${track.track_id} over time`);
  const x = (t) => (WIDTH * t / Math.max(duration, 1e-6)).toFixed(1);
  const y = (p) => (HEIGHT - 4 - (HEIGHT - 8) * p).toFixed(1);
  for (const emotion of EMOTIONS) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", `score-line ${emotion}`);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", getComputedStyle(document.documentElement).getPropertyValue(`--${emotion}`).trim());
    line.setAttribute("stroke-width", emotion === track.dominant_emotion ? "3" : "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.setAttribute("points", points.map(([t, scores]) => `${x(t)},${y(scores[emotion])}`).join(" "));
    svg.append(line);
  }
  const cursor = document.createElementNS(SVG, "line");
  cursor.setAttribute("class", "cursor");
  cursor.setAttribute("y1", "0");
  cursor.setAttribute("y2", String(HEIGHT));
  cursor.setAttribute("stroke", "#000");
  cursor.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(cursor);
  box.append(title, svg);
  return box;
}

function showTimelines(answer) {
  const duration = answer.clip.duration || 0;
  const points = new Map(answer.tracks.map((track) => [track.track_id, []]));
  for (const frame of answer.frames) {
    for (const face of frame.faces) points.get(face.track_id).push([frame.t, face.scores]);
  }
  $("timelines").replaceChildren(...answer.tracks.map((track) => timeline(track, points.get(track.track_id), duration)));
  const video = $("annotated-video");
  video.ontimeupdate = () => {
    const at = (WIDTH * video.currentTime / Math.max(duration, 1e-6)).toFixed(1);
    for (const cursor of document.querySelectorAll("#timelines .cursor")) {
      cursor.setAttribute("x1", at);
      cursor.setAttribute("x2", at);
    }
  };
}

async function analyseClip(file) {
  setStatus(`Sending ${file.name} (the clip is analysed twice: for its timelines and its annotated video) ...`);
  const [answer, annotated] = await Promise.all([send("/emotion/video", "video", file),
                                                 send("/emotion/video/annotate", "video", file)]);
  if (!answer || !annotated) return;
  hideResults();
  const result = await answer.json();
  const video = $("annotated-video");
  if (video.src) URL.revokeObjectURL(video.src);
  video.src = URL.createObjectURL(await annotated.blob());
  const clip = result.clip;
  $("clip-info").textContent = `${clip.width}x${clip.height}, ${clip.duration.toFixed(1)} s at `
    + `${clip.fps.toFixed(1)} frames/s; ${clip.frames_analysed} frames analysed (${clip.analysed_fps} per second)`;
  showTimelines(result);
  $("clip").hidden = false;
  const people = result.tracks.length === 1 ? "1 person" : `${result.tracks.length} people`;
  setStatus(result.tracks.length ? `${file.name}: ${people}` : `${file.name}: no face found`);
  document.body.dataset.state = "done";  // tests wait for this
}

function take(file) {
  return isVideo(file) ? analyseClip(file) : annotate(file);
}

function setUp() {
  showLegend();
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) take(event.target.files[0]);
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) take(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
}

setUp();
