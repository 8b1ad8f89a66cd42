"""lhotse manifests: recordings, supervisions (with their recordings) and cuts, as JSON lines (.jsonl or .jsonl.gz).

Read by lhotse's documented serialisation, not by lhotse (which needs torch to import):

* a recording is `{"id", "sources": [{"type": "file", "channels", "source": PATH}], "sampling_rate",
  "num_samples", "duration", ...}`: one item, the whole file, keyed by its id;
* a supervision is `{"id", "recording_id", "start", "duration", "text", "speaker", "language", ...}`,
  a span of a recording: one item per supervision, its recording found in the recordings manifest
  beside it (the same name with `supervisions` replaced by `recordings`, as lhotse recipes write);
* a cut is `{"id", "start", "duration", "recording": {...}, "supervisions": [...], "type": "MonoCut"}`:
  one item for the cut's span, its transcript the supervisions' texts in time order, its speaker and
  language those of its supervisions when they agree.

Relative paths resolve against the manifest's folder when the file is there, else against the
current folder (lhotse itself reads them from wherever it runs). Audio lhotse would fetch or compute
(`url`, `command`, `memory` and `shar` sources, transforms other than resampling, mixed cuts) is
refused with the manifest line that asks for it: indexing something else than the manifest means
would be worse than stopping. `custom` fields become metadata columns.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from searchengine.manifest import ManifestError, Source, table_source
from searchengine.sources.records import table_from_records

SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_RESERVED = {"id", "path", "start", "end", "speaker", "language", "transcript"}


def is_lhotse_manifest(path: Path) -> bool:
    """True when the first record of a JSON-lines file is a lhotse recording, supervision or cut."""
    if not path.name.lower().endswith(SUFFIXES):
        return False
    records = _records(path)
    try:
        first = next(records, None)
    except ManifestError:
        return False
    finally:
        records.close()
    return first is not None and _kind(first[1]) is not None


def read_lhotse(path: Path) -> Source:
    """Items of a lhotse recordings, supervisions or cuts manifest (decided by its first record)."""
    records = list(_records(path))
    if not records:
        return Source(str(path), [], {})
    kind = _kind(records[0][1])
    base = path.resolve().parent
    if kind == "recording":
        rows = [_recording_row(rec, path, n, base) for n, rec in records]
    elif kind == "cut":
        rows = [_cut_row(rec, path, n, base) for n, rec in records]
    else:
        recordings = _sibling_recordings(path)
        rows = []
        for n, sup in records:
            rec = recordings.get(str(sup.get("recording_id")))
            if rec is None:
                raise ManifestError(f"{path}: line {n}: recording {sup.get('recording_id')!r} is not in {_recordings_name(path)}")
            start = float(sup.get("start") or 0.0)
            rows.append({"id": str(sup["id"]), "path": _audio_path(rec, path, n, base), "start": start,
                         "end": start + float(sup["duration"]), **_said(sup), **_custom(sup)})
    return table_source(table_from_records(rows), path, base)


def _kind(rec: dict[str, Any]) -> str | None:
    if "sources" in rec and "sampling_rate" in rec:
        return "recording"
    if rec.get("type") in ("MonoCut", "MultiCut", "MixedCut", "PaddingCut") or ("recording" in rec and "duration" in rec):
        return "cut"
    if "recording_id" in rec and "duration" in rec and "id" in rec:
        return "supervision"
    return None


def _recording_row(rec: dict[str, Any], path: Path, n: int, base: Path) -> dict[str, Any]:
    return {"id": str(rec["id"]), "path": _audio_path(rec, path, n, base), **_custom(rec)}


def _cut_row(cut: dict[str, Any], path: Path, n: int, base: Path) -> dict[str, Any]:
    if cut.get("type") in ("MixedCut", "PaddingCut"):
        raise ManifestError(f"{path}: line {n}: a {cut['type']} is not one span of one recording; "
                            "index the cuts it is made of")
    rec = cut.get("recording")
    if not isinstance(rec, dict):
        raise ManifestError(f"{path}: line {n}: cut {cut.get('id')!r} has no recording")
    start = float(cut.get("start") or 0.0)
    sups = sorted(cut.get("supervisions") or [], key=lambda s: float(s.get("start") or 0.0))
    texts = [str(s["text"]).strip() for s in sups if s.get("text")]
    row: dict[str, Any] = {"id": str(cut["id"]), "path": _audio_path(rec, path, n, base), "start": start,
                           "end": start + float(cut["duration"])}
    for field in ("speaker", "language"):
        values = {s.get(field) for s in sups if s.get(field) is not None}
        if len(values) == 1:
            row[field] = str(values.pop())
    if texts:
        row["transcript"] = " ".join(texts)
    return {**row, **_custom(cut)}


def _said(sup: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) for k, v in (("transcript", sup.get("text")), ("speaker", sup.get("speaker")),
                                   ("language", sup.get("language"))) if v is not None}


def _custom(rec: dict[str, Any]) -> dict[str, Any]:
    """A record's `custom` fields as columns (a name the manifest reserves gets a `custom_` prefix)."""
    custom = rec.get("custom") or {}
    if not isinstance(custom, dict):
        return {}
    return {(f"custom_{k}" if k in _RESERVED else str(k)): v for k, v in custom.items()}


def _audio_path(rec: dict[str, Any], path: Path, n: int, base: Path) -> str:
    """The file a recording's audio is read from (its first source; all channels are mixed to mono)."""
    transforms = [t.get("name") for t in rec.get("transforms") or [] if isinstance(t, dict)]
    if any(name not in ("Resample",) for name in transforms):
        raise ManifestError(f"{path}: line {n}: recording {rec.get('id')!r} has transforms {transforms}; "
                            "only resampling is read (write the transformed audio to files first)")
    sources = rec.get("sources") or []
    if not sources:
        raise ManifestError(f"{path}: line {n}: recording {rec.get('id')!r} has no sources")
    src = sources[0]
    if src.get("type") != "file":
        raise ManifestError(f"{path}: line {n}: recording {rec.get('id')!r} has a {src.get('type')!r} source; "
                            "only 'file' sources are read (nothing is fetched or run): save the audio to files first")
    raw = Path(str(src["source"]))
    if raw.is_absolute():
        return str(raw)
    beside = base / raw
    return str(beside if beside.exists() or not raw.exists() else raw.resolve())


def _sibling_recordings(path: Path) -> dict[str, dict[str, Any]]:
    other = path.with_name(_recordings_name(path))
    if other == path or not other.is_file():
        raise ManifestError(f"{path}: a supervisions manifest needs its recordings; expected {other.name} beside it "
                            "(or index the cuts manifest instead)")
    return {str(rec["id"]): rec for _, rec in _records(other) if "id" in rec}


def _recordings_name(path: Path) -> str:
    return path.name.replace("supervisions", "recordings")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each non-blank line, gzip-compressed or not."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}: line {n} is not JSON ({exc.msg})") from exc
                if not isinstance(rec, dict):
                    raise ManifestError(f"{path}: line {n} is not a JSON object")
                yield n, rec
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc
