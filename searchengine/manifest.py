"""The one reader of sources: audio folders and manifests (.jsonl / .csv / .tsv / .parquet / .json).

Every consumer of a manifest reads it here, so a row means the same everywhere: `path` resolves
against the manifest's directory, `start`/`end` are seconds into the file (absent = the whole file),
and `fine_captions` is a list of texts (a CSV cell may hold a JSON list or '|'-separated texts).
There are two views of the same rows, because their consumers need different things:

* `read_source` (the indexer): `SourceItem`s with a stable `key` (the manifest `id`, else the
  resolved path plus the time range), which is what makes re-runs incremental. Columns the store does
  not know are kept, typed as DuckDB inferred them, and nested `attributes` objects are flattened into
  one column per attribute so they can be filtered on.
* `read_rows` (training and evaluation): each row as written, nested objects kept, next to the
  fields above already interpreted. JSON lines are parsed line by line rather than by DuckDB, whose
  schema inference unifies rows (a key missing in one row becomes null there, ints widen to floats),
  which is right for a typed column store but would change the records training code reads.

A manifest that cannot be read correctly is refused as a whole, with one line naming the column,
because indexing (or training on) half of it silently would be worse than not starting.

Corpora that come as datasets rather than manifests are read by `searchengine.sources` into the same
items: Hugging Face datasets saved to disk and parquet files with an audio column, lhotse recording,
supervision and cut manifests, and webdataset tar shards. Audio stored inside them (bytes in a
column, members of a tar) is not read here: such an item carries an `Embedded` locator, and
`searchengine.sources.extract` writes those bytes out as files before anything decodes them.

A transcript is what is said, kept apart from the captions (which describe how): the first of the
`TRANSCRIPT_COLUMNS` a row has text in becomes `transcript`, likewise `NORMALIZED_COLUMNS` for
`normalized_transcript`. The first such column a source has is consumed; any later one also stays
metadata, so that a source with both `transcript` and `text` loses neither.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: What a folder scan or a one-file source takes as audio: libsndfile's formats, then every audio and video
#: container ffmpeg decodes (`searchengine.audio` reads both; a video contributes its first audio track).
AUDIO_EXTENSIONS = {
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf",  # libsndfile
    ".m4a", ".m4b", ".aac", ".opus", ".webm", ".weba", ".mka", ".amr", ".wma", ".ac3", ".3gp",  # ffmpeg, audio
    ".mp4", ".m4v", ".mkv", ".mov", ".avi",  # ffmpeg, video containers
}
MANIFEST_EXTENSIONS = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"}
JSON_LINES_EXTENSIONS = {".jsonl", ".ndjson"}
#: Where a source's transcript may be, in order of preference (Common Voice says `sentence`, FLEURS
#: `transcription`); and its normalised form (LJSpeech's third field, NeMo's `normalized_text`).
TRANSCRIPT_COLUMNS = ("transcript", "text", "transcription", "sentence")
NORMALIZED_COLUMNS = ("normalized_text", "normalized_transcript")

# Manifest columns with a meaning of their own; the rest is metadata.
_RESERVED = {"id", "path", "start", "end", "speaker", "language", "global_caption", "fine_captions", "attributes"}


class ManifestError(ValueError):
    """The source cannot be read at all (missing or mistyped column, unreadable file)."""


@dataclass(frozen=True)
class Embedded:
    """Where an item's audio bytes sit inside a container file, to be written out before decoding.

    `kind` says how to find them: "arrow" and "parquet" by row number (`locator`) in column `column`,
    "tar" by member name. `name` is the file name the source gives the audio (its suffix is a
    hint to the format), if any."""

    kind: str
    container: str
    locator: int | str
    column: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class SourceItem:
    """One thing to index: a file, or a [start, end) range of one, with its manifest metadata.

    While `embedded` is set, `path` names the container the audio is inside, not an audio file."""

    key: str
    path: str
    start: float | None = None
    end: float | None = None
    speaker: str | None = None
    language: str | None = None
    global_caption: str | None = None
    fine_captions: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    transcript: str | None = None
    normalized_transcript: str | None = None
    embedded: Embedded | None = None


@dataclass
class Source:
    """Everything read from a source: the items, the DuckDB types of metadata columns, duplicates."""

    origin: str
    items: list[SourceItem]
    column_types: dict[str, str]
    duplicates: list[SourceItem] = field(default_factory=list)
    #: Files a folder scan passed over, with why (path, reason): the user should know what was not indexed.
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row as written (`record`), with the fields every reader interprets alike."""

    number: int  # 1-based: the line of a JSON-lines file, the data row of any other manifest
    path: Path  # absolute; relative entries resolve against the manifest's directory
    start: float | None
    end: float | None
    global_caption: str | None
    fine_captions: tuple[str, ...]
    record: dict[str, Any]


