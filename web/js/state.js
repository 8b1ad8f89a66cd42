// The page's search state and its URL form, so that a search can be shared and a reload restores it.
//
//   ?q=calm+older+man            a text search
//   ?like=28                     "more like this" clip ids (comma-separated)
//   &understand=1                read the description's measurable words as constraints (0: not; absent: the server's default)
//   &drop=gender:male            understood constraints the user removed (comma-separated keys)
//   &voice=0.4                   searches by example: voice (1) <-> style (0) weight (absent: the server's default)
//   &c.gender=female&c.gender=male   category filters (one parameter per ticked value)
//   &min.duration=2&max.duration=5   range filters
//
// An uploaded or recorded query lives only in the page: a file cannot travel in a URL.

export function emptyState() {
  return { q: "", like: [], understand: null, drop: [], voice: null, categories: {}, ranges: {} };
}

export function stateFromUrl(search = window.location.search) {
  const params = new URLSearchParams(search);
  const state = emptyState();
  state.q = (params.get("q") || "").trim();
  state.like = (params.get("like") || "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
  const understand = params.get("understand");
  state.understand = understand === "1" ? true : understand === "0" ? false : null;
  state.drop = (params.get("drop") || "").split(",").map((s) => s.trim()).filter(Boolean);
  const voice = Number(params.get("voice") ?? NaN);
  state.voice = params.get("voice") !== null && Number.isFinite(voice) && voice >= 0 && voice <= 1 ? voice : null;
  for (const [key, value] of params) {
    if (key.startsWith("c.")) {
      const field = key.slice(2);
      (state.categories[field] ||= []).push(value);
    } else if (key.startsWith("min.") || key.startsWith("max.")) {
      const field = key.slice(4);
      const number = Number(value);
      if (value.trim() === "" || !Number.isFinite(number)) continue;
      (state.ranges[field] ||= {})[key.slice(0, 3)] = number;
    }
  }
  return state;
}

export function urlFromState(state) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.like.length) params.set("like", state.like.join(","));
  if (typeof state.understand === "boolean") params.set("understand", state.understand ? "1" : "0");
  if (state.drop?.length) params.set("drop", state.drop.join(","));
  if (typeof state.voice === "number") params.set("voice", String(state.voice));
  for (const [field, values] of Object.entries(state.categories)) {
    for (const value of values) params.append(`c.${field}`, value);
  }
  for (const [field, range] of Object.entries(state.ranges)) {
    if (range.min !== undefined) params.set(`min.${field}`, String(range.min));
    if (range.max !== undefined) params.set(`max.${field}`, String(range.max));
  }
  const query = params.toString();
  return query ? `?${query}` : window.location.pathname;
}

/** Record the state in the address bar; `push` adds a history entry (a new search), else replaces. */
export function writeUrl(state, push) {
  const url = urlFromState(state);
  const current = window.location.search || window.location.pathname;
  if (url === current) return;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

export function activeFilterCount(state) {
  const cats = Object.values(state.categories).filter((v) => v.length).length;
  const ranges = Object.values(state.ranges).filter((r) => r.min !== undefined || r.max !== undefined).length;
  return cats + ranges;
}
