"""Build the real-speech development set: select recordings, convert them, write manifest and README.

Selection is deterministic (files in path order; per speaker the first ones inside the corpus's
duration range) so a rebuild picks the same clips. Each clip is written once as 16 kHz mono PCM WAV
(new file, fsync, rename); a re-run reuses clips already written and rewrites only the manifest and
README, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks.real_speech import conditions
from benchmarks.real_speech.repos import RepoStore
from benchmarks.real_speech.sources import CORPORA, NOISE, Candidate, Corpus
from searchengine.audio import SAMPLE_RATE, load_waveform

MANIFEST = "manifest.jsonl"
README = "README.md"
CLIPS = "clips"


@dataclass
class Planned:
    """A clip chosen for the set: its source recording and, for a simulated channel, which one."""

    candidate: Candidate
    corpus: Corpus
    condition: str | None = None  # one of conditions.CONDITIONS, or None for the recording as it is
    source_seconds: float = 0.0

    @property
    def clip_id(self) -> str:
        return self.candidate.clip_id + (f"-{self.condition}" if self.condition else "")

    @property
    def relpath(self) -> str:
        return f"{CLIPS}/{self.corpus.key}/{self.clip_id}.wav"


def source_seconds(data: bytes, suffix: str) -> float:
    """Duration of an encoded recording, from its header when libsndfile reads it, else by decoding."""
    try:
        return float(sf.info(io.BytesIO(data)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return len(decode_bytes(data, suffix)) / SAMPLE_RATE


def decode_bytes(data: bytes, suffix: str) -> np.ndarray:
    """16 kHz mono float32 of an encoded recording (any format `searchengine.audio` reads)."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        return load_waveform(f.name)


def select(corpus: Corpus, candidates: list[Candidate], seconds: dict[str, float]) -> list[Planned]:
    """Which candidates become clips: per speaker, the first `clean_per_speaker` inside the duration
    range, then `derived_per_speaker` further ones for each simulated channel; at most
    `speakers_per_gender` speakers of each gender, taken in candidate order."""
    by_speaker: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_speaker[c.speaker].append(c)
    per_gender: Counter[str] = Counter()
    out = []
    for items in by_speaker.values():
        fitting = [c for c in items if corpus.min_seconds <= seconds[c.clip_id] <= corpus.max_seconds]
        wanted = corpus.clean_per_speaker + corpus.derived_per_speaker * len(conditions.CONDITIONS)
        gender = items[0].gender
        if not fitting or (corpus.speakers_per_gender is not None and per_gender[gender] >= corpus.speakers_per_gender):
            continue
        per_gender[gender] += 1
        chosen = fitting[:wanted]
        out += [Planned(c, corpus, None, seconds[c.clip_id]) for c in chosen[: corpus.clean_per_speaker]]
        rest = chosen[corpus.clean_per_speaker:]
        for i, condition in enumerate(conditions.CONDITIONS):
            part = rest[i * corpus.derived_per_speaker:(i + 1) * corpus.derived_per_speaker]
            out += [Planned(c, corpus, condition, seconds[c.clip_id]) for c in part]
    return out


def plan(store: RepoStore, corpora: Iterable[Corpus] = CORPORA, log=print) -> list[Planned]:
    """Every clip of the set, across corpora; a clip id appearing twice is an error in the sources."""
    out: list[Planned] = []
    for corpus in corpora:
        candidates = corpus.candidates(store)
        seconds = {c.clip_id: source_seconds(store.read(c.repo, c.path), Path(c.path).suffix) for c in candidates}
        chosen = select(corpus, candidates, seconds)
        log(f"{corpus.key}: {len(chosen)} clips from {len({p.candidate.speaker for p in chosen})} speakers "
            f"({len(candidates)} recordings available)")
        out += chosen
    ids = Counter(p.clip_id for p in out)
    if dupes := [i for i, n in ids.items() if n > 1]:
        raise ValueError(f"clip ids chosen twice: {', '.join(sorted(dupes)[:5])}")
    return out


def write_wav(path: Path, waveform: np.ndarray) -> None:
    """16 kHz mono PCM16 WAV written as a new file, fsynced, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        sf.write(f, np.clip(waveform, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """A text file written as a new file, fsynced, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rng(clip_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(clip_id.encode()))


