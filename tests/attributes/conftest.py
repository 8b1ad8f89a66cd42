"""One generated corpus (60 clips, seed 11, split by voice) and the cheap attributes of every clip.

The ground truth is the generator's: each clip's manifest says what pitch shift, spread, rate,
loudness, SNR and reverberance it was rendered with. Pitch and rate are relative to the voice's own
default, so the same sentence is rendered again with the same voice at neutral settings and measured
the same way; the measured shift is then compared with the requested one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from searchengine.attributes.level import measure_level
from searchengine.attributes.prosody import measure_prosody

N, SEED = 60, 11
NEUTRAL = dict(pitch_semitones=0.0, pitch_spread_semitones=None, rate_factor=1.0, loudness_dbfs=-25.0,
               whisper=False, snr_db=None, noise_color=None, reverberance=0.0, telephone=False)


@pytest.fixture(scope="session")
def attr_corpus(tmp_path_factory) -> Path:
    from searchengine.corpus.generate import generate
    from searchengine.corpus.voices import available_voices

    out = tmp_path_factory.mktemp("attr-corpus") / "c"
    generate(out, n=N, seed=SEED, voices=available_voices(), workers=os.cpu_count(), split_by_voice=True)
    return out


@pytest.fixture(scope="session")
def records(attr_corpus) -> list[dict]:
    return [json.loads(line) for line in (attr_corpus / "manifest.jsonl").read_text().splitlines()]


def voice(voice_id: str):
    from searchengine.corpus.voices import available_voices

    return next(v for v in available_voices() if v.id == voice_id)


def render_neutral(rec: dict) -> np.ndarray:
    """The clip's sentence and voice with every factor at its neutral value."""
    from searchengine.corpus.factors import Factors
    from searchengine.corpus.render import render

    return render(rec["text"], voice(rec["voice"]), Factors(**NEUTRAL), np.random.default_rng(0))


@pytest.fixture(scope="session")
def measured(attr_corpus, records) -> list[dict]:
    """Per clip: record, attributes `a`, measurements `m`, and `base` (neutral render) where pitch and
    rate can be read (voiced, SNR >= 8 dB)."""
    rows = []
    for rec in records:
        x, sr = sf.read(str(attr_corpus / rec["path"]), dtype="float32")
        a = rec["attributes"]
        row = {"rec": rec, "a": a, "m": {**measure_level(x, sr), **measure_prosody(x, sr)}}
        if not a["whisper"] and (a["snr_db"] is None or a["snr_db"] >= 8):
            row["base"] = measure_prosody(render_neutral(rec))
        rows.append(row)
    return rows


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(np.asarray(a, float)))
    rb = np.argsort(np.argsort(np.asarray(b, float)))
    return float(np.corrcoef(ra, rb)[0, 1])
