// The HTTP API of clsp-search, one function per endpoint the page uses.
// Every failure becomes an ApiError carrying the server's own message (its JSON `message` field).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(response) {
  let code = "error";
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
    if (body && body.error) code = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new ApiError(0, "network", `The server cannot be reached (${err.message}).`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

function postJson(path, body, signal) {
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

/** GET /collection: counts, model, limits and the facets the filters are built from. */
export async function getCollection() {
  return (await request("/collection")).json();
}

/** POST /search/text: clips matching a description (`understand`: null for the server's default;
 * `drop`: understood constraints to leave out). */
export async function searchText({ query, filter, topK, offset, understand, drop }, signal) {
  const body = { query, top_k: topK, offset };
  if (filter) body.filter = filter;
  if (typeof understand === "boolean") body.understand = understand;
  if (drop?.length) body.drop = drop;
  return (await postJson("/search/text", body, signal)).json();
}

/** POST /search/audio with clip ids: clips that sound like clips of the collection. */
export async function searchClips({ clipIds, filter, topK, offset }, signal) {
  const body = { clip_ids: clipIds, top_k: topK, offset };
  if (filter) body.filter = filter;
  return (await postJson("/search/audio", body, signal)).json();
}

/** POST /search/audio with a multipart upload: clips that sound like a recording. */
export async function searchUpload({ file, filter, topK, offset }, signal) {
  const form = new FormData();
  form.append("file", file, file.name || "query.wav");
  form.append("top_k", String(topK));
  form.append("offset", String(offset));
  if (filter) form.append("filter", JSON.stringify(filter));
  return (await request("/search/audio", { method: "POST", body: form, signal })).json();
}

/** POST /export: the top `n` clips of a text search as JSONL or CSV text. */
/** Manifest lines for clips picked from any result list (text or audio search), as the page ranked them. */
export async function exportClips({ ids, scores, ranks, format }) {
  const response = await postJson("/export", { ids, scores, ranks, format });
  return response.text();
}
