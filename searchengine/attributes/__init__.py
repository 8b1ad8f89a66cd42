"""Measured voice attributes: numbers computed from the audio at indexing time, and words for them.

One module per family, each a plain function of a 16 kHz mono waveform:
  level.py     loudness, peak, clipping, SNR, reverberation (decay tail)   numpy only, ~1000x real time
  prosody.py   F0 median / spread / voiced share, speaking rate            Praat, ~100x real time
  quality.py   DNSMOS SIG / BAK / OVRL                                      ONNX model (OpenVINO bf16 or ONNX Runtime), one 9 s window per clip
  spectrum.py  upper edge of the spectrum (telephone band vs wideband)      numpy only
  speaker.py   256-d speaker vector; gender from it and F0, with a confidence  Resemblyzer GE2E (OpenVINO bf16 or torch)
  words.py     corpus-quantile bins -> words ("very slowly" .. "very fast") and captions from them

Every stored column starts with `m_` so that a manifest's own fields (the generator writes
`pitch_semitones`, `snr_db`, ...) are never overwritten by a measurement of the same thing.
`measure_clip` is what the indexer's decode workers call, so this runs in parallel with embedding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from searchengine.attributes.level import measure_level
from searchengine.attributes.prosody import measure_prosody
from searchengine.attributes.quality import measure_quality
from searchengine.attributes.speaker import SPEAKER_DIM, estimate_gender, speaker_embedding
from searchengine.attributes.spectrum import measure_spectrum

SAMPLE_RATE = 16000

COLUMNS: dict[str, str] = {
    "m_f0_median_hz": "DOUBLE",
    "m_f0_spread_st": "DOUBLE",
    "m_voiced_share": "DOUBLE",
    "m_rate_syl_per_s": "DOUBLE",
    "m_syllables": "DOUBLE",
    "m_speech_seconds": "DOUBLE",
    "m_loudness_dbfs": "DOUBLE",
    "m_peak_dbfs": "DOUBLE",
    "m_clipping_share": "DOUBLE",
    "m_snr_db": "DOUBLE",
    "m_reverb_db": "DOUBLE",
    "m_active_seconds": "DOUBLE",
    "m_dnsmos_sig": "DOUBLE",
    "m_dnsmos_bak": "DOUBLE",
    "m_dnsmos_ovrl": "DOUBLE",
    "m_bandwidth_hz": "DOUBLE",
    "m_gender_est": "VARCHAR",
    "m_gender_prob": "DOUBLE",
}
"""DuckDB types of the measured columns (declared, so a first chunk of all-NULL values types them right)."""

__all__ = ["COLUMNS", "SPEAKER_DIM", "Measured", "measure_clip"]


class Measured(dict):
    """Column -> value for one clip, plus its speaker vector (None when there was too little voice)."""

    speaker_vector: np.ndarray | None = None


def measure_clip(x: np.ndarray, sr: int = SAMPLE_RATE, quality: bool = True,
                 timings: dict[str, float] | None = None) -> Measured:
    """Every attribute of one clip. Never raises for odd audio: a value that cannot be measured is None.

    `timings`, when given, gets each family's seconds added to it (level, pitch, DNSMOS, speaker):
    the indexer sums them over a run so its summary can say which measurement set the pace."""
    x = np.asarray(x, np.float32)
    spent = timings if timings is not None else {}

    def timed(family: str, measure: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return measure()
        finally:
            spent[family] = spent.get(family, 0.0) + time.perf_counter() - started

    out = Measured()
    out.update(timed("level", lambda: {**measure_level(x, sr), **measure_spectrum(x, sr)}))
    out.update(timed("pitch", lambda: measure_prosody(x, sr)))
    out.update(timed("DNSMOS", lambda: measure_quality(x, sr)) if quality
               else dict.fromkeys(("m_dnsmos_sig", "m_dnsmos_bak", "m_dnsmos_ovrl")))
    vec = timed("speaker", lambda: speaker_embedding(x, sr)) if len(x) >= int(0.3 * sr) else None
    out.speaker_vector = vec
    out.update(estimate_gender(vec, out.get("m_f0_median_hz")) if vec is not None
               else {"m_gender_est": None, "m_gender_prob": None})
    return out


def empty_row() -> dict[str, Any]:
    """All attribute columns as None (for clips indexed without attributes)."""
    return dict.fromkeys(COLUMNS)
