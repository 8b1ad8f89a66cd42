"""Words for measured numbers, and a global caption written from them, in the manner of dataspeech.

Bins are corpus quantiles (20/40/60/80 %), computed at indexing time over the whole collection and
stored in collection.json, so "speaks quickly" means "faster than most clips in this collection":
absolute thresholds would call a whole audiobook corpus "slow" or a whole call-centre corpus "noisy".
Pitch is binned within each gender (a "high" male voice is lower than a "low" female one). With fewer
than `MIN_VALUES` measured clips quantiles mean nothing, and the bins measured on a 60-clip generated
corpus (`DEFAULT_EDGES`) are used instead.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTILES = (0.2, 0.4, 0.6, 0.8)
MIN_VALUES = 20


@dataclass(frozen=True)
class Family:
    """One word scale: the measured column it reads, and five words from the lowest value up."""

    name: str
    column: str
    words: tuple[str, str, str, str, str]
    word_column: str


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("rate", "m_rate_syl_per_s", ("very slowly", "slowly", "at a moderate speed", "quickly", "very fast"), "m_rate_word"),
        Family("pitch", "m_f0_median_hz", ("very low", "fairly low", "medium", "fairly high", "very high"), "m_pitch_word"),
        Family("noise", "m_snr_db", ("very noisy", "noisy", "slightly noisy", "clean", "very clean"), "m_noise_word"),
        Family("reverb", "m_reverb_db", ("very close", "close", "slightly distant", "distant", "very distant"), "m_reverb_word"),
        Family("monotony", "m_f0_spread_st", ("very monotone", "fairly monotone", "moderately expressive", "fairly expressive", "very expressive"), "m_monotony_word"),
    )
}
WORD_COLUMNS = {f.word_column: "VARCHAR" for f in FAMILIES.values()}
GENDERS = ("female", "male")

DEFAULT_EDGES: dict[str, list[float]] = {
    "rate": [3.1, 3.6, 4.1, 4.7],
    "pitch:female": [150.0, 180.0, 205.0, 240.0],
    "pitch:male": [85.0, 100.0, 115.0, 135.0],
    "pitch:unknown": [100.0, 130.0, 165.0, 205.0],
    "noise": [9.5, 16.0, 24.0, 50.0],
    "reverb": [-24.0, -22.0, -19.5, -16.5],
    "monotony": [1.0, 1.9, 2.8, 4.0],
}
"""Fallback edges, from the measured attributes of `corpus generate --n 60 --seed 11`."""


def _edges(values: Sequence[float], key: str) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) < MIN_VALUES:
        return {"edges": DEFAULT_EDGES[key], "source": "default", "n": int(len(v))}
    return {"edges": [round(float(e), 4) for e in np.quantile(v, QUANTILES)], "source": "quantiles", "n": int(len(v))}


def compute_bins(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Bin edges for every family from clip rows (dicts with the measured columns and `m_gender`)."""
    bins: dict[str, Any] = {}
    for fam in FAMILIES.values():
        if fam.name == "pitch":
            for g in (*GENDERS, "unknown"):
                vals = [r.get(fam.column) for r in rows if (r.get("m_gender") or "unknown") == g]
                bins[f"pitch:{g}"] = {**_edges(vals, f"pitch:{g}"), "column": fam.column, "words": list(fam.words)}
        else:
            bins[fam.name] = {**_edges([r.get(fam.column) for r in rows], fam.name), "column": fam.column,
                              "words": list(fam.words)}
    return bins


def word(bins: Mapping[str, Any], key: str, value: float | None) -> str | None:
    """The word for `value` on scale `key` ('rate', 'pitch:female', ...); None for a missing value."""
    if value is None or not np.isfinite(value) or key not in bins:
        return None
    b = bins[key]
    return b["words"][bisect.bisect_right(b["edges"], float(value))]


def words_for(bins: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, str | None]:
    """Every word column of one clip row."""
    out: dict[str, str | None] = {}
    for fam in FAMILIES.values():
        key = f"pitch:{row.get('m_gender') or 'unknown'}" if fam.name == "pitch" else fam.name
        out[fam.word_column] = word(bins, key, row.get(fam.column))
    return out


_PERSON = {"female": "woman", "male": "man"}


def caption(words: Mapping[str, str | None], gender: str | None) -> str:
    """One global caption from a clip's words, e.g. "A woman with a fairly high, very monotone voice
    speaks quickly in a very clean, close recording." Missing words are left out, never guessed."""
    person = _PERSON.get(gender or "", "person")
    voice = [w for w in (words.get("m_pitch_word"), words.get("m_monotony_word")) if w]
    text = f"A {person}"
    if voice:
        text += f" with a {', '.join(voice)} voice"
    rate = words.get("m_rate_word")
    text += f" speaks {rate}" if rate else " speaks"
    place = [w for w in (words.get("m_noise_word"), words.get("m_reverb_word")) if w]
    if place:
        text += f" in a {', '.join(place)} recording"
    return text + "."
