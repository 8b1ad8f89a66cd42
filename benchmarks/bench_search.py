"""Search benchmarks: which fusion ranks best, how fast a query is end to end, and what an IDSelector
buys over over-fetching for filtered search.

1. Fusion quality on the generated corpus, with the bundled model. The test-split clips are indexed
   *without* their captions, and their captions are the queries: a query can only find its own clip
   through the audio, and the caption indexes can only help by finding other clips described the same
   way. Gain of a result = share of the query clip's style factors it shares (gender, pitch, rate,
   loudness, phonation, noise, reverb, channel, age); scored as nDCG@10, plus the rank of the query's
   own clip (MRR@10). Configurations: speech only, speech + captions fused by RRF, by weighted sum.
2. Latency of text queries through the real HTTP server (uvicorn on loopback): p50 / p99.
3. Filtered search on a 100k-vector collection (synthetic unit vectors, 512-d, exact index):
   IDSelector vs over-fetch at several selectivities, as time ratios.

    python -m benchmarks search            # CLSP_SEARCH_BENCH_N=200 clips for the fusion study
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACTORS = ("gender", "pitch_level", "speaking_rate", "loudness", "whisper", "noise", "reverb", "channel", "age")


def _corpus(out: Path, n: int, seed: int) -> Path:
    cmd = [sys.executable, "-m", "cli", "corpus", "generate", str(out), "--n", str(n), "--seed", str(seed),
           "--split-by-voice", "-q"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return out / "manifest.jsonl"


def _gain(a: dict, b: dict) -> float:
    known = [f for f in FACTORS if a.get(f) is not None]
    return sum(a.get(f) == b.get(f) for f in known) / max(1, len(known))


def fusion_study(model: str = "clsp-mini", n: int = 200, seed: int = 11) -> dict[str, dict[str, float]]:
    """nDCG@10 and MRR@10 of speech-only, RRF and weighted-sum search on held-out captions."""
    from indexer.pipeline import run_index
    from searchengine.model import load_model
    from searchengine.search import Searcher, SearchOptions
    from searchengine.store import Collection

    encoder = load_model(model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _corpus(Path(tmp) / "corpus", n, seed)
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        queries: list[tuple[str, dict]] = []
        stripped = []
        for r in records:
            facts = {**r, **(r.get("attributes") or {})}
            if r.get("split") == "test":
                queries += [(c, facts) for c in [r["global_caption"], *r["fine_captions"]]]
                r = {**r, "global_caption": None, "fine_captions": []}
            stripped.append(r)
        blind = Path(tmp) / "corpus" / "blind.jsonl"
        blind.write_text("".join(json.dumps(r) + "\n" for r in stripped))
        run_index(blind, Path(tmp) / "c", encoder, workers=1, progress=False)
        searcher = Searcher(Collection.open(Path(tmp) / "c", read_only=True), encoder)
        con = searcher.cursor()
        names = [d[0] for d in con.execute("SELECT * FROM clips LIMIT 0").description]
        rows = {row[0]: dict(zip(names, row, strict=True)) for row in con.execute("SELECT * FROM clips").fetchall()}
        configs = {
            "speech only": SearchOptions(top_k=10, indexes=("speech",)),
            "speech+captions, rrf": SearchOptions(top_k=10, fusion="rrf"),
            "speech+captions, weighted": SearchOptions(top_k=10, fusion="weighted"),
            "speech+captions, weighted (captions 1.0)": SearchOptions(
                top_k=10, fusion="weighted", weights={"global": 1.0, "fine": 1.0}),
            "speech+captions, weighted (captions 0.25)": SearchOptions(
                top_k=10, fusion="weighted", weights={"global": 0.25, "fine": 0.25}),
            "speech+captions, rrf (captions 1.0)": SearchOptions(
                top_k=10, fusion="rrf", weights={"global": 1.0, "fine": 1.0}),
        }
        vectors = encoder.encode_text([q for q, _ in queries])
        results: dict[str, dict[str, float]] = {}
        for name, options in configs.items():
            ndcgs, rr = [], []
            for (_, facts), vec in zip(queries, vectors, strict=True):
                page = searcher.search_vector(vec, options, con=con)
                gains = [_gain(facts, rows[h.id]) for h in page.hits]
                ideal = sorted((_gain(facts, r) for r in rows.values()), reverse=True)[:10]
                dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
                idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
                ndcgs.append(dcg / idcg if idcg else 0.0)
                own = [i for i, h in enumerate(page.hits) if rows[h.id]["source_key"] == facts["id"]]
                rr.append(1.0 / (own[0] + 1) if own else 0.0)
            results[name] = {"ndcg@10": float(np.mean(ndcgs)), "mrr@10": float(np.mean(rr)), "queries": len(queries)}
        searcher.close()
    return results


def http_latency(model: str = "clsp-mini", n_queries: int = 200) -> dict[str, float]:
    """p50/p99 of POST /search/text on a real uvicorn server over a 200-clip collection."""
    import httpx
    import uvicorn

    from api.app import create_app
    from indexer.pipeline import run_index
    from searchengine.model import load_model

    encoder = load_model(model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _corpus(Path(tmp) / "corpus", 200, 5)
        run_index(manifest, Path(tmp) / "c", encoder, workers=1, progress=False, args={"model": model})
        from searchengine.search import Searcher
        from searchengine.store import Collection

        app = create_app(Path(tmp) / "c", searcher=Searcher(Collection.open(Path(tmp) / "c", read_only=True), encoder))
        import socket
        import threading

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.02)
        words = ["a calm older man", "a breathy young woman whispering", "fast and loud", "on the telephone",
                 "a deep slow voice in a large hall", "noisy recording of a high-pitched child"]
        times: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            for i in range(n_queries):
                for kind in times:
                    body = {"query": f"{words[i % len(words)]} {i}", "top_k": 20}
                    if kind == "filtered":
                        body["filter"] = {"field": "duration", "op": ">", "value": 3}
                    t = time.perf_counter()
                    assert c.post("/search/text", json=body).status_code == 200
                    times[kind].append((time.perf_counter() - t) * 1000)
        server.should_exit = True
    return {f"{k} {p}": float(np.percentile(v, q)) for k, v in times.items() for p, q in (("p50", 50), ("p99", 99))}


def filter_strategies(n: int = 100_000, dim: int = 512, repeats: int = 30) -> list[dict[str, float]]:
    """IDSelector vs over-fetch on an exact index of `n` synthetic vectors, top 20 per query."""
    from searchengine.search import Searcher, SearchOptions
    from searchengine.store import Collection

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        coll = Collection.create(Path(tmp) / "c", model_id="synthetic@0", dim=dim)
        coll.add([{"source_key": f"k{i}", "source_path": f"/x/{i}.wav", "pct": float(i % 1000) / 10} for i in range(n)], vectors)
        coll.close()
        searcher = Searcher(Collection.open(Path(tmp) / "c", read_only=True), encoder=None)
        con = searcher.cursor()
        queries = rng.normal(size=(repeats, dim)).astype(np.float32)
        for keep in (0.1, 1.0, 10.0, 50.0):
            spec = {"field": "pct", "op": "<", "value": keep}
            timing: dict[str, float] = {}
            answers: dict[str, list] = {}
            for strategy in ("selector", "overfetch"):
                opts = SearchOptions(top_k=20, filter=spec, indexes=("speech",), strategy=strategy)
                searcher.search_vector(queries[0], opts, con=con)  # warm
                t = time.perf_counter()
                answers[strategy] = [[h.id for h in searcher.search_vector(q, opts, con=con).hits] for q in queries]
                timing[strategy] = (time.perf_counter() - t) * 1000 / repeats
            unfiltered = SearchOptions(top_k=20, indexes=("speech",))
            t = time.perf_counter()
            for q in queries:
                searcher.search_vector(q, unfiltered, con=con)
            base = (time.perf_counter() - t) * 1000 / repeats
            rows.append({"keep %": keep, "selector ms": timing["selector"], "overfetch ms": timing["overfetch"],
                         "overfetch / selector": timing["overfetch"] / timing["selector"], "unfiltered ms": base,
                         "same results": float(answers["selector"] == answers["overfetch"])})
        searcher.close()
    return rows


def main() -> None:
    model = os.environ.get("CLSP_SEARCH_BENCH_MODEL", "clsp-mini")
    n = int(os.environ.get("CLSP_SEARCH_BENCH_N", "200"))
    print("Filtered search, 100k synthetic 512-d vectors, exact index, top 20 (ms per query):")
    print("| keep % | IDSelector | over-fetch | over-fetch / IDSelector | unfiltered | same results |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in filter_strategies():
        print(f"| {r['keep %']:g} | {r['selector ms']:.1f} | {r['overfetch ms']:.1f} | {r['overfetch / selector']:.2f}x "
              f"| {r['unfiltered ms']:.1f} | {'yes' if r['same results'] else 'no'} |")
    print(f"\nFusion on held-out captions ({model}, {n}-clip generated corpus, test-split captions as queries):")
    print("| configuration | nDCG@10 | MRR@10 (own clip) | queries |")
    print("|---|---:|---:|---:|")
    for name, m in fusion_study(model, n).items():
        print(f"| {name} | {m['ndcg@10']:.3f} | {m['mrr@10']:.3f} | {m['queries']} |")
    print("\nText queries end to end over HTTP (uvicorn on loopback, 200-clip collection, top 20, ms):")
    lat = http_latency(model)
    print(" | ".join(f"{k}: {v:.1f}" for k, v in lat.items()))


if __name__ == "__main__":
    main()
