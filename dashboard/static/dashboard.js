// imgrec dashboard: uploads (picker, drag and drop, webcam) and result drawing on the Try-it page.
// Every string from a file name or a model goes in through textContent, never innerHTML.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("files");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const SVG = "http://www.w3.org/2000/svg";
  const LISTED = 10;  // detections listed under an image (all are drawn)

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawBoxes(frame, result) {
    // The overlay's viewBox is the image's own pixel grid, so a box drawn at the API's
    // [x1, y1, x2, y2] lands on the same pixels whatever size the image is displayed at.
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + result.width + " " + result.height);
    svg.setAttribute("preserveAspectRatio", "none");
    for (const det of result.detections) {
      const [x1, y1, x2, y2] = det.box;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", "box");
      rect.setAttribute("x", x1);
      rect.setAttribute("y", y1);
      rect.setAttribute("width", x2 - x1);
      rect.setAttribute("height", y2 - y1);
      rect.dataset.box = JSON.stringify(det.box);
      rect.dataset.label = det.label;
      const title = document.createElementNS(SVG, "title");
      title.textContent = det.label + " " + det.score.toFixed(3);
      rect.appendChild(title);
      svg.appendChild(rect);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", x1 + 2);
      label.setAttribute("y", Math.max(y1 - 3, 12));
      label.textContent = det.label + " " + det.score.toFixed(2);
      svg.appendChild(label);
    }
    frame.appendChild(svg);
  }

  function show(result) {
    const card = el("article", { class: "result" });
    card.appendChild(el("h3", {}, result.name));
    if (result.error) {
      card.classList.add("failed");
      const p = el("p", { class: "error", "data-code": result.error.code });
      p.appendChild(el("code", {}, "error[" + result.error.code + "]"));
      p.appendChild(document.createTextNode(" " + result.error.message));
      card.appendChild(p);
      if (result.error.hint) card.appendChild(el("p", { class: "hint" }, result.error.hint));
      results.appendChild(card);
      return;
    }
    const frame = el("div", { class: "frame" });
    frame.appendChild(el("img", { src: result.preview, alt: result.name,
                                  "data-width": result.width, "data-height": result.height }));
    card.appendChild(frame);
    const list = el("ol", { class: "predictions" });
    if (result.detections) {
      drawBoxes(frame, result);
      card.classList.add("detect");
      const shown = result.detections.slice(0, LISTED);
      const more = result.detections.length - shown.length;
      card.appendChild(el("p", { class: "note" }, result.detections.length + " objects" +
                                                  (more > 0 ? " (" + LISTED + " best listed)" : "")));
      for (const det of shown) {
        list.appendChild(el("li", {}, det.label + " " + det.score.toFixed(3) +
                                      " at [" + det.box.map((v) => v.toFixed(0)).join(", ") + "]"));
      }
    } else {
      for (const p of result.predictions || []) {
        const li = el("li", { "data-label": p.label, "data-score": p.score },
                      p.label + " " + p.score.toFixed(3));
        const bar = el("span", { class: "bar" });
        bar.style.width = Math.round(p.score * 120) + "px";  // CSSOM: allowed by the CSP
        li.appendChild(bar);
        list.appendChild(li);
      }
    }
    card.appendChild(list);
    card.appendChild(el("p", { class: "note" }, result.width + "×" + result.height +
                                                " px, model version " + (result.model_version || "?")));
    results.appendChild(card);
  }

  async function send(files) {
    if (!files.length) return;
    const body = new FormData();
    for (const f of files) body.append("files", f, f.name);
    status.textContent = "sending " + files.length + " file(s)…";
    try {
      const response = await fetch(form.dataset.upload, { method: "POST", body });
      const doc = await response.json();
      if (!response.ok) {
        status.textContent = "";
        show({ name: files.length + " file(s)", error: doc.error });
        return;
      }
      status.textContent = doc.results.length + " result(s)";
      doc.results.forEach(show);
    } catch (err) {
      status.textContent = "the upload failed: " + err;
    }
  }

  input.addEventListener("change", () => { send(Array.from(input.files)); input.value = ""; });
  form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("over");
    send(Array.from(e.dataTransfer.files));
  });

  const start = document.getElementById("webcam-start");
  const video = document.getElementById("webcam");
  const snap = document.getElementById("webcam-snap");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    start.hidden = true;  // not allowed here (e.g. not a secure context)
    return;
  }
  start.addEventListener("click", async () => {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
      video.hidden = false;
      snap.hidden = false;
    } catch (err) {
      status.textContent = "the webcam is not available: " + err.message;
    }
  });
  snap.addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      send([new File([blob], "webcam-" + new Date().toISOString() + ".jpg", { type: "image/jpeg" })]);
    }, "image/jpeg", 0.92);
  });
})();
