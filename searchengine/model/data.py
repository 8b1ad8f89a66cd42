"""Reading a style-corpus manifest (jsonl) and its audio, for training and evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchengine.model.audio import prepare_waveforms


@dataclass
class Clip:
    """One manifest line, with its audio path made absolute."""

    id: str
    path: Path
    global_caption: str
    fine_captions: list[str]
    split: str | None = None
    heldout_phrasing: bool = False
    record: dict[str, Any] = field(default_factory=dict)

    def load_audio(self) -> np.ndarray:
        """16 kHz mono float32 waveform."""
        import soundfile

        audio, rate = soundfile.read(str(self.path), dtype="float32", always_2d=False)
        return prepare_waveforms([audio], rate)[0]

    def attribute(self, name: str) -> Any:
        """A categorical attribute: top-level (gender, accent) or inside `attributes`."""
        if name in self.record and not isinstance(self.record[name], (dict, list)):
            return self.record[name]
        return (self.record.get("attributes") or {}).get(name)


def manifest_path(corpus_or_manifest: str | Path) -> Path:
    path = Path(corpus_or_manifest)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path} (expected a corpus directory with manifest.jsonl, or the file)")
    return path


def read_manifest(corpus_or_manifest: str | Path) -> list[Clip]:
    """All clips of a jsonl manifest that have a global caption and fine captions."""
    path = manifest_path(corpus_or_manifest)
    clips = []
    with path.open() as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            fine = record.get("fine_captions") or []
            if isinstance(fine, str):
                fine = [fine]
            if not record.get("global_caption") or not fine:
                continue
            audio = Path(record["path"])
            clips.append(
                Clip(
                    id=str(record.get("id", line_number)),
                    path=audio if audio.is_absolute() else path.parent / audio,
                    global_caption=record["global_caption"],
                    fine_captions=list(fine),
                    split=record.get("split"),
                    heldout_phrasing=bool(record.get("heldout_phrasing", False)),
                    record=record,
                )
            )
    return clips
