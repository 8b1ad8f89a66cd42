"""Exports: search results (or picked clips) written for the tools that train on them.

Every format is written from the same manifest rows (`rows.manifest_row`), one small module each:

| format     | what is written                                                         | module       |
|------------|-------------------------------------------------------------------------|--------------|
| `jsonl`    | manifest lines the indexer reads back                                   | `lines`      |
| `csv`      | the same as CSV with a header                                           | `lines`      |
| `nemo`     | NeMo manifest lines: audio_filepath, duration, offset, text             | `nemo`       |
| `lhotse`   | lhotse cuts (`.jsonl`, or `.jsonl.gz` when the name says so)            | `lhotse`     |
| `hf`       | a Hugging Face dataset folder, or a parquet file, with an Audio column  | `hf`         |
| `ljspeech` | `wavs/` cut and resampled, `metadata.csv` as `id|text|normalized text`  | `ljspeech`   |

The first four are text lines and can be streamed (`text_lines`); `hf` and `ljspeech` hold audio
and are written to disk (`write_export`), every output new-then-renamed so that a failed export
leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from searchengine.export.errors import ExportError
from searchengine.export.files import write_lines, zip_folder
from searchengine.export.lines import csv_lines, jsonl_lines
from searchengine.export.rows import FIRST_COLUMNS, manifest_row, selected_rows

FORMATS = ("jsonl", "csv", "nemo", "lhotse", "hf", "ljspeech")
LINE_FORMATS = ("jsonl", "csv", "nemo", "lhotse")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "nemo": "application/x-ndjson",
               "lhotse": "application/x-ndjson"}
FILE_NAMES = {"jsonl": "export.jsonl", "csv": "export.csv", "nemo": "manifest.json", "lhotse": "cuts.jsonl",
              "hf": "export.parquet", "ljspeech": "export.zip"}


def format_for(output: Path, fmt: str | None) -> str:
    """The format asked for, else the one the output's name implies (.csv, .parquet; else jsonl)."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    name = output.name.lower()
    return "csv" if name.endswith(".csv") else "hf" if name.endswith(".parquet") else "jsonl"


def writes_folder(fmt: str, output: Path) -> bool:
    return fmt == "ljspeech" or (fmt == "hf" and not output.name.lower().endswith(".parquet"))


def check_output(output: Path, fmt: str) -> None:
    """Refuse, before any work, a folder output that would overwrite something (files are replaced)."""
    if writes_folder(fmt, output) and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ExportError(f"{output} already exists and is not an empty folder; remove it or choose another --output")
    if not writes_folder(fmt, output) and output.is_dir():
        raise ExportError(f"{output} is a folder; {fmt} is written to a file")


def text_lines(rows: Sequence[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The lines of a line format."""
    if fmt == "csv":
        return csv_lines(list(rows))
    if fmt == "nemo":
        from searchengine.export.nemo import nemo_lines

        return nemo_lines(rows)
    if fmt == "lhotse":
        from searchengine.export.lhotse import lhotse_lines

        return lhotse_lines(rows)
    if fmt == "jsonl":
        return jsonl_lines(rows)
    raise ExportError(f"{fmt} is not a line format; write it with write_export")


def write_export(rows: Sequence[dict[str, Any]], fmt: str, output: Path, sample_rate: int | None = None) -> int:
    """Write `rows` as `fmt` to `output` (a file, or a folder for hf without .parquet and for ljspeech).

    `sample_rate` applies to formats that carry audio (hf: default the files' own rates; ljspeech:
    default 22050 Hz). Returns how many clips had no transcript, which text-to-speech formats need."""
    missing = sum(1 for r in rows if not r.get("transcript"))
    if fmt in LINE_FORMATS:
        write_lines(output, text_lines(rows, fmt))
    elif fmt == "hf":
        from searchengine.export.hf import write_hf

        write_hf(rows, output, sample_rate)
    elif fmt == "ljspeech":
        from searchengine.export.ljspeech import write_ljspeech

        write_ljspeech(rows, output, sample_rate)
    else:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return missing


__all__ = ["FILE_NAMES", "FIRST_COLUMNS", "FORMATS", "LINE_FORMATS", "MEDIA_TYPES", "ExportError", "check_output",
           "csv_lines", "format_for", "jsonl_lines", "manifest_row", "selected_rows", "text_lines", "write_export", "writes_folder", "zip_folder"]
