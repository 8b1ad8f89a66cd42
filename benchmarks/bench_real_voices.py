"""Real voices: "sounds like this" and the stored gender estimate on real recordings, beside synthetic
voices clsp-mini never trained on.

The collections are bench_understanding's (`build_collections`: indexed once per `make bench` run from
bare path lists, so no label reaches them; attributes measured, the defaults of `clsp-search index`),
each served by `clsp-search serve` in its own process; every figure is read over HTTP and scored
against labels the collections never saw:

* real: the real-speech development set (`data/real_speech`, `python -m benchmarks.real_speech
  build`; 323 clips, 44 speakers);
* synthetic val / test: 240 clips each (seed 5) spoken by the voices of the validation / test split of
  clsp-mini's training corpus (`corpus generate --seed 0 --split-by-voice`); val is where a weight may
  be chosen, test is reported.

Measures, per collection:

* more like this: `POST /search/audio {clip_ids: [id]}` for every clip, top 5, at the server's default
  `voice_weight` and swept over 0..1 (0 = the speech index alone, 1 = the speaker index alone):
  same-speaker P@5 (hits by the query's speaker / 5, over queries whose speaker has at least 5 other
  clips; and "capped", hits / min(5, other clips), over every query with at least one other clip),
  same-gender P@5 (all queries);
* style nDCG@10 (synthetic only, where every clip's factors are known): the same queries at top 10,
  gain of a hit = share of the nine style factors of the corpus (gender, pitch level, speaking rate,
  loudness, whisper, noise, reverb, channel, age) it shares with the query clip, DCG over the ten hits
  against the ideal ten among all other clips (the gain `benchmarks/bench_search.py` uses for text);
* gender per clip: the estimate stored at indexing (`m_gender_est`, `m_gender_prob`), its accuracy,
  the share and accuracy of its confident answers, the speakers its misses fall on; and zero-shot
  (`POST /classify`, labels male/female, template "A {} speaker.") beside it.

Gender P@40 of "a man speaking" / "a woman speaking" over HTTP is bench_understanding's.

    python -m benchmarks real_voices
    CLSP_SEARCH_BENCH_KEEP=data/bench-voices python -m benchmarks understanding real_voices   # keep collections

Without the development set the real half is skipped, saying how to build it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_load import _free_port, _wait_healthy

REPO = Path(__file__).resolve().parents[1]
FACTORS = ("gender", "pitch_level", "speaking_rate", "loudness", "whisper", "noise", "reverb", "channel", "age")
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STYLE_LOSS = 0.02
"""The issue's allowance: voice fusion may lose at most this much style nDCG@10 on synthetic voices."""
ZERO_SHOT_TEMPLATE = "A {} speaker."
CONFIDENT = 0.9


