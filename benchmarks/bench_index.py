"""Indexing throughput and FAISS search: what bounds `clsp-search index`, and what the index choice buys.

1. Indexing a generated corpus with the model (default clsp-mini) on this machine: decoding alone
   (in this process, and in one decode worker process with and without attribute measurement, as
   the pipeline runs it), speech embedding alone, caption embedding alone, and the whole pipeline
   with and without attributes (`--no-attributes`), in audio seconds per wall second.
   Overlap: each pipeline's throughput against its bound, min(decode worker alone, embedding alone)
   (1.0 = the decode worker and the embedding loop overlap perfectly), and how long the embedding
   loop waited for decoded files and for featurized batches; the `--no-attributes` pipeline is also
   run with the prefetch threads off (`run_index(prefetch=False)`), the path before they existed.
2. Indexing real speech as users bring it: a bare list of paths (no captions) from the real-speech
   development set (`data/real_speech`, `python -m benchmarks.real_speech build`), with attributes
   on one and on every core's decoding worker (the default), and without attributes; each run's own
   summary lines say where its time went.
3. Search over random unit 512-d vectors: our exact Flat index against a numpy brute-force scan
   (100k vectors), and Flat against the approximate index `choose_factory` picks past `FLAT_MAX`
   (`approximate_factory`, 1M vectors): queries per second, recall@10 against exact, memory per million vectors.
Random vectors have no cluster structure, the worst case for IVF recall; real embeddings do better.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import faiss
import numpy as np

DIM = 512
CORPUS_CLIPS = int(os.environ.get("BENCH_INDEX_CLIPS", "96"))  # > 64 (a chunk): the pipeline overlaps chunks
MODEL = os.environ.get("CLSP_SEARCH_BENCH_MODEL", "clsp-mini")
FLAT_N = int(os.environ.get("BENCH_FLAT_N", "100000"))
ANN_N = int(os.environ.get("BENCH_ANN_N", "1000000"))
QUERIES = 1000
BATCH_SECONDS = 240.0  # `clsp-search index`'s default


def unit(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for a in range(0, n, 200_000):  # in blocks: keeps peak memory at the output array
        x = rng.standard_normal((min(n, a + 200_000) - a, DIM), dtype=np.float32)
        out[a : a + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench_indexing() -> list[str]:
    from benchmarks import machine_load
    from indexer.cli import default_workers
    from indexer.decode import process
    from indexer.embedding import caption_texts
    from indexer.pipeline import decoded_in_workers, run_index
    from searchengine.manifest import read_source
    from searchengine.model import load_model

    load_before = machine_load()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        subprocess.run([sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n",
                        str(CORPUS_CLIPS), "--seed", "11", "--split-by-voice"], check=True, capture_output=True)
        items = read_source(corpus / "manifest.jsonl").items
        decoded, t_decode = timed(lambda: [process(i) for i in items])
        audio_s = sum(d.seconds for d in decoded)
        encoder = load_model(MODEL, device="cpu")
        waves = [w for d in decoded for w in d.waveforms]
        encoder.encode_speech(waves[:4], 16000)  # warm-up
        _, t_speech = timed(encoder.encode_speech, waves, 16000, max_batch_seconds=BATCH_SECONDS)
        texts = [t for _, _, t in caption_texts(decoded)]
        encoder.warm_up()  # builds the text path (export, every compilation) once per process, as a server does
        _, t_text = timed(encoder.encode_text, texts)
        # The decode stage as the pipeline runs it: one worker process, drained as fast as it goes.
        _, t_worker = timed(lambda: list(decoded_in_workers(items, 1, attributes=False)))
        _, t_worker_attr = timed(lambda: list(decoded_in_workers(items, 1, attributes=True)))

        def pipeline(name: str, attributes: bool, prefetch: bool = True, workers: int = 1):
            return run_index(corpus / "manifest.jsonl", Path(tmp) / name, encoder, workers=workers, progress=False,
                             batch_seconds=BATCH_SECONDS, attributes=attributes, prefetch=prefetch)

        serial = pipeline("coll-serial", attributes=False, prefetch=False)  # first: any warm-up favours it
        plain = pipeline("coll", attributes=False)
        with_attr = pipeline("coll-attr", attributes=True)
        attr_workers = default_workers(True)
        with_attr_all = pipeline("coll-attr-all", attributes=True, workers=attr_workers)
    t_embed = t_speech + t_text
    text_runtime = encoder.text_runtime()
    rows = [
        f"Indexing {len(items)} generated clips, {audio_s:.0f} s of audio, {len(texts)} captions, model {encoder.model_id}, "
        f"{os.cpu_count()} CPU cores, torch threads {__import__('torch').get_num_threads()}, "
        f"captions on {text_runtime}; before it: {load_before}",
        "",
        "| stage | wall s | audio s / wall s |",
        "|---|---|---|",
        f"| decode + resample + segment (1 process) | {t_decode:.2f} | {audio_s / t_decode:.0f} |",
        f"| speech embedding alone | {t_speech:.2f} | {audio_s / t_speech:.1f} |",
        f"| caption embedding alone ({len(texts) / t_text:.0f} captions/s) | {t_text:.2f} | {audio_s / t_text:.1f} |",
        f"| embedding alone (speech + captions) | {t_embed:.2f} | {audio_s / t_embed:.1f} |",
        f"| decode alone, 1 worker process (as in the pipeline) | {t_worker:.2f} | {audio_s / t_worker:.0f} |",
        f"| decode + attributes alone, 1 worker process (level, Praat, DNSMOS, speaker) | {t_worker_attr:.2f} | "
        f"{audio_s / t_worker_attr:.1f} |",
        f"| whole pipeline, `--no-attributes`, prefetch threads off (1 decode worker) | {serial.wall_seconds:.2f} | {serial.realtime_factor:.1f} |",
        f"| whole pipeline, `--no-attributes` (1 decode worker) | {plain.wall_seconds:.2f} | {plain.realtime_factor:.1f} |",
        f"| whole pipeline, with attributes (1 decode worker) | {with_attr.wall_seconds:.2f} | {with_attr.realtime_factor:.1f} |",
        f"| whole pipeline, with attributes ({attr_workers} decode workers, the default) | {with_attr_all.wall_seconds:.2f} | "
        f"{with_attr_all.realtime_factor:.1f} |",
        "",
        "Overlap: the bound is min(decode worker alone, embedding alone) in audio s / wall s (the worker "
        "decodes, and measures attributes when they are on); waits are the embedding loop's, in seconds.",
        "",
        "| pipeline | audio s / wall s | bound | pipeline / bound | wait: decoded files | wait: featurized batches | embedding (computing) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run, decode_s in (("`--no-attributes`, prefetch off", serial, t_worker),
                                ("`--no-attributes`", plain, t_worker), ("with attributes", with_attr, t_worker_attr)):
        bound = min(audio_s / decode_s, audio_s / t_embed)
        rows.append(f"| {name} | {run.realtime_factor:.1f} | {bound:.1f} | {run.realtime_factor / bound:.2f} | "
                    f"{run.input_wait_seconds:.2f} | {run.prepare_wait_seconds:.2f} | "
                    f"{run.embed_seconds - run.prepare_wait_seconds:.2f} |")
    rows += [
        "",
        f"Prefetch threads: on/off = {plain.realtime_factor / serial.realtime_factor:.2f}x the throughput. "
        f"Attributes cost: with/without = {with_attr.realtime_factor / plain.realtime_factor:.2f}x the throughput.",
    ]
    return rows


REAL_SPEECH = Path(__file__).resolve().parents[1] / "data" / "real_speech"
REAL_CLIPS = int(os.environ.get("BENCH_INDEX_REAL_CLIPS", "120"))


def bench_indexing_real() -> list[str]:
    import json

    from benchmarks import machine_load
    from indexer.cli import default_workers
    from indexer.pipeline import run_index
    from searchengine.attributes import quality, speaker
    from searchengine.model import load_model

    load_before = machine_load()

    manifest = REAL_SPEECH / "manifest.jsonl"
    if not manifest.exists():
        return ["real speech: skipped, data/real_speech is not built; build it with `python -m benchmarks.real_speech build`"]
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    n = min(REAL_CLIPS, len(rows))
    picked = [rows[i * len(rows) // n] for i in range(n)]  # evenly over the list: every source and condition
    encoder = load_model(MODEL, device="cpu")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        sample, everything = Path(tmp) / "sample.jsonl", Path(tmp) / "all.jsonl"
        sample.write_text("".join(json.dumps({"path": str(REAL_SPEECH / r["path"])}) + "\n" for r in picked))
        everything.write_text("".join(json.dumps({"path": str(REAL_SPEECH / r["path"])}) + "\n" for r in rows))
        plain_workers, attr_workers = default_workers(False), default_workers(True)
        # The one-worker run goes first: any warm-up cost falls on it, the old default (say so beside the ratio).
        # Beside the default, the networks on their fp32 references (read by the workers): every one (the
        # default before OpenVINO), then the speaker encoder alone (the default before it moved to OpenVINO).
        fp32 = {quality.BACKEND_ENV: "onnxruntime", speaker.BACKEND_ENV: "torch"}
        runs = [(f"with attributes, 1 decoding worker, {n} clips", sample, True, 1, {}),
                (f"with attributes, {attr_workers} decoding workers, DNSMOS on ONNX Runtime fp32 and the speaker "
                 f"encoder on torch fp32, {n} clips", sample, True, attr_workers, fp32),
                (f"with attributes, {attr_workers} decoding workers, the speaker encoder on torch fp32, {n} clips",
                 sample, True, attr_workers, {speaker.BACKEND_ENV: "torch"}),
                (f"with attributes, {attr_workers} decoding workers (default), {n} clips", sample, True, attr_workers, {}),
                (f"`--no-attributes`, {plain_workers} decoding worker{'s' * (plain_workers > 1)} (default), all "
                 f"{len(rows)} clips", everything, False, plain_workers, {})]
        for k, (name, source, attributes, workers, env) in enumerate(runs):
            with mock.patch.dict(os.environ, env):
                summary = run_index(source, Path(tmp) / f"c{k}", encoder, workers=workers, progress=False,
                                    attributes=attributes)
            out.append((name, summary))
    default = out[3][1].worker_runtimes  # runs[3]: the default
    default_dnsmos, default_speaker = (" and ".join(sorted(default.get(k, ()))) for k in ("DNSMOS", "speaker"))
    lines = [f"Indexing real clips from paths only (no captions), model {encoder.model_id}, {os.cpu_count()} CPU cores, "
             f"before it: {load_before}; "
             f"by default DNSMOS on {default_dnsmos or 'nothing (unavailable)'}, the speaker encoder on "
             f"{default_speaker or 'nothing (unavailable)'}",
             "", "| run | audio s | wall s | audio s / wall s |", "|---|---|---|---|"]
    lines += [f"| {name} | {s.audio_seconds:.0f} | {s.wall_seconds:.1f} | {s.realtime_factor:.1f} |" for name, s in out]
    for name, s in out:
        lines += ["", f"{name}:", *[line.strip() for line in s.lines() if line.startswith(("  time", "  embedding:")) or "pace" in line]]
    return lines


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=False)]))


def bench_flat_vs_numpy() -> list[str]:
    from searchengine.store.faiss_index import add, new_index

    base = unit(FLAT_N, 1)
    q = unit(QUERIES, 2)
    index = new_index("Flat", DIM)
    add(index, base, np.arange(FLAT_N, dtype=np.int64))
    (_, ids), t_faiss = timed(index.search, q, 10)

    def brute():
        scores = q @ base.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
        return np.take_along_axis(top, order, 1)

    truth, t_np = timed(brute)
    return [
        f"Exact search, {FLAT_N:,} vectors x {QUERIES} queries, top-10: FAISS IDMap2,Flat {t_faiss * 1e3 / QUERIES:.2f} ms/query, "
        f"numpy matmul+argpartition {t_np * 1e3 / QUERIES:.2f} ms/query (ratio numpy/FAISS {t_np / t_faiss:.2f}x), "
        f"same results: {recall_at(ids, truth):.3f}",
    ]


def bench_ann() -> list[str]:
    from searchengine.store.faiss_index import add, approximate_factory, new_index, train

    base = unit(ANN_N, 3)
    q = unit(QUERIES, 4)
    ids = np.arange(ANN_N, dtype=np.int64)
    flat = new_index("Flat", DIM)
    add(flat, base, ids)
    (_, truth), t_flat = timed(flat.search, q, 10)
    factory = approximate_factory(ANN_N, DIM)  # what choose_factory picks past FLAT_MAX
    ann = new_index(factory, DIM)
    _, t_train = timed(train, ann, base[: 64 * faiss.extract_index_ivf(ann).nlist])
    _, t_add = timed(add, ann, base, ids)
    ivf = faiss.extract_index_ivf(ann)
    rows = [
        f"{ANN_N:,} random unit vectors, {QUERIES} queries, top-10, {os.cpu_count()} cores. "
        f"Approximate index `{factory}` trained in {t_train:.0f} s, filled in {t_add:.0f} s.",
        "",
        "| index | nprobe | queries/s | recall@10 vs exact | bytes/vector | GB per million |",
        "|---|---|---|---|---|---|",
        f"| IDMap2,Flat (exact) | - | {QUERIES / t_flat:.0f} | 1.000 | {DIM * 4 + 8} | {(DIM * 4 + 8) / 1e3:.2f} |",
    ]
    per_vec = ivf.code_size + 8  # codes + stored id (plus the small HNSW quantizer)
    for nprobe in (16, 64, 256):
        ivf.nprobe = nprobe
        (_, found), t = timed(ann.search, q, 10)
        rows.append(f"| {factory} | {nprobe} | {QUERIES / t:.0f} | {recall_at(found, truth):.3f} | {per_vec} | {per_vec / 1e3:.2f} |")
    return rows


def main() -> None:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    for section in (bench_indexing, bench_indexing_real, bench_flat_vs_numpy, bench_ann):
        try:
            lines = section()
        except Exception as exc:  # noqa: BLE001 - report the section and go on
            lines = [f"{section.__name__} failed: {exc!r}"]
        print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
