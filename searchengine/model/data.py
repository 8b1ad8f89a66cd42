"""Captioned clips of a manifest, for training and evaluation.

The manifest is read by `searchengine.manifest` (the one reader of sources), so training, the
paper's evaluation protocol and the indexer agree on what a row means: any manifest format it reads
(jsonl, csv, tsv, parquet, json), paths relative to the manifest's directory, and `start`/`end`
marking a segment of a longer file. For training only clips with a global caption and fine captions
are kept, because the losses and the retrieval protocol pair every clip with both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchengine.manifest import read_rows


@dataclass
class Clip:
    """One manifest row, with its audio path made absolute and its segment in seconds."""

    id: str
    path: Path
    global_caption: str
    fine_captions: list[str]
    split: str | None = None
    heldout_phrasing: bool = False
    record: dict[str, Any] = field(default_factory=dict)
    start: float | None = None  # seconds into the file; None = from its beginning
    end: float | None = None  # seconds into the file; None = to its end

    def load_audio(self) -> np.ndarray:
        """16 kHz mono float32 waveform of the clip's segment (the whole file when it has none).

        Unlike indexing, no file is refused for being silent or short: a curated training or
        evaluation set is taken as it is.
        """
        from searchengine.audio import load_waveform

        return load_waveform(self.path, self.start, self.end)

    def attribute(self, name: str) -> Any:
        """A categorical attribute: top-level (gender, accent) or inside `attributes`."""
        if name in self.record and not isinstance(self.record[name], (dict, list)):
            return self.record[name]
        return (self.record.get("attributes") or {}).get(name)


def manifest_path(corpus_or_manifest: str | Path) -> Path:
    """The manifest file: the path itself, or `manifest.jsonl` inside a corpus directory."""
    path = Path(corpus_or_manifest)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path} (expected a corpus directory with manifest.jsonl, or the file)")
    return path


def read_manifest(corpus_or_manifest: str | Path, captioned_only: bool = True) -> list[Clip]:
    """All clips of a manifest (any format `searchengine.manifest` reads) with a global caption and
    fine captions; rows without either are skipped, unless `captioned_only` is False (evaluation,
    which scores labelled clips by zero-shot classification and style similarity without captions:
    their `global_caption` is then "" and `fine_captions` empty)."""
    clips = []
    for row in read_rows(manifest_path(corpus_or_manifest)):
        if captioned_only and (not row.global_caption or not row.fine_captions):
            continue
        record = row.record
        given_id = record.get("id")
        clips.append(
            Clip(
                id=str(row.number if given_id is None else given_id),
                path=row.path,
                global_caption=row.global_caption or "",
                fine_captions=list(row.fine_captions or []),
                split=record.get("split"),
                heldout_phrasing=bool(record.get("heldout_phrasing", False)),
                record=record,
                start=row.start,
                end=row.end,
            )
        )
    return clips