# ----------------------------------------------------------------------------------- the indexer's view


def read_source(source: str | Path) -> Source:
    """Items from whatever `source` is: an audio folder, a saved Hugging Face dataset, a folder of tar
    shards, a manifest file (ours, or lhotse's), a parquet or arrow file with an audio column, tar
    shards (one, or a `{000..009}` pattern), or one audio file."""
    from searchengine.sources import hf, lhotse, webdataset

    p = Path(source)
    if p.is_dir():
        if hf.is_saved_dataset(p):
            return hf.read_saved_dataset(p)
        shards = webdataset.shards_in(p)
        return webdataset.read_shards(shards, str(p)) if shards else read_folder(p)
    if not p.is_file():
        if webdataset.is_pattern(str(source)):
            return webdataset.read_shards(webdataset.expand(str(source)), str(source))
        raise ManifestError(f"{p}: no such file or directory")
    name = p.name.lower()
    if webdataset.is_shard(p):
        return webdataset.read_shards([p], str(p))
    if lhotse.is_lhotse_manifest(p):
        return lhotse.read_lhotse(p)
    if name.endswith(".arrow"):
        return hf.read_arrow_file(p)
    if name.endswith(".parquet") and hf.parquet_audio_column(p) is not None:
        return hf.read_parquet_dataset(p)
    if p.suffix.lower() in MANIFEST_EXTENSIONS or name.endswith((".jsonl.gz", ".ndjson.gz")):
        return read_manifest(p)
    if p.suffix.lower() in AUDIO_EXTENSIONS:
        item = SourceItem(key=str(p.resolve()), path=str(p.resolve()))
        return Source(str(p), [item], {})
    raise ManifestError(f"{p}: not a manifest ({', '.join(sorted(MANIFEST_EXTENSIONS))}), a dataset, tar shards "
                        "or an audio file")


def read_folder(folder: Path) -> Source:
    """Every audio (or video) file under `folder` (recursively, sorted so runs are reproducible), and the
    other files it passed over with the reason; hidden files (`.DS_Store`, `._x.wav`) are not reported."""
    files, skipped = [], []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if f.suffix.lower() in AUDIO_EXTENSIONS:
            files.append(f)
        else:
            skipped.append((str(f), f"not an audio or video file by its extension ({f.suffix or 'none'})"))
    items = [SourceItem(key=str(f.resolve()), path=str(f.resolve())) for f in files]
    return Source(str(folder), items, {}, skipped=skipped)


def read_manifest(path: Path) -> Source:
    """Items of a manifest, metadata typed by DuckDB and `attributes` flattened into columns."""
    return table_source(_query(path), path, path.resolve().parent)


