"""Query understanding on and off: descriptive text queries on real recordings and on synthetic voices
clsp-mini never trained on, scored against labels the collections never saw.

Three collections, each indexed from a bare list of audio paths (no labels, no captions reach them;
attributes measured, the defaults of `clsp-search index`):

* real: the real-speech development set (`data/real_speech`, `python -m benchmarks.real_speech build`;
  323 clips, 44 speakers); relevance from its gender and recording condition labels;
* synthetic val / test: clips generated (`searchengine.corpus.generate`, seed 5) with the voices of
  the validation / test split of clsp-mini's training corpus (`--seed 0 --split-by-voice`); relevance
  from the generator's facts. The fusion weight is chosen on val; test is reported.

Measures, understanding on (`understand: true`) against off (the model's ranking alone):

* P@10 and nDCG@10 (binary gains) of fixed descriptive queries (`REAL_QUERIES`, `SYNTHETIC_QUERIES`),
  through `Searcher.search_text`, the call the HTTP API makes;
* gender P@40 of "a man speaking" / "a woman speaking" over HTTP (`POST /search/text`, the real app
  under uvicorn);
* the fusion weight swept on every collection (chosen on synthetic val by mean nDCG@10).

The decision rule, fixed before measuring: understanding is the default only if on real speech it
raises both mean P@10 and mean nDCG@10, and on synthetic test voices it lowers neither.

    python -m benchmarks understanding
    CLSP_SEARCH_BENCH_KEEP=data/bench-understanding python -m benchmarks understanding   # reuse collections

Without the development set the real half is skipped, saying how to build it.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Truth = dict[str, Any]
Query = tuple[str, Callable[[Truth], bool]]

WEIGHTS = (0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
SYNTHETIC_CLIPS, SYNTHETIC_SEED = 240, 5
CLEAN_CONDITIONS = ("studio", "audiobook", "audiobook-other")
GENDER_QUERIES = {"male": "a man speaking", "female": "a woman speaking"}


def _is(field: str, *values: Any) -> Callable[[Truth], bool]:
    return lambda t: t.get(field) in values


def _all(*tests: Callable[[Truth], bool]) -> Callable[[Truth], bool]:
    return lambda t: all(test(t) for test in tests)


MAN, WOMAN = _is("gender", "male"), _is("gender", "female")
REAL_QUERIES: tuple[Query, ...] = (
    ("a man speaking", MAN),
    ("a woman speaking", WOMAN),
    ("speech over a telephone line", _is("condition", "telephone")),
    ("a noisy recording with background noise", _is("condition", "noisy")),
    ("a voice far from the microphone in an echoey room", _is("condition", "reverberant")),
    ("a clean, close recording", _is("condition", *CLEAN_CONDITIONS)),
    ("a man on the telephone", _all(MAN, _is("condition", "telephone"))),
    ("a woman on the phone", _all(WOMAN, _is("condition", "telephone"))),
    ("a woman in a noisy kitchen", _all(WOMAN, _is("condition", "noisy"))),
    ("a man in a reverberant hall", _all(MAN, _is("condition", "reverberant"))),
)
SYNTHETIC_QUERIES: tuple[Query, ...] = (
    ("a man speaking", MAN),
    ("a woman speaking", WOMAN),
    ("someone whispering", _is("whisper", True)),
    ("a man speaking very quickly", _all(MAN, _is("speaking_rate", "fast", "very fast"))),
    ("a woman speaking slowly", _all(WOMAN, _is("speaking_rate", "slow", "very slow"))),
    ("a low-pitched man over a telephone line",
     _all(MAN, _is("pitch_level", "low", "very low"), _is("channel", "telephone"))),
    ("a high-pitched woman", _all(WOMAN, _is("pitch_level", "high", "very high"))),
    ("a voice far away in a large echoing hall", _is("reverb", "distant", "very distant")),
    ("speech with heavy background noise", _is("noise", "noisy", "very noisy")),
    ("a quiet, soft-spoken voice", _is("loudness", "quiet")),
    ("a loud voice", _is("loudness", "loud")),
    ("speech over a telephone line", _is("channel", "telephone")),
    ("a clean, close recording", _all(_is("noise", "clean"), _is("reverb", "close"))),
    ("a monotone male voice", _all(MAN, _is("pitch_variation", "monotone"))),
    ("an elderly woman", _all(WOMAN, _is("age", "elderly"))),
    ("a man with a Scottish accent", _all(MAN, _is("accent", "Scottish"))),
)


# ------------------------------------------------------------------------------------------ data
def split_voices(split: str) -> list[Any]:
    """The voices of one split ("val" or "test") of clsp-mini's training corpus (seed 0, by voice)."""
    from searchengine.corpus.generate import assign_voice_splits
    from searchengine.corpus.voices import select_voices

    voices = select_voices(None)
    splits = assign_voice_splits(voices, 0)
    return [v for v in voices if splits[v.id] == split]


