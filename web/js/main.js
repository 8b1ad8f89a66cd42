// The page: wires the search box, audio queries, filters, results and export together.

import { ApiError, getCollection, searchClips, searchText, searchUpload } from "./api.js";
import { el } from "./dom.js";
import { exportHits } from "./export.js";
import { filterTree, markActive, renderFilters } from "./filters.js";
import { canRecord, startRecording } from "./recorder.js";
import { chipFields, renderHits } from "./results.js";
import { activeFilterCount, emptyState, stateFromUrl, writeUrl } from "./state.js";
import { renderUnderstanding } from "./understanding.js";

const PAGE = 20;
const $ = (id) => document.getElementById(id);

const page = {
  state: stateFromUrl(),
  upload: null, // the File of an audio query (not in the URL)
  collection: null,
  ready: null, // resolves to true once the collection (and its facets) is loaded
  facets: {},
  hits: [],
  candidates: 0,
  selected: new Set(),
  controller: null,
  recording: null,
};

function mode() {
  if (page.upload) return "upload";
  if (page.state.like.length) return "like";
  if (page.state.q) return "text";
  return "none";
}

// ------------------------------------------------------------------ states: loading, error, empty
function setStatus(text) {
  $("status").textContent = text;
}

function showError(message, kind = "error") {
  const box = $("error");
  box.replaceChildren(el("strong", {}, kind === "upload" ? "Upload rejected. " : "Something went wrong. "), message);
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

function showEmpty(content) {
  const box = $("empty");
  box.replaceChildren(...content);
  box.hidden = false;
}

function setLoading(loading) {
  document.querySelector(".results").setAttribute("aria-busy", String(loading));
  document.body.classList.toggle("loading", loading);
}

// ------------------------------------------------------------------ what is being searched
function describeQuery() {
  const box = $("current-query");
  const m = mode();
  if (m === "none") {
    box.hidden = true;
    showVoiceControl(false);
    return;
  }
  const clear = el("button", { type: "button", class: "link", onclick: () => resetQuery() }, "Clear");
  let text;
  if (m === "text") text = ["Voices like ", el("q", {}, page.state.q)];
  else if (m === "like") text = [`Sounds like clip${page.state.like.length > 1 ? "s" : ""} `, el("strong", {}, page.state.like.join(", "))];
  else text = ["Sounds like ", el("strong", {}, page.upload.name || "your recording")];
  box.replaceChildren(el("span", {}, ...text), clear);
  box.hidden = false;
  showVoiceControl(m === "like" || m === "upload");
}

// ------------------------------------------------------------------ voice <-> style, for searches by example
function defaultVoiceWeight() {
  const value = page.collection?.defaults?.voice_weight;
  return typeof value === "number" ? value : 0.5;
}

function showVoiceControl(shown) {
  const box = $("voice-control");
  box.hidden = !shown;
  if (!shown) return;
  const value = typeof page.state.voice === "number" ? page.state.voice : defaultVoiceWeight();
  $("voice-weight").value = String(value);
  $("voice-weight-value").textContent = voiceText(value);
}

function voiceText(value) {
  const voice = Math.round(value * 100);
  return `${voice} % voice, ${100 - voice} % style`;
}

function setupVoiceControl() {
  const slider = $("voice-weight");
  slider.addEventListener("input", () => { $("voice-weight-value").textContent = voiceText(Number(slider.value)); });
  slider.addEventListener("change", () => {
    page.state = { ...page.state, voice: Number(slider.value) };
    writeUrl(page.state, false);
    search();
  });
}

function resetQuery() {
  page.state = { ...emptyState(), understand: page.state.understand, categories: page.state.categories, ranges: page.state.ranges };
  page.upload = null;
  $("q").value = "";
  writeUrl(page.state, true);
  search();
  $("q").focus();
}

// ------------------------------------------------------------------ searching
function currentFilter() {
  return filterTree(page.state, page.facets);
}

async function search({ append = false } = {}) {
  page.controller?.abort();
  const controller = new AbortController();
  page.controller = controller;
  if (!page.collection) {
    // The filters need the collection's facets: wait for them (a search typed meanwhile wins).
    if (!(await page.ready) || controller !== page.controller) return;
  }
  clearError();
  describeQuery();
  updateFilterBadge();
  $("empty").hidden = true;
  if (!append) {
    page.hits = [];
    page.selected.clear();
    $("hits").replaceChildren();
    $("toolbar").hidden = true;
    $("more").hidden = true;
  }
  const m = mode();
  if (m === "none") {
    setStatus("");
    showUnderstanding(null);
    showEmpty([
      el("p", { class: "lead" }, "Describe a voice, click an example, or search with a recording."),
      el("p", { class: "muted" }, "Results can be played, filtered, compared (“more like this”) and exported as a training manifest."),
    ]);
    return;
  }
  const args = { filter: currentFilter(), topK: PAGE, offset: append ? page.hits.length : 0 };
  setLoading(true);
  setStatus(append ? "Loading more results…" : "Searching…");
  try {
    let result;
    if (m === "text") {
      const { understand, drop } = page.state;
      result = await searchText({ ...args, query: page.state.q, understand, drop }, controller.signal);
    }
    else if (m === "like") result = await searchClips({ ...args, clipIds: page.state.like, voiceWeight: page.state.voice }, controller.signal);
    else result = await searchUpload({ ...args, file: page.upload, voiceWeight: page.state.voice }, controller.signal);
    if (controller !== page.controller) return;
    showResults(result, append);
  } catch (err) {
    if (err.name === "AbortError" || controller !== page.controller) return;
    setStatus("");
    const rejected = m === "upload" && err instanceof ApiError && [400, 413, 415, 422].includes(err.status);
    showError(err.message, rejected ? "upload" : "error");
  } finally {
    if (controller === page.controller) setLoading(false);
  }
}

function showResults(result, append) {
  if (!append) showUnderstanding(mode() === "text" ? result : null);
  const hits = result.hits.filter((h) => !page.hits.some((old) => old.id === h.id));
  page.hits.push(...hits);
  page.candidates = result.candidates;
  renderHits($("hits"), hits, {
    fields: chipFields(page.facets),
    selected: page.selected,
    onSelect: (id, on) => {
      if (on) page.selected.add(id);
      else page.selected.delete(id);
      updateSelection();
    },
    onMoreLike: (hit) => moreLike(hit),
  });
  const shown = page.hits.length;
  if (!shown) {
    setStatus("No results.");
    const filters = activeFilterCount(page.state);
    showEmpty([
      el("p", { class: "lead" }, "No clips match this search."),
      el("p", { class: "muted" }, filters
        ? `${result.candidates} clip${result.candidates === 1 ? "" : "s"} pass the ${filters} active filter${filters === 1 ? "" : "s"}; loosen or clear them to see more.`
        : "Try another description."),
    ]);
    return;
  }
  const of = result.candidates > shown ? ` of ${result.candidates} candidates` : "";
  setStatus(`${shown} result${shown === 1 ? "" : "s"}${of} · ${Math.round(result.took_ms)} ms`);
  $("toolbar").hidden = false;
  $("more").hidden = !(result.hits.length === result.top_k && shown < result.candidates);
  updateSelection();
}

// ------------------------------------------------------------------ what the description was understood to ask
function showUnderstanding(result) {
  if (result && typeof result.understand === "boolean" && page.state.understand === null) {
    $("understand").checked = result.understand; // the server's default, until the person chooses
  }
  renderUnderstanding($("understood"), result, {
    onDrop: (key) => setDrop([...page.state.drop.filter((k) => k !== key), key]),
    onRestore: (key) => setDrop(page.state.drop.filter((k) => k !== key)),
  });
}

function setDrop(drop) {
  page.state = { ...page.state, drop };
  writeUrl(page.state, true);
  search();
}

function setUnderstand(on) {
  page.state = { ...page.state, understand: on, drop: [] };
  writeUrl(page.state, true);
  if (mode() === "text") search();
}

function moreLike(hit) {
  page.state = { ...page.state, q: "", like: [hit.id], drop: [] };
  page.upload = null;
  $("q").value = "";
  writeUrl(page.state, true);
  search();
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function searchTextQuery(text) {
  const q = text.trim();
  if (!q) {
    $("q").focus();
    return;
  }
  page.state = { ...page.state, q, like: [], drop: [] };
  page.upload = null;
  $("q").value = q;
  writeUrl(page.state, true);
  search();
}

// ------------------------------------------------------------------ audio queries
const AUDIO_TYPES = /^(audio\/|video\/(webm|ogg)$|application\/ogg$)/;

function searchFile(file) {
  clearError();
  const limit = page.collection?.limits?.max_upload_bytes;
  if (file.type && !AUDIO_TYPES.test(file.type)) {
    showError(`${file.name} is not an audio file (${file.type}).`, "upload");
    return;
  }
  if (limit && file.size > limit) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${(limit / 2 ** 20).toFixed(0)} MB.`, "upload");
    return;
  }
  page.upload = file;
  page.state = { ...page.state, q: "", like: [], drop: [] };
  $("q").value = "";
  writeUrl(page.state, true);
  search();
}

async function toggleRecording() {
  const button = $("record");
  if (page.recording) {
    const recording = page.recording;
    page.recording = null;
    clearInterval(recording.timer);
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
    button.classList.remove("recording");
    try {
      searchFile(await recording.stop());
    } catch (err) {
      showError(`The recording could not be used (${err.message}).`, "upload");
    }
    return;
  }
  clearError();
  try {
    const recording = await startRecording();
    page.recording = recording;
    button.setAttribute("aria-pressed", "true");
    button.classList.add("recording");
    const tick = () => { button.textContent = `Stop (${recording.elapsed().toFixed(0)} s)`; };
    tick();
    recording.timer = setInterval(tick, 250);
  } catch (err) {
    showError(`The microphone is not available (${err.message || err.name}).`);
  }
}

function setupDrop() {
  const zone = $("drop-zone");
  let depth = 0;
  zone.addEventListener("dragenter", (e) => { e.preventDefault(); depth++; zone.classList.add("dragging"); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; zone.classList.remove("dragging"); } });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    const file = e.dataTransfer.files?.[0];
    if (file) searchFile(file);
  });
}

// ------------------------------------------------------------------ filters
function updateFilterBadge() {
  const n = activeFilterCount(page.state);
  $("filter-count").textContent = String(n);
  $("filter-count").hidden = n === 0;
  $("clear-filters").hidden = n === 0;
}

function drawFilters() {
  renderFilters($("filters"), page.facets, page.state, () => {
    writeUrl(page.state, false);
    markActive($("filters"), page.facets, page.state);
    search();
  });
  updateFilterBadge();
}

// ------------------------------------------------------------------ selection and export
function updateSelection() {
  const n = page.selected.size;
  $("selected-count").textContent = `${n} selected`;
  $("export-selected").disabled = n === 0;
  $("export-all").disabled = page.hits.length === 0;
  $("select-all").textContent = n && n === page.hits.length ? "Select none" : "Select all";
}

function toggleAll() {
  const all = page.selected.size !== page.hits.length;
  page.selected.clear();
  if (all) page.hits.forEach((h) => page.selected.add(h.id));
  for (const box of document.querySelectorAll("#hits input.select")) box.checked = all;
  updateSelection();
}

async function runExport(onlySelected) {
  clearError();
  const format = $("export-format").value;
  setStatus("Preparing the export…");
  try {
    const { count, untranscribed } = await exportHits({
      name: mode() === "text" ? page.state.q : "similar",
      hits: page.hits,
      selected: onlySelected ? page.selected : null,
      format,
    });
    const label = $("export-format").selectedOptions[0]?.textContent ?? format;
    const untold = untranscribed ? ` (${untranscribed} without a transcript: their text is empty)` : "";
    setStatus(`Exported ${count} row${count === 1 ? "" : "s"} as ${label}${untold}.`);
  } catch (err) {
    setStatus("");
    showError(err.message);
  }
}

// ------------------------------------------------------------------ start
function describeCollection(info) {
  const clips = info.counts?.clips ?? 0;
  const hours = (info.counts?.audio_seconds ?? 0) / 3600;
  const duration = hours >= 1 ? `${hours.toFixed(1)} h` : `${Math.round(hours * 60)} min`;
  $("collection-info").textContent = `${clips.toLocaleString()} clips · ${duration} of audio · model ${info.model_id}`;
}

function restore() {
  page.state = stateFromUrl();
  page.upload = null;
  $("q").value = page.state.q;
  if (typeof page.state.understand === "boolean") $("understand").checked = page.state.understand;
  drawFilters();
  search();
}

async function start() {
  $("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    searchTextQuery($("q").value);
  });
  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => searchTextQuery(button.textContent));
  }
  $("upload").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    $("file").value = "";
    if (file) searchFile(file);
  });
  $("record").addEventListener("click", toggleRecording);
  if (typeof page.state.understand === "boolean") $("understand").checked = page.state.understand;
  $("understand").addEventListener("change", () => setUnderstand($("understand").checked));
  if (!canRecord()) {
    $("record").disabled = true;
    $("record").title = "This browser cannot record audio here (it needs a secure origin and a microphone).";
  }
  setupDrop();
  setupVoiceControl();
  $("clear-filters").addEventListener("click", () => {
    page.state = { ...page.state, categories: {}, ranges: {} };
    writeUrl(page.state, false);
    drawFilters();
    search();
  });
  $("select-all").addEventListener("click", toggleAll);
  $("export-selected").addEventListener("click", () => runExport(true));
  $("export-all").addEventListener("click", () => runExport(false));
  $("more").addEventListener("click", () => search({ append: true }));
  window.addEventListener("popstate", restore);
  if (window.matchMedia("(max-width: 760px)").matches) $("filters-panel").open = false;

  $("q").value = page.state.q;
  page.ready = loadCollection();
  search();
}

async function loadCollection() {
  try {
    page.collection = await getCollection();
  } catch (err) {
    $("collection-info").textContent = "The collection could not be loaded.";
    $("filters").replaceChildren(el("p", { class: "muted" }, "Filters are unavailable."));
    showError(err.message);
    return false;
  }
  page.facets = page.collection.facets || {};
  describeCollection(page.collection);
  drawFilters();
  return true;
}

start();
