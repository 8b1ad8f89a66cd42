"""A pool of real voices outside the development set, for fitting small models (the gender estimate).

Resemblyzer's demo data holds one LibriSpeech train-clean-100 utterance from each of 251 readers; the
development set takes 10 women and 10 men of them (`sources.librispeech_one_each`) and leaves out
readers it uses elsewhere. The pool is every other reader, one utterance each: real voices whose
speakers never occur in the development set, so a model fitted on the pool can be scored on the set
without speaker overlap. Gender comes from LibriSpeech's SPEAKERS.TXT with LibriTTS-P's listener
correction, as for the set (`sources.correct_librispeech_genders`).

    python -m benchmarks.real_speech pool --mirror DIR     # -> data/real_speech_pool/

The audio is third-party (CC BY 4.0) and never committed; weights fitted on it may be, with credit.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks.real_speech.build import (
    MANIFEST,
    README,
    convert,
    manifest_text,
    plan,
    select,
    source_seconds,
    write_text,
)
from benchmarks.real_speech.repos import RepoStore
from benchmarks.real_speech.sources import CORPORA, LIBRISPEECH_LICENCE, Candidate, Corpus

#: Where `pool` writes by default (data/ is git-ignored).
DEFAULT_POOL_DIR = Path(__file__).resolve().parents[2] / "data" / "real_speech_pool"


def _development_corpus() -> Corpus:
    return next(c for c in CORPORA if c.key == "librispeech-one-each")


def pool_candidates(store: RepoStore) -> list[Candidate]:
    """Readers of the one-utterance-per-reader data that the development set does not select."""
    corpus = _development_corpus()
    candidates = corpus.candidates(store)  # already without the readers the set holds several clips of
    seconds = {c.clip_id: source_seconds(store.read(c.repo, c.path), Path(c.path).suffix) for c in candidates}
    taken = {p.candidate.speaker for p in select(corpus, candidates, seconds)}
    return [c for c in candidates if c.speaker not in taken]


POOL = Corpus(
    "librispeech-pool", "LibriSpeech train-clean-100 (readers outside the development set)", LIBRISPEECH_LICENCE,
    "audiobook", "LibriVox volunteers reading at home; the 'clean' split", pool_candidates,
    clean_per_speaker=1, min_seconds=1.5, max_seconds=35.0,
)


def build_pool(out: Path, store: RepoStore, command: str, log=print) -> dict[str, Any]:
    """Write the pool's clips and manifest into `out` (resumable like the set's build); its counts."""
    planned = plan(store, (POOL,), log)
    rows = convert(store, planned, out, log)
    write_text(out / MANIFEST, manifest_text(rows))
    genders = Counter(r["gender"] for r in rows)
    write_text(out / README, "\n".join([
        "# Real voices outside the development set",
        "",
        f"Built {date.today().isoformat()} by `{command}`. {len(rows)} clips, one per LibriSpeech reader "
        f"({genders['female']} female, {genders['male']} male), none of them a speaker of data/real_speech.",
        "Third-party recordings (CC BY 4.0, LibriSpeech): keep them out of git; licence and origin of each",
        "clip are in `manifest.jsonl`. Used to fit the gender estimate (`python -m training.train_gender`).",
        "",
    ]))
    return {"clips": len(rows), "female": genders["female"], "male": genders["male"],
            "seconds": round(sum(r["duration"] for r in rows), 1)}