def synthetic_truth(out: Path, split: str) -> dict[str, Truth]:
    """Generate (or reuse) clips of one split's voices; resolved path -> the generator's facts."""
    from searchengine.corpus.generate import generate

    generate(out, SYNTHETIC_CLIPS, SYNTHETIC_SEED, split_voices(split), workers=None)
    truth = {}
    for line in (out / "manifest.jsonl").read_text().splitlines():
        r = json.loads(line)
        truth[str((out / r["path"]).resolve())] = {**r, **(r.get("attributes") or {})}
    return truth


def real_truth() -> dict[str, Truth] | None:
    """Resolved path -> the development set's labels, or None (with a message) when it is not built."""
    from benchmarks.real_speech import DEFAULT_DIR, available, load_manifest

    if not available(DEFAULT_DIR):
        print(f"real speech: skipped, {DEFAULT_DIR} is not built; run `python -m benchmarks.real_speech build`")
        return None
    return {str(Path(r["path"]).resolve()): r for r in load_manifest(DEFAULT_DIR)}


def index_paths(paths: list[str], collection: Path, encoder: Any) -> None:
    """Index a bare path list (as `clsp-search index paths.jsonl` does, attributes on), unless done."""
    from indexer.pipeline import run_index

    if (collection / "collection.json").is_file():
        return
    collection.parent.mkdir(parents=True, exist_ok=True)
    listing = collection.parent / f"{collection.name}.paths.jsonl"
    listing.write_text("".join(json.dumps({"path": p}) + "\n" for p in sorted(paths)))
    run_index(listing, collection, encoder, workers=1, progress=False, attributes=True, model_spec="clsp-mini")


def open_searcher(collection: Path, encoder: Any, truth: dict[str, Truth]) -> tuple[Any, dict[int, Truth]]:
    """The collection's Searcher and clip id -> labels (joined on the source path)."""
    from searchengine.search import Searcher
    from searchengine.store import Collection

    searcher = Searcher(Collection.open(collection, read_only=True), encoder)
    rows = searcher.cursor().execute("SELECT id, source_path FROM clips").fetchall()
    return searcher, {int(i): truth[str(Path(p).resolve())] for i, p in rows}


_ROOT: tempfile.TemporaryDirectory | None = None


def collections_root() -> Path:
    """Where the benchmark collections live: $CLSP_SEARCH_BENCH_KEEP (kept and reused across runs), else
    one temporary folder per process, removed at exit, so that `make bench` indexes the three
    collections once for every benchmark that measures on them (this one and bench_real_voices)."""
    global _ROOT
    keep = os.environ.get("CLSP_SEARCH_BENCH_KEEP")
    if keep:
        return Path(keep)
    if _ROOT is None:
        _ROOT = tempfile.TemporaryDirectory(prefix="clsp-bench-voices-")
        atexit.register(_ROOT.cleanup)
    return Path(_ROOT.name)


def build_collections(encoder: Any) -> dict[str, tuple[Path, dict[str, Truth]]]:
    """"synthetic val", "synthetic test" and (when the development set is built) "real": each one's
    collection, indexed from bare paths unless already there, and its resolved path -> labels."""
    root = collections_root()
    out: dict[str, tuple[Path, dict[str, Truth]]] = {}
    for split in ("val", "test"):
        truth = synthetic_truth(root / f"synthetic-{split}-corpus", split)
        index_paths(list(truth), root / f"synthetic-{split}", encoder)
        out[f"synthetic {split}"] = (root / f"synthetic-{split}", truth)
    real = real_truth()
    if real is not None:
        index_paths(list(real), root / "real", encoder)
        out["real"] = (root / "real", real)
    return out


# ------------------------------------------------------------------------------------------ measures
def ndcg_at(relevant: list[bool], total_relevant: int, k: int = 10) -> float:
    dcg = sum(1.0 / np.log2(i + 2) for i, r in enumerate(relevant[:k]) if r)
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(k, total_relevant)))
    return dcg / ideal if ideal else 0.0


def ranked(searcher: Any, query: str, understand: bool, weight: float | None = None, k: int = 10) -> list[int]:
    """Clip ids of the top `k` for a text query; `weight` overrides the fusion weight."""
    from searchengine.search import SearchOptions

    if weight is None:
        page = searcher.search_text(query, SearchOptions(top_k=k, understand=understand))
        return [h.id for h in page.hits]
    reranker = searcher.understand(query).reranker if understand else None
    if reranker is not None:
        reranker.weight = weight
    page = searcher.search_vector(searcher.embed_text(query), SearchOptions(top_k=k), modality="text", rerank=reranker)
    return [h.id for h in page.hits]


def score_queries(searcher: Any, truth: dict[int, Truth], queries: tuple[Query, ...], understand: bool,
                  weight: float | None = None) -> dict[str, tuple[float, float]]:
    """query -> (P@10, nDCG@10)."""
    out = {}
    for query, test in queries:
        ids = ranked(searcher, query, understand, weight)
        rel = [test(truth[i]) for i in ids]
        total = sum(test(t) for t in truth.values())
        out[query] = (float(np.mean(rel)) if rel else 0.0, ndcg_at(rel, total))
    return out


