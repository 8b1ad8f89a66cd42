// Export through POST /export: the whole result list, or only the ticked rows (the API exports the
// top N of a text search; the rows of clips that were not ticked are dropped here, so scores and
// ranks stay those of the page). The result is offered as a file download.

import { exportText } from "./api.js";

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

/** The fields of one CSV record. */
export function csvFields(record) {
  const fields = [];
  let field = "";
  let quoted = false;
  const line = record.replace(/\r?\n$/, "");
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { fields.push(field); field = ""; }
    else field += ch;
  }
  fields.push(field);
  return fields;
}

/** Keep only the rows whose clip_id is in `ids` (JSONL or CSV text as /export returns it). */
export function keepRows(text, format, ids) {
  const wanted = new Set([...ids].map(String));
  if (format === "csv") {
    const [header, ...rows] = csvRecords(text);
    if (header === undefined) return "";
    const column = csvFields(header).indexOf("clip_id");
    return header + rows.filter((row) => wanted.has(csvFields(row)[column])).join("");
  }
  return text
    .split("\n")
    .filter((line) => line.trim() && wanted.has(String(JSON.parse(line).clip_id)))
    .map((line) => `${line}\n`)
    .join("");
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
 * Export `hits` (all, or those whose ids are in `selected`) of the text search `query` + `filter`.
 * Returns the number of rows written to the file.
 */
export async function exportHits({ query, filter, hits, selected, format, maxExport = 10000 }) {
  const chosen = selected ? hits.filter((h) => selected.has(h.id)) : hits;
  if (!chosen.length) return 0;
  // A little headroom past the last wanted rank, in case the longer list orders the tail differently.
  const n = Math.min(maxExport, Math.max(...chosen.map((h) => h.rank)) + 20);
  let text = await exportText({ query, filter, n, format });
  text = keepRows(text, format, chosen.map((h) => h.id));
  const rows = format === "csv" ? Math.max(0, csvRecords(text).length - 1) : text.split("\n").filter(Boolean).length;
  const what = selected ? "selection" : "results";
  download(text, `clsp-${slug(query)}-${what}.${format}`, format === "csv" ? "text/csv" : "application/x-ndjson");
  return rows;
}
