"""The LJSpeech layout: `wavs/<id>.wav` (each clip cut to its segment, mono, 16-bit, at one sample
rate) and `metadata.csv`, one `id|text|normalized text` line per clip, no header, as LJSpeech-1.1
ships and TTS recipes (Coqui, ESPnet, NeMo's converters) read it.

The id is the clip's source name (its manifest id or file stem, `_<segment>` for a later segment of
a file), made safe for a file name; names that would collide get the clip id appended. A transcript
cannot hold the separator or a line break, so those become spaces; the normalised field is the
source's normalised transcript, else the transcript. Clips without a transcript are written with
empty text fields and counted, since a TTS recipe needs text. `clips.jsonl` beside them keeps each
clip's full manifest row (source file, span, score, captions), which the layout has no place for.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchengine.export.clipaudio import clip_waveform, encode
from searchengine.export.files import publish_folder, staging_folder, write_bytes
from searchengine.manifest import AUDIO_EXTENSIONS

DEFAULT_SAMPLE_RATE = 22050
"""LJSpeech's own rate, which recipes written for it assume."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEGMENT = re.compile(r"(.+)#(\d+)")


def clip_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A file-safe, unique name per row: the last part of its id, an audio extension dropped."""
    bases = []
    for row in rows:
        ident = str(row.get("id") or row.get("clip_id"))
        m = _SEGMENT.fullmatch(ident)
        key, segment = (m.group(1), m.group(2)) if m else (ident, "")
        name = re.split(r"[/\\]", key)[-1]
        if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
            name = Path(name).stem
        base = _UNSAFE.sub("_", name).strip("._") or "clip"
        bases.append(base[:100] + (f"_{segment}" if segment else ""))
    counts = Counter(bases)
    return [b if counts[b] == 1 else f"{b}-{row.get('clip_id')}" for b, row in zip(bases, rows, strict=True)]


def _field(text: Any) -> str:
    return " ".join(str(text or "").replace("|", " ").split())


def write_ljspeech(rows: Sequence[dict[str, Any]], out: Path, sample_rate: int | None = None) -> None:
    """Write the layout to the folder `out`."""
    rate = int(sample_rate or DEFAULT_SAMPLE_RATE)
    tmp = staging_folder(out)
    try:
        (tmp / "wavs").mkdir()
        lines, provenance = [], []
        for name, row in zip(clip_names(rows), rows, strict=True):
            wave, _ = clip_waveform(row, rate)
            write_bytes(tmp / "wavs" / f"{name}.wav", encode(wave, rate, "WAV"))
            text = _field(row.get("transcript"))
            lines.append(f"{name}|{text}|{_field(row.get('normalized_transcript')) or text}\n")
            provenance.append(json.dumps({"name": name, "wav": f"wavs/{name}.wav", **row}, ensure_ascii=False,
                                         default=str) + "\n")
        write_bytes(tmp / "metadata.csv", "".join(lines).encode("utf-8"))
        write_bytes(tmp / "clips.jsonl", "".join(provenance).encode("utf-8"))
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
