// The result list: one card per clip with its player, waveform, score, captions and attributes.

import { apiKey } from "./api.js";
import { el } from "./dom.js";
import { filterableFacets, labelOf } from "./filters.js";
import { attachWaveform } from "./waveform.js";

const NOT_CHIPS = new Set(["split", "engine"]);
// How a value reads on its own, for columns whose bare values ("medium", "white") need a noun.
const CHIP_TEXT = {
  accent: (v) => `${v} accent`,
  pitch_level: (v) => `${v} pitch`,
  pitch_variation: (v) => `${v} intonation`,
  speaking_rate: (v) => `${v} pace`,
  loudness: (v) => `${v} volume`,
  noise_color: (v) => `${v} noise`,
};

/** The categorical columns shown as chips, in the filters' order. */
export function chipFields(facets) {
  return filterableFacets(facets).filter((f) => f.kind === "category" && !NOT_CHIPS.has(f.field)).map((f) => f.field);
}

function chips(clip, fields) {
  const list = el("ul", { class: "chips", "aria-label": "Attributes" });
  const seen = new Set(); // "telephone" may be both a channel and a flag: say it once
  for (const field of fields) {
    const value = clip[field];
    if (value === null || value === undefined || value === false) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      const text = v === true ? labelOf(field).toLowerCase() : (CHIP_TEXT[field] || String)(v);
      if (seen.has(text)) continue;
      seen.add(text);
      list.append(el("li", { class: "chip", title: labelOf(field), "data-field": field }, text));
    }
  }
  return list;
}

function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(1)} s` : "";
}

function scoreLine(hit) {
  const parts = Object.entries(hit.scores || {}).map(([k, v]) => `${k} ${v.toFixed(3)}`);
  return parts.join(" · ");
}

function hitCard(hit, { fields, selected, onSelect, onMoreLike }) {
  const clip = hit.clip || {};
  const title = hit.captions?.global || hit.caption?.text || clip.text || `Clip ${hit.id}`;
  const headingId = `hit-title-${hit.id}`;
  const select = el("input", { type: "checkbox", class: "select", id: `select-${hit.id}`, "data-clip-id": hit.id });
  select.checked = selected.has(hit.id);
  select.addEventListener("change", () => onSelect(hit.id, select.checked));

  // Behind a key the waveform loader fetches the clip and gives the player a blob URL of it.
  const audio = el("audio", { controls: true, preload: "metadata", src: apiKey() ? null : hit.audio_url,
    "aria-labelledby": headingId });
  const canvas = el("canvas", { class: "wave", "aria-hidden": "true", width: 240, height: 48 });
  attachWaveform(canvas, hit.audio_url, audio);

  // What is said, where the source gave it (a transcript or text column): what a TTS or ASR set needs.
  const transcript = clip.transcript
    ? el("p", { class: "transcript" }, el("span", { class: "label" }, "Transcript: "), clip.transcript)
    : null;
  const fine = hit.captions?.fine || [];
  const matched = hit.caption && hit.caption.text !== title
    ? el("p", { class: "matched" }, el("span", { class: "label" }, `Matched ${hit.caption.kind} caption: `), hit.caption.text)
    : null;
  const fineBlock = fine.length
    ? el("details", { class: "fine" },
      el("summary", {}, `${fine.length} fine-grained caption${fine.length === 1 ? "" : "s"}`),
      el("ul", {}, ...fine.map((t) => el("li", {}, t))))
    : null;

  const more = el("button", { type: "button", class: "secondary more-like", "data-clip-id": hit.id }, "More like this");
  more.addEventListener("click", () => onMoreLike(hit));

  return el("li", { class: "hit", "data-clip-id": hit.id, "aria-labelledby": headingId },
    el("div", { class: "hit-head" },
      el("span", { class: "select-wrap" }, select,
        el("label", { for: `select-${hit.id}`, class: "visually-hidden" }, `Select clip ${hit.id} for export`)),
      el("span", { class: "rank", "aria-label": `rank ${hit.rank}` }, `#${hit.rank}`),
      el("h3", { id: headingId, class: "title" }, title),
      el("span", { class: "score", title: scoreLine(hit) }, el("span", { class: "visually-hidden" }, "score "),
        hit.score.toFixed(hit.score < 0.1 ? 4 : 3))),
    el("div", { class: "player" }, canvas, audio),
    chips(clip, fields),
    transcript,
    matched,
    fineBlock,
    el("div", { class: "hit-foot" },
      el("span", { class: "meta" }, [clip.source_key, seconds(clip.duration), `clip ${hit.id}`].filter(Boolean).join(" · ")),
      more));
}

// One clip at a time: starting a player pauses the others.
document.addEventListener("play", (event) => {
  for (const audio of document.querySelectorAll("li.hit audio")) if (audio !== event.target) audio.pause();
}, true);

/** Append cards for `hits` to the list element. */
export function renderHits(list, hits, options) {
  list.append(...hits.map((hit) => hitCard(hit, options)));
}
