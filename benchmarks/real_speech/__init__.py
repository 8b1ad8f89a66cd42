"""The real-speech development set: real voices with known speaker and gender, rebuilt from named sources.

Benchmarks measure on generated voices (`searchengine.corpus`) and, through this set, on real
recordings: public speech corpora (LibriSpeech, VCTK, VCC 2016, CMU ARCTIC, LJ Speech) whose samples
ship in public repositories, pinned to a commit (`sources.py`), converted to 16 kHz mono WAV under
`data/real_speech/` with `manifest.jsonl` (speaker, gender, licence, origin, condition, and age,
accent and transcript where the source gives them). The audio is third-party and never committed.

    python -m benchmarks.real_speech build                      # clones what no mirror has
    python -m benchmarks.real_speech build --mirror DIR         # read DIR/owner+name clones first
    python -m benchmarks.real_speech sources                    # what it reads, with licences

This package is a helper, not a benchmark: `make bench` runs `bench_*` modules only. A benchmark
uses the set with `load_manifest()` and skips, saying how to build it, when `available()` is false.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.real_speech.build import MANIFEST, load_manifest

__all__ = ["DEFAULT_DIR", "available", "load_manifest"]

#: Where `build` writes the set by default (data/ is git-ignored).
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "data" / "real_speech"


def available(root: Path = DEFAULT_DIR) -> bool:
    """Whether the set has been built at `root`."""
    return (root / MANIFEST).is_file()
