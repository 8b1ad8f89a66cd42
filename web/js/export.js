// Export through POST /export: the whole result list, or only the ticked rows, of any search (text,
// upload, recording, "more like this"), in any of the server's formats (manifest lines, NeMo, lhotse,
// a Hugging Face parquet, an LJSpeech zip). The page sends the clip ids with the scores and ranks it
// shows, so the file holds exactly those rows; it is offered as a download.

import { exportClips } from "./api.js";

/** The file name's ending per format: what each trainer's tools expect to be given. */
export const EXTENSIONS = {
  jsonl: "jsonl", csv: "csv", nemo: "nemo.json", lhotse: "cuts.jsonl", hf: "parquet", ljspeech: "ljspeech.zip",
};

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "search";
}

/**
 * Export `hits` (all, or those whose ids are in `selected`) as the page shows them, in `format`
 * (jsonl, csv, nemo, lhotse, hf, ljspeech). Returns how many clips the file holds and how many of
 * them have no transcript (a text-to-speech trainer needs one).
 */
export async function exportHits({ name, hits, selected, format }) {
  const chosen = selected ? hits.filter((h) => selected.has(h.id)) : hits;
  if (!chosen.length) return { count: 0, untranscribed: 0 };
  const { blob, count, untranscribed } = await exportClips({ clips: chosen, format });
  const what = selected ? "selection" : "results";
  download(blob, `clsp-${slug(name)}-${what}.${EXTENSIONS[format] ?? format}`);
  return { count, untranscribed };
}
