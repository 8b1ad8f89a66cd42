// Filter controls built from GET /collection facets, and the filter tree the API takes.
// One facet per fact (gender, pitch, pace, ...): its sources are the columns holding it, grouped as
// declared (the manifest) and measured (from the audio). Categories (text, booleans, list items) become
// checkboxes; numbers become min/max inputs under a histogram of the collection's clips.

import { el } from "./dom.js";

const MAX_CHOICES = 30;
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

function isCategory(source) {
  if (source.kind !== "category" || !source.values) return false;
  const real = source.values.filter((v) => v.value !== null);
  return real.length >= 2 && real.length <= MAX_CHOICES;
}

function isRange(source) {
  return source.kind === "range" && typeof source.min === "number" && typeof source.max === "number" && source.min < source.max;
}

/** Every facet source worth a control, fact by fact in the server's order:
 * [{field, facet: source, fact, kind: "category" | "range"}]. */
export function filterableFacets(facets) {
  const out = [];
  for (const [fact, info] of Object.entries(facets || {})) {
    for (const source of info.sources || []) {
      if (isCategory(source)) out.push({ field: source.field, facet: source, fact, kind: "category" });
      else if (isRange(source)) out.push({ field: source.field, facet: source, fact, kind: "range" });
    }
  }
  return out;
}

function sourcesByField(facets) {
  return Object.fromEntries(filterableFacets(facets).map((s) => [s.field, s.facet]));
}

function typed(source, value) {
  if (source.type === "boolean") return value === "true";
  return value;
}

/** The API's filter tree (a list of conditions, all of which must hold), or null for none. */
export function filterTree(state, facets) {
  const sources = sourcesByField(facets);
  const conditions = [];
  for (const [field, values] of Object.entries(state.categories)) {
    const source = sources[field];
    if (!source || !values.length) continue;
    conditions.push({ field, op: "in", value: values.map((v) => typed(source, v)) });
  }
  for (const [field, range] of Object.entries(state.ranges)) {
    if (!sources[field]) continue;
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

function step(source) {
  const span = source.max - source.min;
  if (Number.isInteger(source.min) && Number.isInteger(source.max) && source.sql_type && /INT/.test(source.sql_type)) return "1";
  return span > 50 ? "1" : span > 5 ? "0.1" : "0.01";
}

function categoryControl(field, source, state, onChange) {
  const chosen = new Set(state.categories[field] || []);
  const box = el("fieldset", { class: "facet-options" }, el("legend", { class: "visually-hidden" }, source.label || labelOf(field)));
  for (const { value, count } of source.values) {
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

/** How the collection's clips spread over a number: one bar per histogram bin, the median marked. */
function distribution(field, source) {
  const counts = source.histogram?.counts || [];
  const top = Math.max(1, ...counts);
  const edges = source.histogram?.edges || [];
  const bars = counts.map((n, i) => el("span", {
    class: "bar", style: `height: ${Math.max(n ? 8 : 0, Math.round((n / top) * 100))}%`,
    title: `${pretty(edges[i])} – ${pretty(edges[i + 1])}: ${n} clip${n === 1 ? "" : "s"}`,
  }));
  const q = source.quantiles || {};
  const summary = `${pretty(source.min)} – ${pretty(source.max)}` + (q.p50 !== undefined ? ` · median ${pretty(q.p50)}` : "")
    + (source.missing ? ` · ${source.missing} without a value` : "");
  return [
    el("div", { class: "histogram", role: "img", "data-field": field,
      "aria-label": `Distribution: ${counts.join(", ")} clips in ${counts.length} equal steps from ${pretty(source.min)} to ${pretty(source.max)}` }, ...bars),
    el("p", { class: "range-hint" }, summary),
  ];
}

function rangeControl(field, source, state, onChange) {
  const range = state.ranges[field] || {};
  const wrap = el("fieldset", { class: "facet-range" }, el("legend", { class: "visually-hidden" }, source.label || labelOf(field)));
  wrap.append(...distribution(field, source));
  for (const side of ["min", "max"]) {
    const id = `f-${side}-${field}`;
    const input = el("input", {
      type: "number", id, step: step(source), inputmode: "decimal", "data-field": field, "data-side": side,
      placeholder: pretty(source[side]), min: String(source.min), max: String(source.max),
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
  return wrap;
}

function isActive(field, state) {
  return (state.categories[field] || []).length > 0 || field in state.ranges;
}

/** Mark the facts with an active filter (a dot after their name). */
export function markActive(container, facets, state) {
  const byFact = {};
  for (const { fact, field } of filterableFacets(facets)) (byFact[fact] ||= []).push(field);
  for (const details of container.querySelectorAll(".facet")) {
    const active = (byFact[details.dataset.facet] || []).some((f) => isActive(f, state));
    details.querySelector("summary .dot")?.remove();
    if (active) details.querySelector("summary").append(el("span", { class: "dot", "aria-label": "active" }));
  }
}

/** Draw one control group per fact into `container` (declared and measured sources apart, each
 * labelled); `onChange` runs after each edit. */
export function renderFilters(container, facets, state, onChange) {
  container.replaceChildren();
  const items = filterableFacets(facets);
  if (!items.length) {
    container.append(el("p", { class: "muted" }, "This collection has no columns to filter on."));
    return;
  }
  const byFact = new Map();
  for (const item of items) {
    if (!byFact.has(item.fact)) byFact.set(item.fact, []);
    byFact.get(item.fact).push(item);
  }
  for (const [fact, sources] of byFact) {
    const active = sources.some(({ field }) => isActive(field, state));
    const details = el("details", { class: "facet", "data-facet": fact });
    details.open = active;
    details.append(el("summary", {}, facets[fact].label || labelOf(fact),
      active ? el("span", { class: "dot", "aria-label": "active" }) : ""));
    for (const origin of ["declared", "measured"]) {
      const group = sources.filter(({ facet }) => facet.origin === origin);
      if (!group.length) continue;
      const box = el("div", { class: "facet-group", "data-origin": origin },
        el("p", { class: "origin" }, group[0].facet.origin_label || origin));
      for (const { field, facet, kind } of group) {
        box.append(el("div", { class: `facet-source facet--${kind}`, "data-field": field },
          el("p", { class: "source-label" }, facet.label || labelOf(field)),
          kind === "category" ? categoryControl(field, facet, state, onChange) : rangeControl(field, facet, state, onChange)));
      }
      details.append(box);
    }
    container.append(details);
  }
}
