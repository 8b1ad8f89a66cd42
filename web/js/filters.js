// Filter controls built from GET /collection facets, and the filter tree the API takes.
// Categories (text, booleans, list items) become checkboxes; numbers become min/max inputs.

import { el } from "./dom.js";

const NOT_FILTERS = new Set([
  "id", "source_key", "source_path", "segment", "start", "end", "added_at", "manifest_duration",
  "manifest_sample_rate", "global_caption", "fine_captions", "text", "heldout_phrasing",
]);
const MAX_CHOICES = 30;
const ORDER = [
  "gender", "age", "accent", "pitch_level", "pitch_variation", "speaking_rate", "loudness", "timbre",
  "whisper", "noise", "noise_color", "reverb", "channel", "telephone", "speaker", "language", "engine", "split",
  "duration", "pitch_semitones", "pitch_spread_semitones", "rate_factor", "loudness_dbfs", "snr_db", "reverberance",
  // Measured at indexing time (searchengine/attributes), present on every collection, captioned or not.
  "m_gender", "m_pitch_word", "m_monotony_word", "m_rate_word", "m_noise_word", "m_reverb_word",
  "m_dnsmos_ovrl", "m_dnsmos_sig", "m_dnsmos_bak", "m_snr_db", "m_f0_median_hz", "m_f0_spread_st",
  "m_rate_syl_per_s", "m_loudness_dbfs", "m_reverb_db",
];
const LABELS = {
  duration: "Duration (s)",
  pitch_semitones: "Pitch (semitones)",
  pitch_spread_semitones: "Pitch spread (semitones)",
  rate_factor: "Speaking rate (×)",
  loudness_dbfs: "Loudness (dBFS)",
  snr_db: "Signal to noise (dB)",
  reverberance: "Reverberance (%)",
  pitch_level: "Pitch",
  pitch_variation: "Intonation",
  speaking_rate: "Speed",
  noise_color: "Noise colour",
  sample_rate: "Sample rate (Hz)",
  m_gender: "Measured gender",
  m_pitch_word: "Measured pitch",
  m_monotony_word: "Measured intonation",
  m_rate_word: "Measured pace",
  m_noise_word: "Measured noise",
  m_reverb_word: "Measured distance",
  m_dnsmos_ovrl: "Quality, DNSMOS overall (1-5)",
  m_dnsmos_sig: "Quality, DNSMOS speech (1-5)",
  m_dnsmos_bak: "Quality, DNSMOS background (1-5)",
  m_snr_db: "Measured SNR (dB)",
  m_f0_median_hz: "Median F0 (Hz)",
  m_f0_spread_st: "F0 spread (semitones)",
  m_rate_syl_per_s: "Syllables per second",
  m_loudness_dbfs: "Measured loudness (dBFS)",
  m_reverb_db: "Reverb tail (dB)",
};

export function labelOf(field) {
  if (LABELS[field]) return LABELS[field];
  const words = field.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function isCategory(facet) {
  if (!["text", "boolean", "list"].includes(facet.type) || !facet.values || facet.truncated) return false;
  const real = facet.values.filter((v) => v.value !== null);
  return real.length >= 2 && real.length <= MAX_CHOICES;
}

function isRange(facet) {
  return facet.type === "number" && typeof facet.min === "number" && typeof facet.max === "number" && facet.min < facet.max;
}

function rank(field) {
  const i = ORDER.indexOf(field);
  return i === -1 ? ORDER.length : i;
}

/** The facets worth a control, in display order: [{field, facet, kind: "category" | "range"}]. */
export function filterableFacets(facets) {
  const out = [];
  for (const [field, facet] of Object.entries(facets || {})) {
    if (NOT_FILTERS.has(field)) continue;
    if (isCategory(facet)) out.push({ field, facet, kind: "category" });
    else if (isRange(facet)) out.push({ field, facet, kind: "range" });
  }
  return out.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "category" ? -1 : 1) || rank(a.field) - rank(b.field)
    || a.field.localeCompare(b.field));
}

function typed(facet, value) {
  if (facet.type === "boolean") return value === "true";
  return value;
}

