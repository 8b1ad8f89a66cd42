"""Hugging Face datasets: folders written by `save_to_disk`, and parquet or arrow files with an audio column.

A saved `Dataset` folder holds `state.json` (its arrow files), `dataset_info.json` (its features) and
the arrow files (Arrow IPC streams); a `DatasetDict` folder holds `dataset_dict.json` and one such
folder per split, whose name becomes a `split` column. Parquet files from the Hub or
`Dataset.to_parquet` carry the same features in their `huggingface` schema metadata.

The audio column is the one the features call `Audio`, else a column of {bytes, path} structs, else
a column named `audio` holding bytes or a path (when there is no `path` column: then the file is a
manifest). A row's audio is its bytes when it has them (located, not read, here: `extract` writes
them out), else the file at its path, a relative one resolved against the dataset's folder.

Rows are keyed by their `id` column, else by their place, `<dataset>#<split>/<row>`: a dataset
re-saved in another order is, to the indexer, another corpus. A `path` column of the dataset's own
(Common Voice has one) is kept as `dataset_path`; other binary columns and other media columns
(images) are left out, since the store has nothing to do with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from searchengine.manifest import Embedded, ManifestError, Source, table_source

AUDIO_NAME = "audio"
PATH_RENAMED = "dataset_path"


def is_saved_dataset(folder: Path) -> bool:
    """True for a folder `Dataset.save_to_disk` or `DatasetDict.save_to_disk` wrote."""
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file())


@dataclass
class _Piece:
    """Rows of one container file: their table (audio column replaced by `path`), where their audio
    bytes are, and their keys."""

    table: pa.Table
    embedded: list[Embedded | None]
    keys: list[str]


def read_saved_dataset(folder: Path) -> Source:
    """Items of a saved `Dataset` or `DatasetDict` folder (every split)."""
    folder = folder.resolve()
    if (folder / "dataset_dict.json").is_file():
        splits = _json(folder / "dataset_dict.json").get("splits") or []
        parts: list[tuple[str | None, Path]] = [(str(s), folder / str(s)) for s in splits]
    else:
        parts = [(None, folder)]
    pieces: list[_Piece] = []
    for split, part in parts:
        state = _json(part / "state.json")
        info = _json(part / "dataset_info.json") if (part / "dataset_info.json").is_file() else {}
        files = [part / str(f["filename"]) for f in state.get("_data_files") or []]
        if not files:
            raise ManifestError(f"{part}: state.json lists no data files")
        first = 0
        for file in files:
            table = _read_arrow(file)
            prefix = f"{folder}#{split}/" if split else f"{folder}#"
            pieces.append(_rows(table, info.get("features"), "arrow", file, folder, prefix, first, split))
            first += table.num_rows
    return _source(pieces, folder)


def read_arrow_file(path: Path) -> Source:
    """Items of one arrow file with an audio column (a shard of a saved dataset, say)."""
    path = path.resolve()
    table = _read_arrow(path)
    return _source([_rows(table, None, "arrow", path, path.parent, f"{path}#", 0, None)], path)


def parquet_audio_column(path: Path) -> str | None:
    """The audio column of a parquet file, None for a parquet manifest (a `path` column instead)."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError(f"{path}: cannot read parquet: {exc}") from exc
    return audio_column(schema, None)


def read_parquet_dataset(path: Path) -> Source:
    """Items of a parquet file with an audio column. The audio column is read in small batches, only
    to see which rows hold bytes, so a file of many hours never sits in memory whole."""
    import pyarrow.parquet as pq

    path = path.resolve()
    try:
        pf = pq.ParquetFile(path)
        column = audio_column(pf.schema_arrow, None)
        assert column is not None
        others = [n for n in pf.schema_arrow.names if n != column]
        table = pf.read(columns=others)
        cells: list[tuple[bool, str | None]] = []
        for batch in pf.iter_batches(batch_size=64, columns=[column]):
            cells.extend(_cells(batch.column(0)))
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError(f"{path}: cannot read parquet: {exc}") from exc
    return _source([_rows(table, None, "parquet", path, path.parent, f"{path}#", 0, None, cells, column)], path)


# ------------------------------------------------------------------------------------------- columns