def means(scores: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return float(np.mean([p for p, _ in scores.values()])), float(np.mean([n for _, n in scores.values()]))


def http_gender_p40(collection: Path, searcher: Any, truth: dict[int, Truth]) -> dict[str, dict[str, Any]]:
    """Gender P@40 of the two gender queries over HTTP, understanding on and off, and the speakers of
    the hits of the other gender."""
    import httpx
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from benchmarks.bench_load import _free_port

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(collection, Settings(), searcher=searcher), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    out: dict[str, dict[str, Any]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for gender, query in GENDER_QUERIES.items():
                for understand in (False, True):
                    r = client.post("/search/text", json={"query": query, "top_k": 40, "understand": understand})
                    r.raise_for_status()
                    hits = r.json()["hits"]
                    side = "on" if understand else "off"
                    out.setdefault(query, {})[side] = float(np.mean([truth[h["id"]].get("gender") == gender for h in hits]))
                    misses = Counter(str(truth[h["id"]].get("speaker") or truth[h["id"]].get("voice"))
                                     for h in hits if truth[h["id"]].get("gender") != gender)
                    out[query][f"misses {side}"] = ", ".join(f"{s} {n}" for s, n in misses.most_common()) or "-"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return out


# ------------------------------------------------------------------------------------------ report
def _table(title: str, rows: list[tuple[str, ...]], head: tuple[str, ...]) -> None:
    print(f"\n{title}\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    from searchengine.model import load_model
    from searchengine.understanding import WEIGHT

    encoder = load_model("clsp-mini", device="cpu")
    sets: dict[str, tuple[Any, dict[int, Truth], tuple[Query, ...], Path]] = {}
    for name, (path, truth) in build_collections(encoder).items():
        searcher, by_id = open_searcher(path, encoder, truth)
        sets[name] = (searcher, by_id, REAL_QUERIES if name == "real" else SYNTHETIC_QUERIES, path)

    sweep = {name: {w: means(score_queries(s, t, q, True, w)) for w in WEIGHTS} for name, (s, t, q, _) in sets.items()}
    chosen = max(WEIGHTS, key=lambda w: (sweep["synthetic val"][w][1], -w))
    _table("Fusion weight (mean P@10 / nDCG@10 with understanding; the model alone in the last column)",
           [(name, *(f"{sweep[name][w][0]:.3f} / {sweep[name][w][1]:.3f}" for w in WEIGHTS),
             "{:.3f} / {:.3f}".format(*means(score_queries(s, t, q, False))))
            for name, (s, t, q, _) in sets.items()],
           ("collection", *(f"w={w:g}" for w in WEIGHTS), "off"))
    print(f"\nchosen on synthetic val by mean nDCG@10: w={chosen:g}; in use (searchengine.understanding.WEIGHT): {WEIGHT:g}")

    summary = {}
    for name, (s, t, q, _) in sets.items():
        if name == "synthetic val":
            continue
        off, on = score_queries(s, t, q, False), score_queries(s, t, q, True)
        summary[name] = (means(off), means(on))
        _table(f"{name}: per query, P@10 / nDCG@10 ({len(t)} clips, understanding at w={WEIGHT:g})",
               [(query, f"{sum(test(x) for x in t.values()) / len(t):.2f}", f"{off[query][0]:.2f} / {off[query][1]:.3f}",
                 f"{on[query][0]:.2f} / {on[query][1]:.3f}", ", ".join(c.key for c in s.understand(query).constraints))
                for query, test in q],
               ("query", "base rate", "off", "on", "understood"))
    _table("Mean P@10 and nDCG@10, understanding off -> on",
           [(name, f"{off[0]:.3f} -> {on[0]:.3f}", f"{off[1]:.3f} -> {on[1]:.3f}") for name, (off, on) in summary.items()],
           ("collection", "P@10", "nDCG@10"))
    rows = []
    for name, (s, t, _, path) in sets.items():
        if name == "synthetic val":
            continue
        for query, v in http_gender_p40(path, s, t).items():
            rows.append((name, query, f"{v['off']:.3f}", f"{v['on']:.3f}", v["misses on"]))
    _table("Gender P@40 over HTTP (POST /search/text, top_k 40)", rows,
           ("collection", "query", "off", "on", "other-gender hits when on, by speaker"))

    if "real" in summary:
        (r_off, r_on), (s_off, s_on) = summary["real"], summary["synthetic test"]
        adopt = r_on[0] > r_off[0] and r_on[1] > r_off[1] and s_on[0] >= s_off[0] and s_on[1] >= s_off[1]
        print(f"\nDecision rule (real P@10 and nDCG@10 up, synthetic test neither down): "
              f"{'met: understanding on by default' if adopt else 'not met: understanding off by default'}")
    for s, *_ in sets.values():
        s.close()


if __name__ == "__main__":
    main()
