// A small waveform picture of a clip, drawn on a canvas from the decoded audio (WebAudio
// decodeAudioData), with the played part highlighted and click/arrow-key seeking on the player.
// Clips are fetched and decoded only when their row scrolls into view. Behind an API key, the
// fetched clip also becomes the player's source (an <audio> element cannot send the key).

import { clipAudio } from "./api.js";

let decoder = null;

function audioContext() {
  // An OfflineAudioContext decodes without a user gesture and never plays anything.
  decoder ||= new OfflineAudioContext(1, 1, 16000);
  return decoder;
}

/** min/max pairs per pixel column of the first channel. */
export function peaks(samples, columns) {
  const out = new Float32Array(columns * 2);
  const per = Math.max(1, Math.floor(samples.length / columns));
  for (let c = 0; c < columns; c++) {
    let lo = 0;
    let hi = 0;
    const end = Math.min(samples.length, (c + 1) * per);
    for (let i = c * per; i < end; i++) {
      const s = samples[i];
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    out[2 * c] = lo;
    out[2 * c + 1] = hi;
  }
  return out;
}

function colors(canvas) {
  const style = getComputedStyle(canvas);
  return {
    wave: style.getPropertyValue("--wave").trim() || "#9aa4b2",
    played: style.getPropertyValue("--wave-played").trim() || "#3056d3",
  };
}

function draw(canvas, data, fraction) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 240;
  const height = canvas.clientHeight || 48;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const { wave, played } = colors(canvas);
  const columns = data.length / 2;
  const barWidth = width / columns;
  let top = 0;
  for (let c = 0; c < columns; c++) top = Math.max(top, -data[2 * c], data[2 * c + 1]);
  const scale = top > 0 ? (height / 2 - 1) / top : 0;
  const mid = height / 2;
  for (let c = 0; c < columns; c++) {
    ctx.fillStyle = c / columns < fraction ? played : wave;
    const y0 = mid - data[2 * c + 1] * scale;
    const y1 = mid - data[2 * c] * scale;
    ctx.fillRect(c * barWidth, y0, Math.max(1, barWidth - 0.5), Math.max(1, y1 - y0));
  }
}

async function load(canvas, url, audio) {
  const blob = await clipAudio(url);
  if (!audio.getAttribute("src")) audio.src = URL.createObjectURL(blob);
  const buffer = await audioContext().decodeAudioData(await blob.arrayBuffer());
  const data = peaks(buffer.getChannelData(0), 160);
  const redraw = () => draw(canvas, data, audio.duration ? audio.currentTime / audio.duration : 0);
  redraw();
  canvas.dataset.state = "drawn";
  audio.addEventListener("timeupdate", redraw);
  audio.addEventListener("seeked", redraw);
  new ResizeObserver(redraw).observe(canvas);
}

const observer = "IntersectionObserver" in window
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      entry.target.__startWaveform?.();
    }
  }, { rootMargin: "200px" })
  : null;

/** Attach a lazily drawn waveform of `url` to `canvas`, synchronised with the `audio` element. */
export function attachWaveform(canvas, url, audio) {
  canvas.dataset.state = "pending";
  canvas.__startWaveform = () => load(canvas, url, audio).catch(() => {
    canvas.dataset.state = "failed";
    canvas.title = "The waveform could not be drawn for this clip.";
  });
  canvas.addEventListener("click", (event) => {
    if (!audio.duration) return;
    const rect = canvas.getBoundingClientRect();
    audio.currentTime = ((event.clientX - rect.left) / rect.width) * audio.duration;
  });
  if (observer) observer.observe(canvas);
  else canvas.__startWaveform();
}