/** The API's filter tree (a list of conditions, all of which must hold), or null for none. */
export function filterTree(state, facets) {
  const conditions = [];
  for (const [field, values] of Object.entries(state.categories)) {
    const facet = facets[field];
    if (!facet || !values.length) continue;
    conditions.push({ field, op: "in", value: values.map((v) => typed(facet, v)) });
  }
  for (const [field, range] of Object.entries(state.ranges)) {
    if (!facets[field]) continue;
    const { min, max } = range;
    if (min !== undefined && max !== undefined) conditions.push({ field, op: "between", value: [min, max] });
    else if (min !== undefined) conditions.push({ field, op: ">=", value: min });
    else if (max !== undefined) conditions.push({ field, op: "<=", value: max });
  }
  return conditions.length ? conditions : null;
}

function pretty(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  if (typeof value === "number" && !Number.isInteger(value)) return String(Math.round(value * 100) / 100);
  return String(value);
}

function step(facet) {
  const span = facet.max - facet.min;
  if (Number.isInteger(facet.min) && Number.isInteger(facet.max) && facet.sql_type && /INT/.test(facet.sql_type)) return "1";
  return span > 50 ? "1" : span > 5 ? "0.1" : "0.01";
}

function categoryControl(field, facet, state, onChange) {
  const chosen = new Set(state.categories[field] || []);
  const box = el("fieldset", { class: "facet-options" }, el("legend", { class: "visually-hidden" }, labelOf(field)));
  for (const { value, count } of facet.values) {
    if (value === null) continue;
    const id = `f-${field}-${String(value).replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const input = el("input", { type: "checkbox", id, value: String(value), "data-field": field });
    input.checked = chosen.has(String(value));
    input.addEventListener("change", () => {
      const values = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      if (values.length) state.categories[field] = values;
      else delete state.categories[field];
      onChange();
    });
    box.append(el("div", { class: "option" }, input,
      el("label", { for: id }, pretty(value), " ", el("span", { class: "count" }, `(${count})`))));
  }
  return box;
}

function rangeControl(field, facet, state, onChange) {
  const range = state.ranges[field] || {};
  const wrap = el("fieldset", { class: "facet-range" }, el("legend", { class: "visually-hidden" }, labelOf(field)));
  for (const side of ["min", "max"]) {
    const id = `f-${side}-${field}`;
    const input = el("input", {
      type: "number", id, step: step(facet), inputmode: "decimal", "data-field": field, "data-side": side,
      placeholder: pretty(facet[side]), min: String(facet.min), max: String(facet.max),
    });
    if (range[side] !== undefined) input.value = String(range[side]);
    input.addEventListener("change", () => {
      const r = { ...(state.ranges[field] || {}) };
      const number = input.value.trim() === "" ? NaN : Number(input.value);
      if (Number.isFinite(number)) r[side] = number;
      else delete r[side];
      if (r.min === undefined && r.max === undefined) delete state.ranges[field];
      else state.ranges[field] = r;
      onChange();
    });
    wrap.append(el("div", { class: "range-side" }, el("label", { for: id }, side === "min" ? "from" : "to"), input));
  }
  wrap.append(el("p", { class: "range-hint" }, `${pretty(facet.min)} – ${pretty(facet.max)}`));
  return wrap;
}

/** Draw the filter controls for `facets` into `container`; `onChange` runs after each edit. */
export function renderFilters(container, facets, state, onChange) {
  container.replaceChildren();
  const items = filterableFacets(facets);
  if (!items.length) {
    container.append(el("p", { class: "muted" }, "This collection has no columns to filter on."));
    return;
  }
  for (const { field, facet, kind } of items) {
    const active = kind === "category" ? (state.categories[field] || []).length > 0 : field in state.ranges;
    const details = el("details", { class: `facet facet--${kind}`, "data-facet": field });
    details.open = active;
    details.append(
      el("summary", {}, labelOf(field), active ? el("span", { class: "dot", "aria-label": "active" }) : ""),
      kind === "category" ? categoryControl(field, facet, state, onChange) : rangeControl(field, facet, state, onChange),
    );
    container.append(details);
  }
}
