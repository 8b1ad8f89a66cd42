"""Facets: what a collection's clips are, one entry per fact, for people to narrow a search by.

A column is not a fact. A manifest may declare a clip's gender, the indexer measures it from the audio
(`m_gender_est`) and keeps a merged column for captions (`m_gender`); a generated corpus states its
pitch as a word and as semitones while the indexer measures F0 in Hz. Listing each column as a facet
shows the same fact four times under four names. Here each fact is one facet whose *sources* are its
columns, grouped as **declared** (what the manifest says) and **measured** (what the indexer computed
from the signal) and labelled as such, so a reader sees where a value comes from.

Not facets (they stay filterable, only not offered as something to browse):
* ids, keys, speaker clusters; paths, URLs and origins; licences and credits; free text (captions,
  transcripts, long or nearly unique strings); bookkeeping (times added, segment bounds, runs);
* columns with one value across the collection (nothing to choose), or none at all;
* merged columns that repeat another fact's sources (`m_gender` is the declared gender where given,
  else the measured one).

Categories list their values with counts; numbers are ranges with the collection's distribution
(quantiles and a histogram), so a slider can show where clips are before a bound is typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from searchengine.filters import Column
from searchengine.store.schema import quote_ident

MAX_VALUES = 50
"""A category with more distinct values than this is not offered (nobody picks from hundreds of names)."""
HISTOGRAM_BINS = 12
FREE_TEXT_MEAN_CHARS = 40
"""Text whose values average more characters than this is prose (captions, transcripts), not a category."""


@dataclass(frozen=True)
class Fact:
    """One thing a clip can be described by, and the columns that hold it."""

    key: str
    label: str
    declared: tuple[str, ...] = ()
    measured: tuple[str, ...] = ()


FACTS: tuple[Fact, ...] = (
    Fact("gender", "Gender", ("gender",), ("m_gender_est", "m_gender_prob")),
    Fact("age", "Age", ("age",)),
    Fact("accent", "Accent", ("accent", "region")),
    Fact("language", "Language", ("language",)),
    Fact("speaker", "Speaker", ("speaker",)),
    Fact("pitch", "Pitch", ("pitch_level", "pitch_semitones"), ("m_pitch_word", "m_f0_median_hz")),
    Fact("intonation", "Intonation", ("pitch_variation", "pitch_spread_semitones"), ("m_monotony_word", "m_f0_spread_st")),
    Fact("pace", "Pace", ("speaking_rate", "rate_factor"), ("m_rate_word", "m_rate_syl_per_s")),
    Fact("loudness", "Loudness", ("loudness", "loudness_dbfs"), ("m_loudness_dbfs",)),
    Fact("timbre", "Timbre", ("timbre",)),
    Fact("whisper", "Whisper", ("whisper",), ("m_voiced_share",)),
    Fact("noise", "Background noise", ("noise", "snr_db", "noise_color"), ("m_noise_word", "m_snr_db")),
    Fact("distance", "Reverberation / distance", ("reverb", "reverberance"), ("m_reverb_word", "m_reverb_db")),
    Fact("channel", "Channel", ("channel", "telephone"), ("m_bandwidth_hz",)),
    Fact("quality", "Quality", (), ("m_dnsmos_ovrl", "m_dnsmos_sig", "m_dnsmos_bak")),
    Fact("clipping", "Clipping", (), ("m_clipping_share", "m_peak_dbfs")),
    Fact("duration", "Duration", ("manifest_duration",), ("duration", "m_speech_seconds")),
    Fact("sample_rate", "Sample rate", ("manifest_sample_rate",), ("sample_rate",)),
    Fact("channels", "Audio channels", (), ("channels",)),
)
"""Known facts in display order; a manifest column that none names becomes a fact of its own."""

SOURCE_LABELS: dict[str, str] = {
    "m_gender_est": "estimated from the voice", "m_gender_prob": "confidence of the estimate (0.5-1)",
    "pitch_level": "level", "pitch_semitones": "shift (semitones)", "m_pitch_word": "level, relative to gender",
    "m_f0_median_hz": "median F0 (Hz)", "pitch_variation": "variation", "pitch_spread_semitones": "spread (semitones)",
    "m_monotony_word": "variation", "m_f0_spread_st": "F0 spread (semitones)", "speaking_rate": "rate",
    "rate_factor": "rate (x)", "m_rate_word": "rate", "m_rate_syl_per_s": "syllables per second",
    "loudness_dbfs": "level (dBFS)", "m_loudness_dbfs": "active speech level (dBFS)",
    "m_voiced_share": "voiced share (low for whispers)", "snr_db": "SNR (dB)", "noise_color": "noise colour",
    "m_noise_word": "level", "m_snr_db": "SNR (dB)", "reverberance": "reverberance (%)", "m_reverb_word": "distance",
    "m_reverb_db": "reverberation tail (dB)", "telephone": "telephone", "m_bandwidth_hz": "bandwidth (Hz)",
    "m_dnsmos_ovrl": "DNSMOS overall (1-5)", "m_dnsmos_sig": "DNSMOS speech (1-5)",
    "m_dnsmos_bak": "DNSMOS background (1-5)", "m_clipping_share": "clipped share", "m_peak_dbfs": "peak (dBFS)",
    "manifest_duration": "seconds", "duration": "seconds", "m_speech_seconds": "seconds of speech",
    "manifest_sample_rate": "Hz", "sample_rate": "Hz of the file", "region": "region",
}

ORIGIN_LABELS = {"declared": "declared in the manifest", "measured": "measured from the audio"}

NOT_FACETS = frozenset({
    "id", "source_key", "source_path", "segment", "start", "end", "added_at", "global_caption", "fine_captions",
    "text", "transcript", "normalized_transcript", "heldout_phrasing", "m_gender", "m_speaker_cluster",
    "m_syllables", "m_active_seconds",
})
"""Columns that are never facets by name: bookkeeping, captions and transcripts, and merged or
technical measurements (`m_gender` merges declared and measured gender; the others are by-products)."""

_ID = re.compile(r"(^|_)(id|ids|key|uuid|hash|checksum|cluster)$", re.I)
_PATH = re.compile(r"(^|_)(path|paths|file|filename|url|uri|origin|location|dir|folder)(_|$)", re.I)
_LICENCE = re.compile(r"(licen[cs]e|copyright|rights|attribution|credit)", re.I)
_FREE_TEXT = re.compile(r"(caption|transcript|sentence|description|comment|notes?$|^text$|_text$)", re.I)


def hidden_by_name(name: str) -> str | None:
    """Why a column is not a facet, judged by its name alone (None: it may be one)."""
    bare = name.removeprefix("attributes_")
    if name in NOT_FACETS or bare in NOT_FACETS:
        return "bookkeeping or merged"
    if _ID.search(bare):
        return "id"
    if _LICENCE.search(bare):
        return "licence"
    if _PATH.search(bare):
        return "path"
    if _FREE_TEXT.search(bare):
        return "free text"
    return None


def _facts_for(columns: Mapping[str, Column]) -> list[tuple[Fact, list[tuple[str, str]]]]:
    """Known facts with the (column, origin) pairs this collection has, then one fact per other column."""
    out: list[tuple[Fact, list[tuple[str, str]]]] = []
    claimed: set[str] = set()
    for fact in FACTS:
        sources = []
        for origin, names in (("declared", fact.declared), ("measured", fact.measured)):
            for name in names:
                for present in (name, f"attributes_{name}"):
                    if present in columns and present not in claimed:
                        sources.append((present, origin))
                        claimed.add(present)
        if sources:
            out.append((fact, sources))
    for name in columns:
        if name not in claimed and hidden_by_name(name) is None:
            origin = "measured" if name.startswith("m_") else "declared"
            out.append((Fact(name, _humane(name.removeprefix("m_"))), [(name, origin)]))
    return out


def collection_facets(con: Any, columns: Mapping[str, Column], max_values: int = MAX_VALUES,
                      bins: int = HISTOGRAM_BINS) -> dict[str, dict[str, Any]]:
    """fact key -> {label, sources: [{field, origin, origin_label, label, type, kind, ...}]} in display
    order, for the facts this collection can be narrowed by. A category source has `values` (value,
    count; most frequent first), a range source `min`, `max`, `quantiles` and `histogram`; both say how
    many clips have no value (`missing`)."""
    (total,) = con.execute("SELECT count(*) FROM clips").fetchone()
    out: dict[str, dict[str, Any]] = {}
    for fact, sources in _facts_for(columns):
        described = []
        for name, origin in sources:
            if hidden_by_name(name) is not None:
                continue
            info = _describe(con, columns[name], int(total), max_values, bins)
            if info is None:
                continue
            info.update(field=name, origin=origin, origin_label=ORIGIN_LABELS[origin],
                        label=SOURCE_LABELS.get(name.removeprefix("attributes_"), _humane(name.removeprefix("m_"))))
            described.append(info)
        if described:
            out[fact.key] = {"label": fact.label, "sources": described}
    return out


def _describe(con: Any, column: Column, total: int, max_values: int, bins: int) -> dict[str, Any] | None:
    """A source's values or distribution, or None when it is not worth offering (constant, empty,
    free text, a path or an id by its values)."""
    ident = quote_ident(column.name)
    base = {"type": column.kind, "sql_type": column.sql_type}
    if column.kind == "number":
        lo, hi, n = con.execute(f"SELECT min({ident}), max({ident}), count({ident}) FROM clips "
                                f"WHERE isfinite({ident}::DOUBLE)").fetchone()
        if n == 0 or lo == hi:
            return None
        qs = con.execute(f"SELECT quantile_cont({ident}, [0.05, 0.25, 0.5, 0.75, 0.95]) FROM clips "
                         f"WHERE isfinite({ident}::DOUBLE)").fetchone()[0]
        width = (float(hi) - float(lo)) / bins
        counts = dict(con.execute(
            f"SELECT least(CAST(floor(({ident} - ?) / ?) AS BIGINT), ?) AS b, count(*) FROM clips "
            f"WHERE isfinite({ident}::DOUBLE) GROUP BY b", [float(lo), width, bins - 1]).fetchall())
        return {**base, "kind": "range", "min": _num(lo), "max": _num(hi), "missing": total - int(n),
                "quantiles": dict(zip(("p5", "p25", "p50", "p75", "p95"), map(_num, qs), strict=True)),
                "histogram": {"edges": [_num(float(lo) + i * width) for i in range(bins)] + [_num(hi)],
                              "counts": [int(counts.get(i, 0)) for i in range(bins)]}}
    if column.kind == "time":
        return None  # when a clip was made or added is bookkeeping, not a property of the voice
    source = f"(SELECT unnest({ident}) AS v FROM clips)" if column.kind == "list" else f"(SELECT {ident} AS v FROM clips)"
    distinct, present, mean_chars, pathlike = con.execute(
        f"SELECT count(DISTINCT v), count(v), avg(length(CAST(v AS VARCHAR))), "
        f"avg(CASE WHEN regexp_matches(CAST(v AS VARCHAR), '[/\\\\]|^[a-z]+://') THEN 1.0 ELSE 0.0 END) FROM {source}"
    ).fetchone()
    if distinct < 2 or distinct > max_values:
        return None  # constant, empty, or more names than anyone picks from (ids, free text)
    if column.kind == "text" and ((mean_chars or 0) > FREE_TEXT_MEAN_CHARS or (pathlike or 0) > 0.5
                                  or (distinct == present and present > 20)):
        return None
    rows = con.execute(f"SELECT v, count(*) AS n FROM {source} WHERE v IS NOT NULL GROUP BY v "
                       f"ORDER BY n DESC, v").fetchall()
    (missing,) = con.execute(f"SELECT count(*) FROM clips WHERE {ident} IS NULL").fetchone()
    return {**base, "kind": "category", "values": [{"value": _plain(v), "count": int(n)} for v, n in rows],
            "missing": int(missing)}


def facet_fields(facets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every column that appears as a source of some facet."""
    return [s["field"] for f in facets.values() for s in f["sources"]]


def _humane(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _num(v: Any) -> float | int | None:
    if v is None:
        return None
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else round(f, 6)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


__all__: Sequence[str] = ("FACTS", "Fact", "collection_facets", "facet_fields", "hidden_by_name")
