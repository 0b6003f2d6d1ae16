"""The app's one page: choose or drop an audio file, see its top tags, its log-mel spectrogram and the
timeline of what each crop of the clip heard. Plain HTML and JavaScript, no outside resource, so it
works offline; the page sends the file to `POST /api/tag` and draws the JSON it gets back."""

from __future__ import annotations

import html
import json

TOP_COLOURS = ("#d9480f", "#1971c2", "#2f9e44")  # the top three tags: bars and timeline lines alike

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audio tagging kit: __MODEL__</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 1.2em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  .model { color: #666; margin: 0 0 1em; }
  #drop { border: 2px dashed #999; border-radius: 8px; padding: 1.4em; text-align: center; background: #fafafa; }
  #drop.over { border-color: #1971c2; background: #e7f5ff; }
  .limits { color: #666; font-size: .9em; margin: .5em 0 0; }
  #status { min-height: 1.5em; margin: .8em 0; }
  #status.error { color: #c92a2a; font-weight: 600; }
  #result[hidden] { display: none; }
  #tags { list-style: none; padding: 0; margin: 0 0 1em; }
  #tags li { display: grid; grid-template-columns: 14em 1fr 4.5em; align-items: center; gap: .6em; margin: .3em 0; }
  .bar { background: #eee; border-radius: 4px; height: 1.1em; overflow: hidden; }
  .fill { height: 100%; }
  .prob { text-align: right; font-variant-numeric: tabular-nums; }
  .panel { position: relative; width: 100%; }
  #spectrogram { display: block; width: 100%; height: 200px; image-rendering: auto; }
  #strongest { position: absolute; top: 0; height: 200px; border: 2px solid #fff; box-sizing: border-box;
               pointer-events: none; }
  svg { display: block; width: 100%; height: 150px; border-left: 1px solid #ccc; border-bottom: 1px solid #ccc;
        box-sizing: border-box; }
  .axis { color: #666; font-size: .8em; display: flex; justify-content: space-between; }
  .legend span { margin-right: 1.2em; }
  .legend i { display: inline-block; width: 1.4em; height: .3em; vertical-align: middle; margin-right: .3em; }
  .caption { color: #666; font-size: .9em; margin: .3em 0 1em; }
</style>
</head>
<body>
<h1>What does the model hear?</h1>
<p class="model">Model: <b>__MODEL__</b></p>
<div id="drop">
  <p>Drop an audio file here, or <input id="file" type="file" accept="audio/*,.wav,.flac,.ogg,.mp3,.aiff,.aif,.au"></p>
  <p class="limits">Any format the kit decodes (WAV, FLAC, OGG, MP3, AIFF, ...), up to __MAX_SIZE__ and
  __MAX_SECONDS__ s long; the model listens to the first __TAGGED_SECONDS__ s.</p>
</div>
<div id="status" role="status"></div>
<section id="result" hidden>
  <h2 id="file-name"></h2>
  <p id="notes" class="caption"></p>
  <ol id="tags"></ol>
  <div class="panel"><img id="spectrogram" alt="log-mel spectrogram"><div id="strongest"></div></div>
  <div class="axis"><span>0 s</span><span id="axis-end"></span></div>
  <p class="caption">Log-mel spectrogram (low frequencies at the bottom). The white box is the crop
  where the top tag is most probable.</p>
  <div class="axis"><span id="timeline-top"></span></div>
  <svg id="timeline" viewBox="0 0 1000 150" preserveAspectRatio="none"></svg>
  <div class="axis"><span>0 s</span><span id="timeline-end"></span></div>
  <p class="caption legend" id="legend"></p>
  <p class="caption">Each point is one crop of <span id="crop-seconds"></span> s laid across the clip:
  how probable each of the top tags is in that part alone. The tags above are the model's answer for
  the whole clip (its test-time crops, as in a submission).</p>
</section>
<script>
const LIMITS = __LIMITS__;
const COLOURS = __COLOURS__;
const drop = document.getElementById("drop"), input = document.getElementById("file");
const statusLine = document.getElementById("status"), result = document.getElementById("result");

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
  statusLine.setAttribute("role", isError ? "alert" : "status");
}

async function tag(file) {
  result.hidden = true;
  if (file.size > LIMITS.max_bytes) {
    say(`${file.name}: too big (${(file.size / 1048576).toFixed(2)} MB); the limit is ${LIMITS.max_size}`, true);
    return;
  }
  say(`Tagging ${file.name} ...`, false);
  let answer;
  try {
    const response = await fetch("/api/tag?name=" + encodeURIComponent(file.name), {method: "POST", body: file});
    answer = await response.json();
  } catch (error) {
    say(`${file.name}: no answer from the app (${error.message}); is it still running?`, true);
    return;
  }
  if (!answer.ok) { say(answer.error, true); return; }
  say(`Tagged in ${answer.elapsed_seconds.toFixed(2)} s.`, false);
  show(answer);
}

function show(answer) {
  document.getElementById("file-name").textContent = `${answer.file} (${answer.file_seconds.toFixed(1)} s)`;
  document.getElementById("notes").textContent = answer.notes.map(n => `${answer.file}: ${n}`).join("; ");
  const list = document.getElementById("tags");
  list.replaceChildren();
  answer.top.forEach((t, i) => {
    const item = document.createElement("li");
    const label = document.createElement("span"); label.className = "label"; label.textContent = t.label;
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = (100 * t.probability).toFixed(1) + "%"; fill.style.background = COLOURS[i];
    bar.appendChild(fill);
    const prob = document.createElement("span"); prob.className = "prob"; prob.textContent = t.probability.toFixed(3);
    item.append(label, bar, prob);
    list.appendChild(item);
  });
  document.getElementById("spectrogram").src = answer.spectrogram;
  const total = Math.max(answer.seconds, answer.timeline.crop_seconds, 1e-3);
  const line = answer.timeline;
  const box = document.getElementById("strongest");
  const start = line.starts[line.strongest] || 0;
  box.style.left = (100 * start / total) + "%";
  box.style.width = (100 * Math.min(line.crop_seconds, total - start) / total) + "%";
  document.getElementById("axis-end").textContent = answer.seconds.toFixed(1) + " s";
  document.getElementById("timeline-end").textContent = answer.seconds.toFixed(1) + " s";
  document.getElementById("crop-seconds").textContent = line.crop_seconds.toFixed(1);
  drawTimeline(answer, total);
  result.hidden = false;
}

function drawTimeline(answer, total) {
  const svg = document.getElementById("timeline"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  const line = answer.timeline;
  const columns = answer.top.map(t => answer.labels.indexOf(t.label));
  // The scale fits the highest point drawn, so an unsure model's lines are not flat on the floor.
  const highest = Math.max(0.01, ...line.probabilities.flatMap(row => columns.map(c => row[c])));
  document.getElementById("timeline-top").textContent = `probability (top of the chart: ${highest.toFixed(2)})`;
  answer.top.forEach((t, i) => {
    const column = columns[i];
    const points = line.starts.map((s, k) => {
      const x = 1000 * Math.min(s + line.crop_seconds / 2, total) / total;
      return `${x.toFixed(1)},${(145 - 140 * line.probabilities[k][column] / highest).toFixed(1)}`;
    });
    if (points.length === 1) points.push(points[0].replace(/^[^,]+/, "1000"), points[0].replace(/^[^,]+/, "0"));
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("points", points.join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", COLOURS[i]);
    path.setAttribute("stroke-width", "3");
    path.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(path);
    const key = document.createElement("span");
    const swatch = document.createElement("i"); swatch.style.background = COLOURS[i];
    key.append(swatch, document.createTextNode(t.label));
    legend.appendChild(key);
  });
}

input.addEventListener("change", () => { if (input.files.length) tag(input.files[0]); });
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) tag(e.dataTransfer.files[0]);
});
</script>
</body>
</html>
"""


def _script_json(value) -> str:
    """JSON that cannot close the script element it is written into."""
    return json.dumps(value).replace("</", "<\\/")


def render_page(*, model: str, max_bytes: int, max_size: str, max_seconds: float, tagged_seconds: float) -> str:
    """The page for a model and the server's limits (`max_size`: max_bytes as the server words it)."""
    values = {"__MODEL__": html.escape(model), "__MAX_SIZE__": html.escape(max_size),
              "__MAX_SECONDS__": f"{max_seconds:g}", "__TAGGED_SECONDS__": f"{tagged_seconds:g}",
              "__LIMITS__": _script_json({"max_bytes": max_bytes, "max_size": max_size, "max_seconds": max_seconds}),
              "__COLOURS__": _script_json(list(TOP_COLOURS))}
    page = _PAGE
    for token, value in values.items():
        page = page.replace(token, value)
    return page