def audio_column(schema: pa.Schema, features: dict[str, Any] | None) -> str | None:
    """Which column holds the audio (see the module doc), None if none does."""
    features = features if features is not None else _schema_features(schema)
    for name, feature in (features or {}).items():
        if isinstance(feature, dict) and feature.get("_type") == "Audio" and name in schema.names:
            return name
    for f in schema:
        if _is_media_struct(f.type):
            return f.name
    if AUDIO_NAME in schema.names and "path" not in schema.names:
        t = schema.field(AUDIO_NAME).type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            return AUDIO_NAME
    return None


def _schema_features(schema: pa.Schema) -> dict[str, Any] | None:
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        return (json.loads(raw).get("info") or {}).get("features")
    except (json.JSONDecodeError, AttributeError):
        return None


def _is_media_struct(t: pa.DataType) -> bool:
    """A {bytes, path} struct: how datasets stores Audio (and Image) values."""
    if not pa.types.is_struct(t):
        return False
    names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
    kind = names.get("bytes")
    return kind is not None and (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)) and "path" in names


def _cells(array: pa.Array | pa.ChunkedArray) -> list[tuple[bool, str | None]]:
    """(has bytes, path) of each row of an audio column, without copying the bytes."""
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    out: list[tuple[bool, str | None]] = []
    for chunk in chunks:
        if pa.types.is_struct(chunk.type):
            data = chunk.field("bytes")
            paths = chunk.field("path").to_pylist()
            valid = pc.and_(chunk.is_valid(), data.is_valid())
        elif pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type):
            data, paths, valid = chunk, [None] * len(chunk), chunk.is_valid()
        else:
            out.extend((False, p) for p in chunk.to_pylist())
            continue
        sizes = pc.fill_null(pc.binary_length(data), 0)
        has = pc.and_(pc.fill_null(valid, False), pc.greater(sizes, 0)).to_pylist()
        struct_valid = chunk.is_valid().to_pylist()
        out.extend((bool(h), p if ok else None) for h, p, ok in zip(has, paths, struct_valid, strict=True))
    return out


# ---------------------------------------------------------------------------------------------- rows


def _rows(table: pa.Table, features: dict[str, Any] | None, kind: str, container: Path, base: Path,
          key_prefix: str, first_row: int, split: str | None,
          cells: list[tuple[bool, str | None]] | None = None, column: str | None = None) -> _Piece:
    """The manifest rows of one container file's table."""
    column = column or audio_column(table.schema, features)
    if column is None:
        raise ManifestError(f"{container}: no audio column (an Audio feature, a column of {{bytes, path}} "
                            f"structs or a column named '{AUDIO_NAME}'); columns: {', '.join(table.column_names)}")
    if cells is None:
        cells = _cells(table.column(column))
    embedded: list[Embedded | None] = []
    paths: list[str] = []
    for i, (has_bytes, path) in enumerate(cells):
        if has_bytes:
            embedded.append(Embedded(kind, str(container), i, column, path))
            paths.append(str(container))
        elif path:
            embedded.append(None)
            paths.append(str(Path(path) if Path(path).is_absolute() else (base / path)))
        else:
            raise ManifestError(f"{container}: row {first_row + i + 1} has no audio (neither bytes nor a path "
                                f"in column '{column}')")
    kept = [f for f in table.schema if f.name != column and not _left_out(f.type)]
    data = {(PATH_RENAMED if f.name == "path" else f.name): table.column(f.name) for f in kept}
    data["path"] = pa.array(paths, pa.string())
    if split is not None and "split" not in data:
        data["split"] = pa.array([split] * table.num_rows, pa.string())
    keys = [f"{key_prefix}{first_row + i}" for i in range(table.num_rows)]
    return _Piece(pa.table(data), embedded, keys)


def _left_out(t: pa.DataType) -> bool:
    """Binary columns and other media columns: nothing the store can filter on or show."""
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_media_struct(t)


def _source(pieces: list[_Piece], origin: Path) -> Source:
    tables = [p.table for p in pieces]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    embedded = [e for p in pieces for e in p.embedded]
    keys = [k for p in pieces for k in p.keys]
    return table_source(table, origin, origin if origin.is_dir() else origin.parent, embedded, keys)


def _read_arrow(path: Path) -> pa.Table:
    """An arrow file as datasets writes it (IPC stream), or in the IPC file format; memory-mapped."""
    try:
        source = pa.memory_map(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: cannot read arrow file: {exc}") from exc
    try:
        return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        source.seek(0)
        try:
            return pa.ipc.open_file(source).read_all()
        except pa.ArrowException as exc:
            raise ManifestError(f"{path}: not an arrow file ({exc})") from exc


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: not a JSON object")
    return data