def table_source(
    table: pa.Table,
    origin: Path,
    base: Path,
    embedded: list[Embedded | None] | None = None,
    row_keys: list[str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Source:
    """Items of a table of manifest rows (from a manifest file, or built by a dataset reader).

    `embedded[i]`, when given, says where row i's audio is inside a container; `row_keys[i]` is row
    i's identity when it has no `id` (else the resolved path plus the time range is)."""
    from searchengine.store.schema import CORE_CLIP_COLUMNS

    # Columns the store computes from the audio itself; a manifest's own values are kept under `manifest_<name>`.
    computed = set(CORE_CLIP_COLUMNS) - {"speaker", "language", "global_caption", "fine_captions", "start", "end",
                                         "transcript", "normalized_transcript"}
    table = _flatten_attributes(table)
    types = _column_types(table)
    _check_types(origin, types)
    said = [n for n in TRANSCRIPT_COLUMNS if types.get(n) == "VARCHAR"]
    normalized = [n for n in NORMALIZED_COLUMNS if types.get(n) == "VARCHAR"]
    meta_names = [n for n in table.column_names if n not in _RESERVED and n not in (said[:1] + normalized[:1])]
    renamed = {n: (f"manifest_{n}" if n in computed else n) for n in meta_names}
    column_types = {renamed[n]: types[n] for n in meta_names if types[n] not in ('"NULL"', "NULL")}
    items: list[SourceItem] = []
    duplicates: list[SourceItem] = []
    seen: set[str] = set()
    for row_no, row in enumerate(table.to_pylist()):
        r = _interpret(row, origin, base, row_no + 1)
        if row.get("id") is not None:
            key = str(row["id"])
        elif row_keys is not None:
            key = row_keys[row_no]
        else:
            key = str(r.path) + ("" if r.start is None and r.end is None else f"#{r.start or 0:g}-{r.end if r.end is not None else ''}")
        item = SourceItem(
            key=key,
            path=str(r.path),
            start=r.start,
            end=r.end,
            speaker=None if row.get("speaker") is None else str(row["speaker"]),
            language=None if row.get("language") is None else str(row["language"]),
            global_caption=r.global_caption,
            fine_captions=r.fine_captions,
            metadata={renamed[n]: row[n] for n in meta_names},
            transcript=_first_text(row, said),
            normalized_transcript=_first_text(row, normalized),
            embedded=embedded[row_no] if embedded is not None else None,
        )
        (duplicates if key in seen else items).append(item)
        seen.add(key)
    return Source(str(origin), items, column_types, duplicates, skipped=list(skipped or []))


def _first_text(row: Mapping[str, Any], names: list[str]) -> str | None:
    """The first non-blank of a row's cells in columns `names` (rows of one source may say it in
    different columns: one webdataset sample's json has `text`, another's a .txt member)."""
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


# ------------------------------------------------------------------------------------- the records view


def read_rows(path: str | Path) -> list[ManifestRow]:
    """Every row of a manifest file as written, with path, time range and captions interpreted.

    A file with a suffix no table reader knows is read as JSON lines, as training always has.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    base = path.resolve().parent
    if suffix in MANIFEST_EXTENSIONS - JSON_LINES_EXTENSIONS:
        records = _query(path).to_pylist()
        if suffix in {".csv", ".tsv"}:
            records = [_nested_attributes(r) for r in records]
        numbered = list(enumerate(records, 1))
    else:
        numbered = list(_json_lines(path))
    if numbered and all("path" not in record for _, record in numbered):
        raise ManifestError(f"{path}: manifest has no 'path' column")
    return [_interpret(record, path, base, number) for number, record in numbered]


def _json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every non-blank line; the numbers count blank lines too."""
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ManifestError(f"{path}: line {number} is not a JSON object")
        out.append((number, record))
    return out


def _nested_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """A CSV cell cannot nest, so an `attributes` cell holding a JSON object is read as that object."""
    value = record.get("attributes")
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return {**record, "attributes": json.loads(value)}
        except json.JSONDecodeError:
            return record
    return record


# ------------------------------------------------------------------------------ shared row interpretation


def _interpret(row: Mapping[str, Any], origin: Path, base: Path, number: int) -> ManifestRow:
    """The fields of one row that mean the same to every reader."""
    raw = row.get("path")
    if not raw:
        raise ManifestError(f"{origin}: column 'path' is empty in row {number}")
    if not isinstance(raw, str):
        raise ManifestError(f"{origin}: column 'path' must hold text (file paths), found {raw!r} in row {number}")
    resolved = Path(raw) if Path(raw).is_absolute() else base / raw
    return ManifestRow(
        number=number,
        path=resolved,
        start=_seconds(row.get("start"), "start", origin, number),
        end=_seconds(row.get("end"), "end", origin, number),
        global_caption=None if not row.get("global_caption") else str(row["global_caption"]),
        fine_captions=_fine_list(row.get("fine_captions"), origin, number),
        record=dict(row),
    )


def _fine_list(value: Any, path: Path, number: int) -> tuple[str, ...]:
    """fine_captions as a tuple; CSV cells may hold a JSON list or '|'-separated texts."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}: column 'fine_captions' row {number} is not a JSON list") from exc
        else:
            value = [t for t in (s.strip() for s in text.split("|")) if t]
    if not isinstance(value, (list, tuple)):
        raise ManifestError(f"{path}: column 'fine_captions' row {number} must be a list of texts, found {value!r}")
    return tuple(str(v) for v in value if v is not None and str(v).strip())


def _seconds(value: Any, name: str, path: Path, number: int) -> float | None:
    """A time in seconds, or None for 'not given' (null or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ManifestError(f"{path}: column '{name}' must be a number of seconds, found {value!r} in row {number}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{path}: column '{name}' must be a number of seconds, found {value!r} in row {number}") from exc


# ------------------------------------------------------------------------------------------ table files


def _query(path: Path) -> pa.Table:
    """The manifest as an Arrow table, read by DuckDB (nested objects kept as structs)."""
    import duckdb

    suffix = path.suffix.lower()
    if suffix in JSON_LINES_EXTENSIONS or path.name.lower().endswith((".jsonl.gz", ".ndjson.gz")):
        query = "SELECT * FROM read_json_auto($p, format = 'newline_delimited')"
    elif suffix == ".json":
        query = "SELECT * FROM read_json_auto($p)"
    elif suffix in {".csv", ".tsv"}:
        query = "SELECT * FROM read_csv_auto($p, header = true)"
    else:
        query = "SELECT * FROM read_parquet($p)"
    con = duckdb.connect()
    try:
        return con.sql(query, params={"p": str(path)}).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ManifestError(f"{path}: cannot read manifest: {first}") from exc
    finally:
        con.close()


def _column_types(table: pa.Table) -> dict[str, str]:
    """The DuckDB type of each column of `table` (what the store will make of it)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("manifest", table)
        return {name: dtype for name, dtype, *_ in con.execute("DESCRIBE manifest").fetchall()}
    finally:
        con.close()


def _flatten_attributes(table: pa.Table) -> pa.Table:
    """Turn struct columns (e.g. `attributes`) into one column per field, named after the field.

    A field whose name is already taken by a top-level column keeps a `<struct>_` prefix.
    """
    import pyarrow as pa

    while any(pa.types.is_struct(f.type) for f in table.schema):
        names = set(table.column_names)
        columns, fields = [], []
        for f, col in zip(table.schema, table.columns, strict=False):
            if not pa.types.is_struct(f.type):
                columns.append(col)
                fields.append(f.name)
                continue
            for i, sub in enumerate(f.type):
                child = pa.chunked_array([chunk.field(i) for chunk in col.chunks], type=sub.type)
                name = sub.name if sub.name not in names and sub.name not in _RESERVED else f"{f.name}_{sub.name}"
                columns.append(child)
                fields.append(name)
        table = pa.table(columns, names=fields)
    return table


def _check_types(path: Path | str, types: Mapping[str, str]) -> None:
    if "path" not in types:
        raise ManifestError(f"{path}: manifest has no 'path' column (columns: {', '.join(types) or 'none'})")
    if types["path"] != "VARCHAR":
        raise ManifestError(f"{path}: column 'path' must hold text (file paths), found {types['path']}")
    numeric = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DECIMAL", "HUGEINT", "UBIGINT")
    for name in ("start", "end"):
        if name in types and not types[name].startswith(numeric):
            raise ManifestError(f"{path}: column '{name}' must be a number of seconds, found {types[name]}")
    for name in ("speaker", "language", "global_caption"):
        if name in types and types[name].endswith("[]"):
            raise ManifestError(f"{path}: column '{name}' must be text, found {types[name]}")
    if "fine_captions" in types and types["fine_captions"] not in ("VARCHAR[]", "VARCHAR", '"NULL"', "NULL"):
        raise ManifestError(f"{path}: column 'fine_captions' must be a list of texts, found {types['fine_captions']}")
