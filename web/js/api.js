// The HTTP API of clsp-search, one function per endpoint the page uses.
// Every failure becomes an ApiError carrying the server's own message (its JSON `message` field).
// A server with API keys answers 401 until the page sends one: the person is asked once (auth.js)
// and the call is made again with it.

import { apiKey, askForKey, withKey } from "./auth.js";

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
  for (;;) {
    let response;
    const sent = apiKey();
    try {
      response = await fetch(path, withKey(options));
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `The server cannot be reached (${err.message}).`);
    }
    if (response.status === 401) {
      // Another call may have been given the key meanwhile; otherwise ask for it.
      if (apiKey() !== sent || (await askForKey(Boolean(sent))) !== null) continue;
    }
    if (!response.ok) throw await failure(response);
    return response;
  }
}

/** A clip's audio (GET /clips/{id}/audio) as a Blob, fetched with the key when the server needs one. */
export async function clipAudio(url) {
  const response = await request(url);
  return response.blob();
}

export { apiKey };

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

/** POST /search/audio with clip ids: clips that sound like clips of the collection (`voiceWeight`:
 * 0 style alone .. 1 voice alone; null for the server's default). */
export async function searchClips({ clipIds, filter, topK, offset, voiceWeight }, signal) {
  const body = { clip_ids: clipIds, top_k: topK, offset };
  if (filter) body.filter = filter;
  if (typeof voiceWeight === "number") body.voice_weight = voiceWeight;
  return (await postJson("/search/audio", body, signal)).json();
}

/** POST /search/audio with a multipart upload: clips that sound like a recording. */
export async function searchUpload({ file, filter, topK, offset, voiceWeight }, signal) {
  const form = new FormData();
  form.append("file", file, file.name || "query.wav");
  form.append("top_k", String(topK));
  form.append("offset", String(offset));
  if (filter) form.append("filter", JSON.stringify(filter));
  if (typeof voiceWeight === "number") form.append("voice_weight", String(voiceWeight));
  return (await request("/search/audio", { method: "POST", body: form, signal })).json();
}

/** POST /export of clips picked from any result list, with the scores and ranks shown: the file (a
 * Blob: lines, a parquet or a zip, by `format`) and how many clips it holds, with and without text. */
export async function exportClips({ clips, format }) {
  const response = await postJson("/export", { ids: clips.map(({ id, score, rank }) => ({ id, score, rank })), format });
  return {
    blob: await response.blob(),
    count: Number(response.headers.get("X-Result-Count") ?? clips.length),
    untranscribed: Number(response.headers.get("X-Untranscribed-Count") ?? 0),
  };
}