# ------------------------------------------------------------------------------------------ HTTP
class Server:
    """`clsp-search serve COLLECTION` in its own process, with an httpx client to it."""

    def __init__(self, collection: Path, cache: Path) -> None:
        import httpx

        port = _free_port()
        env = {**os.environ, "CLSP_SEARCH_CACHE": str(cache)}
        self.log_path = collection.parent / f"{collection.name}.serve.log"
        self.log = self.log_path.open("w")  # a file, not a pipe nobody reads: the server never blocks on it
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(collection), "--port", str(port)],
                                     cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, self.proc, timeout=300)
        except RuntimeError as exc:
            self.close()
            raise RuntimeError(f"{exc}; its log: {self.log_path.read_text()[-2000:]}") from None
        self.client = httpx.Client(base_url=url, timeout=120)

    def post(self, path: str, body: dict) -> dict:
        r = self.client.post(path, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"POST {path} {json.dumps(body)[:200]} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    def clips(self) -> dict[int, dict[str, Any]]:
        """Every clip's id -> metadata, read page by page from a text search deep enough to hold them all."""
        n = self.client.get("/health").json()["clips"]
        out: dict[int, dict[str, Any]] = {}
        for offset in range(0, n, 1000):
            page = self.post("/search/text", {"query": "a voice", "top_k": 1000, "offset": offset, "indexes": ["speech"]})
            out.update({h["id"]: h["clip"] for h in page["hits"]})
        return out

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


# ------------------------------------------------------------------------------------------ measures
def more_like_this(server: Server, truth: dict[int, dict[str, Any]], weight: float | None,
                   k: int = 5, style_k: int = 10) -> dict[str, float]:
    """Same-speaker and same-gender P@k of `POST /search/audio` by clip id; style nDCG@10 where the
    factors are known. `weight` None sends no `voice_weight` (the server's default)."""
    speakers = Counter(t["speaker"] for t in truth.values())
    full, capped, gender, ndcg = [], [], [], []
    style = all(all(f in t for f in FACTORS) for t in truth.values())
    for cid, t in truth.items():
        body: dict[str, Any] = {"clip_ids": [cid], "top_k": style_k if style else k}
        if weight is not None:
            body["voice_weight"] = weight
        hits = [h["id"] for h in server.post("/search/audio", body)["hits"]]
        top = hits[:k]
        same = sum(truth[h]["speaker"] == t["speaker"] for h in top)
        others = speakers[t["speaker"]] - 1
        if others >= k:
            full.append(same / k)
        if others >= 1:
            capped.append(same / min(k, others))
        gender.append(float(np.mean([truth[h]["gender"] == t["gender"] for h in top])) if top else 0.0)
        if style:
            gains = [_gain(t, truth[h]) for h in hits[:style_k]]
            ideal = sorted((_gain(t, o) for oid, o in truth.items() if oid != cid), reverse=True)[:style_k]
            ndcg.append(_dcg(gains) / _dcg(ideal) if _dcg(ideal) else 0.0)
    out = {"same_speaker_p5": float(np.mean(full)) if full else float("nan"), "queries_5_others": len(full),
           "same_speaker_p5_capped": float(np.mean(capped)) if capped else float("nan"), "queries_1_other": len(capped),
           "same_gender_p5": float(np.mean(gender)), "queries": len(gender)}
    if style:
        out["style_ndcg10"] = float(np.mean(ndcg))
    return out


def gender_per_clip(server: Server, truth: dict[int, dict[str, Any]], clips: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The stored estimate's accuracy, coverage, confident share and accuracy, and the speakers of its
    misses; zero-shot accuracy beside it."""
    ids = sorted(truth)
    zero = []
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        res = server.post("/classify", {"clip_ids": chunk, "labels": ["male", "female"], "template": ZERO_SHOT_TEMPLATE})
        zero += [r["label"] == truth[r["clip_id"]]["gender"] for r in res["results"]]
    est = [(clips[i].get("m_gender_est"), clips[i].get("m_gender_prob"), truth[i]) for i in ids]
    answered = [(g, p, t) for g, p, t in est if g is not None]
    confident = [(g, t) for g, p, t in answered if p is not None and p >= CONFIDENT]
    misses = Counter(t["speaker"] for g, _, t in answered if g != t["gender"])
    return {
        "zero_shot": float(np.mean(zero)),
        "estimate": float(np.mean([g == t["gender"] for g, _, t in answered])) if answered else float("nan"),
        "estimate_over_all": sum(g == t["gender"] for g, _, t in answered) / len(ids),
        "estimated_share": len(answered) / len(ids),
        "confident_share": len(confident) / len(ids),
        "confident_accuracy": float(np.mean([g == t["gender"] for g, t in confident])) if confident else float("nan"),
        "misses_by_speaker": misses.most_common(3), "misses": sum(misses.values()),
        "clips": len(ids),
    }


def _gain(a: dict[str, Any], b: dict[str, Any]) -> float:
    known = [f for f in FACTORS if a.get(f) is not None]
    return sum(a.get(f) == b.get(f) for f in known) / max(1, len(known))


def _dcg(gains: Sequence[float]) -> float:
    return float(sum(g / np.log2(i + 2) for i, g in enumerate(gains)))


def measure(collection: Path, by_path: dict[str, dict[str, Any]], weights: Sequence[float | None]) -> dict[str, Any]:
    """Every measure on one served collection; `by_path` (resolved path -> labels) gives the truth,
    joined to the clips by their source paths."""
    server = Server(collection, collection.parent / "cache")
    try:
        clips = server.clips()
        truth = {cid: by_path[str(Path(c["source_path"]).resolve())] for cid, c in clips.items()
                 if str(Path(c["source_path"]).resolve()) in by_path}
        return {
            "clips": len(clips), "labelled": len(truth), "speakers": len({t["speaker"] for t in truth.values()}),
            "more_like_this": {w: more_like_this(server, truth, w) for w in weights},
            "gender": gender_per_clip(server, truth, clips),
        }
    finally:
        server.close()


# ------------------------------------------------------------------------------------------ report
def default_weight() -> float:
    from searchengine.search import DEFAULT_VOICE_WEIGHT

    return float(DEFAULT_VOICE_WEIGHT)


def check_default(results: dict[str, dict[str, Any]], default: float) -> None:
    """The issue's targets at the default weight: on real speech same-speaker P@5 >= 0.50 and
    same-gender P@5 >= 0.95; on synthetic voices at most STYLE_LOSS style nDCG@10 lost against the
    speech index alone. The default is not picked here (a pick by the test voices would fit them)."""
    if "real" in results:
        r = results["real"]["more_like_this"][None]
        print(f"real speech at voice_weight {default:g}: same-speaker P@5 {r['same_speaker_p5']:.3f} (target >= 0.50), "
              f"same-gender P@5 {r['same_gender_p5']:.3f} (target >= 0.95)")
    for name in ("synthetic val", "synthetic test"):
        sweep = results[name]["more_like_this"]
        base, at = sweep[0.0]["style_ndcg10"], sweep[None]["style_ndcg10"]
        within = [w for w in WEIGHTS if base - sweep[w]["style_ndcg10"] <= STYLE_LOSS]
        print(f"{name}: style nDCG@10 {base:.3f} at weight 0 -> {at:.3f} at {default:g} (loss {base - at:.3f}, allowed "
              f"{STYLE_LOSS}); weights within the allowance: {', '.join(f'{w:g}' for w in within)}")


def report(name: str, m: dict[str, Any], default: float) -> None:
    print(f"\n{name}: {m['clips']} clips ({m['labelled']} labelled by path), {m['speakers']} speakers")
    print("| voice_weight | same-speaker P@5 | same-speaker P@5, capped | same-gender P@5 | style nDCG@10 |")
    print("|---|---:|---:|---:|---:|")
    for w, r in m["more_like_this"].items():
        label = f"server default ({default:g})" if w is None else f"{w:g}"
        style = f"{r['style_ndcg10']:.3f}" if "style_ndcg10" in r else "-"
        print(f"| {label} | {r['same_speaker_p5']:.3f} ({r['queries_5_others']} q) | {r['same_speaker_p5_capped']:.3f} "
              f"({r['queries_1_other']} q) | {r['same_gender_p5']:.3f} | {style} |")
    g = m["gender"]
    misses = ", ".join(f"{s} {n}" for s, n in g["misses_by_speaker"]) or "none"
    print(f"\ngender per clip ({g['clips']} clips): stored estimate {g['estimate']:.3f} of the {g['estimated_share']:.1%} "
          f"estimated ({g['estimate_over_all']:.3f} over all clips); confidence >= {CONFIDENT}: {g['confident_share']:.1%} "
          f"of clips, {g['confident_accuracy']:.3f} right; {g['misses']} misses, most on: {misses}; "
          f"zero-shot {g['zero_shot']:.3f}")


def main() -> None:
    from benchmarks.bench_understanding import build_collections
    from searchengine.model import load_model

    default = default_weight()
    weights: list[float | None] = [None, *WEIGHTS]
    results: dict[str, dict[str, Any]] = {}
    for name, (path, truth) in build_collections(load_model("clsp-mini", device="cpu")).items():
        labels = {p: {**t, "speaker": t.get("speaker") or t.get("voice")} for p, t in truth.items()}
        results[name] = measure(path, labels, weights)
    if "real" not in results:
        print("real speech: skipped, data/real_speech is not built; build it with "
              "`python -m benchmarks.real_speech build` (add `--mirror DIR` for local clones)")
    titles = {"real": "Real speech (data/real_speech, indexed from paths only)",
              "synthetic val": "Synthetic validation voices (240 clips, seed 5, indexed from paths only)",
              "synthetic test": "Synthetic test voices (240 clips, seed 5, never trained on; indexed from paths only)"}
    for name in ("real", "synthetic val", "synthetic test"):
        if name in results:
            report(titles[name], results[name], default)
    print()
    check_default(results, default)


if __name__ == "__main__":
    main()
