// Export through POST /export: the whole result list, or only the ticked rows, of any search (text,
// upload, recording, "more like this"). The page sends the clip ids with the scores and ranks it
// shows, so the file holds exactly those rows; it is offered as a download.

import { exportClips } from "./api.js";

/** Split CSV text into records, keeping each record's raw text (quoted fields may hold newlines). */
export function csvRecords(text) {
  const records = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === "\n" && !quoted) {
      records.push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  if (start < text.length) records.push(text.slice(start));
  return records;
}

export function download(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
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
 * Export `hits` (all, or those whose ids are in `selected`) as the page shows them.
 * Returns the number of rows written to the file.
 */
export async function exportHits({ name, hits, selected, format }) {
  const chosen = selected ? hits.filter((h) => selected.has(h.id)) : hits;
  if (!chosen.length) return 0;
  const text = await exportClips({ clips: chosen, format });
  const rows = format === "csv" ? Math.max(0, csvRecords(text).length - 1) : text.split("\n").filter(Boolean).length;
  const what = selected ? "selection" : "results";
  download(text, `clsp-${slug(name)}-${what}.${format}`, format === "csv" ? "text/csv" : "application/x-ndjson");
  return rows;
}
