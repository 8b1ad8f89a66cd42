"""A Hugging Face dataset: each clip's audio (cut to its segment, FLAC) in an `Audio` column, beside
its transcript (`text`, `normalized_text`), captions, speaker, score and metadata.

Two layouts, the same table: a folder as `Dataset.save_to_disk` writes it (`datasets.load_from_disk`
reads it), or one parquet file as the Hub serves them (`load_dataset("parquet", ...)`). The Audio
feature is declared in the arrow schema's `huggingface` metadata, which is where datasets looks for
it; the other columns' features datasets infers from their arrow types. Rows are written a batch at
a time, so an export of hours of audio never sits in memory whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from searchengine.export.clipaudio import clip_waveform, encode
from searchengine.export.files import fsync_dir, publish_folder, staging_folder, write_bytes
from searchengine.sources.records import table_from_records

BATCH = 32
DATA_FILE = "data-00000-of-00001.arrow"
AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
RENAMED = {"path": "source_path", "start": "source_start", "end": "source_end", "transcript": "text",
           "normalized_transcript": "normalized_text"}
"""Where the clip came from is provenance here: the audio column holds the clip itself, so `start` and
`end` (read as a span of the audio by any manifest reader) would cut it again."""


def write_hf(rows: Sequence[dict[str, Any]], out: Path, sample_rate: int | None = None) -> None:
    """A parquet file when `out` ends in .parquet, else a saved-dataset folder."""
    if out.name.lower().endswith(".parquet"):
        _write_parquet(rows, out, sample_rate)
    else:
        _write_folder(rows, out, sample_rate)


def _columns(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Everything but the audio, once for all rows, so every batch has the same schema."""
    return table_from_records([{RENAMED.get(k, k): v for k, v in row.items()} for row in rows])


def _schema(meta: pa.Schema, sample_rate: int | None) -> pa.Schema:
    feature: dict[str, Any] = {"_type": "Audio"}
    if sample_rate:
        feature["sampling_rate"] = int(sample_rate)
    info = {"info": {"features": {"audio": feature}}}
    return pa.schema([pa.field("audio", AUDIO), *meta]).with_metadata({"huggingface": json.dumps(info)})


def _batches(rows: Sequence[dict[str, Any]], sample_rate: int | None) -> tuple[pa.Schema, Iterator[pa.Table]]:
    meta = _columns(rows)
    schema = _schema(meta.schema, sample_rate)

    def batches() -> Iterator[pa.Table]:
        for first in range(0, len(rows), BATCH):
            chunk = rows[first : first + BATCH]
            audio = []
            for row in chunk:
                wave, rate = clip_waveform(row, sample_rate)
                audio.append({"bytes": encode(wave, rate, "FLAC"), "path": f"{_file_stem(row)}.flac"})
            part = meta.slice(first, len(chunk))
            yield pa.Table.from_arrays([pa.array(audio, AUDIO), *part.columns], schema=schema)

    return schema, batches()


def _file_stem(row: dict[str, Any]) -> str:
    return f"clip-{row.get('clip_id')}"


def _write_parquet(rows: Sequence[dict[str, Any]], out: Path, sample_rate: int | None) -> None:
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    schema, batches = _batches(rows, sample_rate)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in batches:
                writer.write_table(batch)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(out.parent)


def _write_folder(rows: Sequence[dict[str, Any]], out: Path, sample_rate: int | None) -> None:
    tmp = staging_folder(out)
    try:
        schema, batches = _batches(rows, sample_rate)
        with pa.OSFile(str(tmp / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in batches:
                writer.write_table(batch)
        with open(tmp / DATA_FILE, "rb+") as f:
            os.fsync(f.fileno())
        ids = json.dumps([r.get("clip_id") for r in rows]).encode()
        state = {"_data_files": [{"filename": DATA_FILE}], "_format_columns": None, "_format_kwargs": {},
                 "_fingerprint": hashlib.blake2b(ids, digest_size=8).hexdigest(), "_format_type": None,
                 "_output_all_columns": False, "_split": None}
        info = {"description": "Clips exported by clsp-search.", "citation": "", "homepage": "", "license": ""}
        write_bytes(tmp / "state.json", json.dumps(state, indent=2).encode())
        write_bytes(tmp / "dataset_info.json", json.dumps(info, indent=2).encode())
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