def record(p: Planned, seconds: float, params: dict[str, Any]) -> dict[str, Any]:
    """The manifest row of one clip: where it is, whose voice, which labels, where it came from."""
    c = p.candidate
    row: dict[str, Any] = {
        "id": p.clip_id,
        "path": p.relpath,
        "speaker": c.speaker,
        "gender": c.gender,
        "language": "en",
        "source": p.corpus.name,
        "licence": p.corpus.licence,
        "origin": c.repo.origin(c.path),
        "condition": p.condition or p.corpus.condition,
        "derived": p.condition is not None,
        "duration": round(seconds, 3),
    }
    row.update({k: v for k, v in c.labels.items() if v is not None})
    if p.condition:
        row["derived_from"] = c.clip_id
        row["recorded_condition"] = p.corpus.condition
        row.update(params)
    return row


#: Manifest keys that record how a simulated channel was drawn; kept from the last build when a clip is reused.
DERIVED_KEYS = ("derivation", "snr_db", "rt60_s", "direct_to_reverberant_db")


def _previous_rows(out: Path) -> dict[str, dict[str, Any]]:
    manifest = out / MANIFEST
    if not manifest.is_file():
        return {}
    rows = (json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["id"]: r for r in rows if "id" in r}


def convert(store: RepoStore, planned: list[Planned], out: Path, log=print) -> list[dict[str, Any]]:
    """Write every planned clip not already on disk; the manifest rows of all of them.

    A derived clip is reused only if the previous manifest recorded its parameters; otherwise it is
    derived again (same seed, same result) so its row can say how it was made.
    """
    previous = _previous_rows(out)
    noise: np.ndarray | None = None
    rows, written = [], 0
    for p in planned:
        target = out / p.relpath
        before = previous.get(p.clip_id, {})
        params: dict[str, Any] = {k: before[k] for k in DERIVED_KEYS if k in before}
        if target.exists() and (p.condition is None or "derivation" in params):
            seconds = sf.info(str(target)).duration
        else:
            x = decode_bytes(store.read(p.candidate.repo, p.candidate.path), Path(p.candidate.path).suffix)
            if p.condition:
                if p.condition == "noisy" and noise is None:
                    noise = decode_bytes(store.read(NOISE[0], NOISE[1]), ".wav")
                x, params = conditions.apply(p.condition, x, _rng(p.clip_id), noise)
            write_wav(target, x)
            written += 1
            seconds = len(x) / SAMPLE_RATE
        if p.condition == "noisy":
            params.update(noise_origin=NOISE[0].origin(NOISE[1]), noise_licence=NOISE[2])
        rows.append(record(p, seconds, params))
    log(f"wrote {written} clips, reused {len(planned) - written}")
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts the README reports: clips, speakers, genders, seconds; by source and by condition."""
    def group(key: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for value in sorted({r[key] for r in rows}):
            part = [r for r in rows if r[key] == value]
            out[str(value)] = {
                "clips": len(part),
                "speakers": len({r["speaker"] for r in part}),
                "female": len({r["speaker"] for r in part if r["gender"] == "female"}),
                "male": len({r["speaker"] for r in part if r["gender"] == "male"}),
                "female_clips": sum(r["gender"] == "female" for r in part),
                "male_clips": sum(r["gender"] == "male" for r in part),
                "seconds": round(sum(r["duration"] for r in part), 1),
            }
        return out

    per_speaker = Counter(r["speaker"] for r in rows)
    return {
        "clips": len(rows),
        "speakers": len(per_speaker),
        "female_speakers": len({r["speaker"] for r in rows if r["gender"] == "female"}),
        "male_speakers": len({r["speaker"] for r in rows if r["gender"] == "male"}),
        "female_clips": sum(r["gender"] == "female" for r in rows),
        "male_clips": sum(r["gender"] == "male" for r in rows),
        "speakers_with_3_or_more": sum(n >= 3 for n in per_speaker.values()),
        "seconds": round(sum(r["duration"] for r in rows), 1),
        "by_source": group("source"),
        "by_condition": group("condition"),
    }


def manifest_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in sorted(rows, key=lambda r: r["id"]))


def readme_text(rows: list[dict[str, Any]], command: str) -> str:
    """data/real_speech/README.md: what the set holds, where it came from, how to use and rebuild it."""
    s = summary(rows)
    lines = [
        "# Real-speech development set",
        "",
        f"Built {date.today().isoformat()} by `{command}`. Third-party recordings: keep them out of git and do",
        "not redistribute; every clip's licence and origin (repository@commit:path) is in `manifest.jsonl`.",
        "",
        f"{s['clips']} clips, {s['seconds'] / 60:.1f} minutes, {s['speakers']} speakers "
        f"({s['female_speakers']} female, {s['male_speakers']} male; {s['female_clips']} / {s['male_clips']} clips); "
        f"{s['speakers_with_3_or_more']} speakers have 3 clips or more. 16 kHz mono PCM WAV.",
        "",
        "## By source",
        "",
        "| source | licence | clips | speakers (F/M) | minutes |",
        "|---|---|---|---|---|",
    ]
    licences = {r["source"]: r["licence"] for r in rows}
    for name, g in s["by_source"].items():
        lines.append(f"| {name} | {licences[name]} | {g['clips']} | {g['speakers']} ({g['female']}/{g['male']}) "
                     f"| {g['seconds'] / 60:.1f} |")
    lines += ["", "## By condition", "",
              "Conditions `telephone`, `noisy` and `reverberant` are further utterances of real speakers passed",
              "through a simulated channel (`derived: true`, with `derivation`, `snr_db` or `rt60_s`); the",
              "others are the recordings as published.", "",
              "| condition | clips | speakers (F/M) | clips F/M | minutes |", "|---|---|---|---|---|"]
    for name, g in s["by_condition"].items():
        lines.append(f"| {name} | {g['clips']} | {g['speakers']} ({g['female']}/{g['male']}) "
                     f"| {g['female_clips']}/{g['male_clips']} | {g['seconds'] / 60:.1f} |")
    lines += ["", "## Speakers", "", "| speaker | gender | clips | conditions | age | accent |", "|---|---|---|---|---|---|"]
    by_speaker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_speaker[r["speaker"]].append(r)
    for speaker in sorted(by_speaker):
        rs = by_speaker[speaker]
        conds = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["condition"] for r in rs).items()))
        lines.append(f"| {speaker} | {rs[0]['gender']} | {len(rs)} | {conds} | {rs[0].get('age', '')} "
                     f"| {rs[0].get('accent', '')} |")
    corrected = sorted({(r["speaker"], r["gender_source"]) for r in rows if r.get("gender_source")})
    if corrected:
        lines += ["", "Gender labels not taken from the source's own metadata (`gender_source` in their rows):", ""]
        lines += [f"* {speaker}: {why}" for speaker, why in corrected]
    lines += ["", "## Use", "",
              "* `manifest.jsonl`, one clip a line: `id`, `path` (relative to this folder), `speaker`, `gender`",
              "  (female/male), `language`, `source`, `licence`, `origin`, `condition`, `derived`, `duration`, and",
              "  where the source gives them `age`, `accent`, `region`, `transcript`, `subset`, `gender_source`; derived clips add",
              "  `derived_from`, `recorded_condition`, `derivation` and `snr_db` (with the noise's origin) or",
              "  `rt60_s` and `direct_to_reverberant_db`.",
              "* Index it with its labels: `clsp-search index data/real_speech/manifest.jsonl --collection DIR`;",
              "  from paths only (no labels reach the collection): `clsp-search index data/real_speech/clips --collection DIR`,",
              "  then join results to the manifest by path.",
              "* Speakers with one clip are distractors for same-speaker retrieval and extra voices for gender.",
              "* Rebuild: see benchmarks/RESULTS.md, \"Real-speech development set\".", ""]
    return "\n".join(lines)


def build(out: Path, store: RepoStore, command: str, corpora: Iterable[Corpus] = CORPORA, log=print) -> dict[str, Any]:
    """Build (or complete) the set in `out`; returns its summary."""
    planned = plan(store, corpora, log)
    rows = convert(store, planned, out, log)
    keep = {out / p.relpath for p in planned}
    stale = [f for f in (out / CLIPS).rglob("*.wav") if f not in keep]
    for f in stale:  # clips of an earlier selection would be indexed by a folder scan
        f.unlink()
    if stale:
        log(f"removed {len(stale)} clips no longer selected")
    write_text(out / MANIFEST, manifest_text(rows))
    write_text(out / README, readme_text(rows, command))
    return summary(rows)


def load_manifest(root: Path) -> list[dict[str, Any]]:
    """The set's manifest rows with `path` made absolute; a clear error if the set is not built."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} does not exist; build the set with `python -m benchmarks.real_speech build`")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        r["path"] = str((root / r["path"]).resolve())
    return rows
