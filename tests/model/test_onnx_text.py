"""The exported text path gives the torch path's vectors: on ONNX Runtime to float rounding, on OpenVINO
(bf16 where the CPU has AMX) to the same top 10; the text-vector cache; the fallbacks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from benchmarks.bench_http_query import varied_queries
from searchengine.model import load_model, onnx_text
from searchengine.model.encoder import CACHED_CALL_MAX_TEXTS, ONNX_TEXT_BATCH, ClspEncoder, TextVectorCache

LONG = ("The recording is clean and close to the microphone; the speaker is an older man with a deep, "
        "gravelly and slightly hoarse voice, a strong Scottish accent, a slow and deliberate pace with "
        "long pauses between phrases, very little variation in pitch, a quiet, almost murmured delivery, "
        "and a warm, dark timbre that stays steady from the first word to the last, as if he were reading "
        "a bedtime story to a child in a small, carpeted room late at night with the window closed.")
TEXTS = [
    "fast", "whisper", "deep", "calm older man", "a breathy young woman whispering in a reverberant room",
    "A calm, low-pitched man speaking slowly.", "fast high voice", "telephone quality, noisy",
    "An adult woman with a British accent speaks quickly and loudly over a heavy hiss.",
    "monotone", "bright energetic delivery", "very distant, with heavy echo", "soft-spoken child",
    "Casting note: seeking an adult man with an American accent who speaks at a relaxed pace.",
    "quiet", "a gravelly, hoarse voice", "studio-clean narration by a middle-aged woman",
    "¿qué? — émigré naïve café", "x", LONG,
]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("clsp-cache")
        patch.setenv(onnx_text.CACHE_ENV, str(root))
        patch.delenv(onnx_text.BACKEND_ENV, raising=False)
        yield root


@pytest.fixture(scope="module")
def bundled(cache_root):
    """The bundled model with its text path on ONNX Runtime fp32, the exact one."""
    encoder = load_model("clsp-mini", device="cpu")
    return ClspEncoder(encoder.model, encoder.name, encoder.model_id.split("@")[1], encoder.device, text_backend="onnx")


def _pair(encoder: ClspEncoder) -> ClspEncoder:
    """A second encoder over the same model, forced onto torch."""
    return ClspEncoder(encoder.model, encoder.name, encoder.model_id.split("@")[1], encoder.device, text_backend="torch")


@pytest.mark.slow
def test_onnx_matches_torch_on_varied_texts(bundled, cache_root):
    assert len(bundled.model.text_tower.tokenizer(LONG)["input_ids"]) > 100
    assert bundled.active_text_backend() == "onnx"
    reference = _pair(bundled)
    single = np.stack([bundled.encode_text(t)[0] for t in TEXTS])
    batched = bundled._onnx_text_path()(TEXTS)  # one batch mixing 1-token and 128-token texts
    expected = reference.encode_text(TEXTS)
    assert (single * expected).sum(axis=1).min() >= 0.999
    assert (batched * expected).sum(axis=1).min() >= 0.999
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    bundled.text_cache.clear()
    small = bundled.encode_text(TEXTS[-CACHED_CALL_MAX_TEXTS:])  # a query-sized call: ONNX, cached
    assert (small * expected[-CACHED_CALL_MAX_TEXTS:]).sum(axis=1).min() >= 0.999
    assert len(bundled.text_cache) == len(set(TEXTS[-CACHED_CALL_MAX_TEXTS:]))
    # a bulk call (captions at indexing): length-sorted ONNX batches, in the caller's order, not cached
    bulk = [f"{t} take {i}" for i in range(3) for t in TEXTS]
    assert len(bulk) > 2 * ONNX_TEXT_BATCH
    np.testing.assert_allclose(bundled.encode_text(bulk), reference.encode_text(bulk), rtol=0, atol=1e-5)
    assert len(bundled.text_cache) == len(set(TEXTS[-CACHED_CALL_MAX_TEXTS:]))
    graphs = list((cache_root / "onnx").glob("clsp-mini-*.onnx"))
    assert len(graphs) == 1 and not list((cache_root / "onnx").glob("*.tmp*"))


@pytest.mark.slow
def test_exported_graph_is_reused(bundled, cache_root):
    bundled.encode_text("warm up")
    graph = bundled._onnx_text_path().path
    stamp = graph.stat().st_mtime_ns
    again = load_model("clsp-mini", device="cpu")  # auto: either runtime loads the same file
    again.encode_text("a second process would load the same file")
    assert again._onnx_text_path().path == graph and graph.stat().st_mtime_ns == stamp


def test_mean_pooling_model_matches_torch(random_clsp_mini, cache_root):
    encoder = ClspEncoder(random_clsp_mini, "clsp-mini-random", "onnx-test", torch.device("cpu"), text_backend="onnx")
    assert encoder.active_text_backend() == "onnx"
    got = encoder._onnx_text_path()(TEXTS)
    expected = _pair(encoder).encode_text(TEXTS)
    assert (got * expected).sum(axis=1).min() >= 0.999


def test_cache_is_keyed_by_model_and_returns_copies(bundled, random_clsp_mini, cache_root):
    shared = TextVectorCache(size=8)
    a = ClspEncoder(bundled.model, "clsp-mini", bundled.model_id.split("@")[1], bundled.device, text_backend="onnx",
                    text_cache=shared)
    b = ClspEncoder(random_clsp_mini, "clsp-mini-random", "onnx-test", torch.device("cpu"), text_backend="onnx",
                    text_cache=shared)
    va, vb = a.encode_text("a calm voice"), b.encode_text("a calm voice")
    assert len(shared) == 2 and not np.allclose(va, vb)
    first = a.encode_text(["a calm voice"])
    second = a.encode_text(["a calm voice"])
    np.testing.assert_array_equal(first, va)
    first[:] = 0.0  # a caller that writes into its result changes nothing for the next one
    np.testing.assert_array_equal(a.encode_text("a calm voice"), second)
    assert len(shared) == 2
    for i in range(10):  # LRU: bounded
        a.encode_text(f"text {i}")
    assert len(shared) == 8


def test_torch_forced_by_env(monkeypatch, bundled, cache_root):
    monkeypatch.setenv(onnx_text.BACKEND_ENV, "torch")
    encoder = ClspEncoder(bundled.model, "clsp-mini", "forced-torch", bundled.device)
    assert encoder.text_backend == "torch" and encoder.active_text_backend() == "torch"
    got = encoder.encode_text(TEXTS[:4])
    with torch.inference_mode():
        expected = bundled.model.encode_text(**bundled.model.text_tower.prepare(TEXTS[:4])).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert not list((cache_root / "onnx").glob("clsp-mini-forced-torch-*"))
    monkeypatch.setenv(onnx_text.BACKEND_ENV, "tensorflow")
    with pytest.raises(ValueError):
        ClspEncoder(bundled.model, "clsp-mini", "bad", bundled.device)


def test_failed_export_falls_back_to_torch_with_a_warning(monkeypatch, random_clsp_mini, cache_root, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_text, "export", broken)
    encoder = ClspEncoder(random_clsp_mini, "clsp-mini-random", "broken-export", torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger=onnx_text.__name__):
        got = encoder.encode_text(["fast", "slow"])
        encoder.encode_text(["again"])
    assert encoder.active_text_backend() == "torch"
    assert sum("exporter exploded" in r.getMessage() for r in caplog.records) == 1
    with torch.inference_mode():
        expected = random_clsp_mini.encode_text(**random_clsp_mini.text_tower.prepare(["fast", "slow"])).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_openvino_keeps_the_top_10_of_torch(bundled, cache_root):
    """OpenVINO runs the same graph, in bf16 where the CPU has AMX (else fp32): each query vector stays
    within cosine 0.997 of torch's, and searching 400 captions (what the caption indexes hold) with 200
    held-out descriptions finds the same top 10 for >= 97 % of places (the issue's rule is 98 % over
    1,000 queries; `python -m benchmarks text_query` measures that: 0.99). `auto` picks OpenVINO exactly
    where bf16 is known to pay."""
    from searchengine import openvino_cpu

    core = openvino_cpu.core()
    if core is None:
        pytest.skip("OpenVINO is not installed")
    model, checksum = bundled.model, bundled.model_id.split("@")[1]
    openvino = ClspEncoder(model, "clsp-mini", checksum, bundled.device, text_backend="openvino",
                           text_cache=TextVectorCache(0))
    assert openvino.active_text_backend() == "openvino"
    precision = openvino._onnx_text_path().precision
    assert precision == ("bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32")
    auto = ClspEncoder(model, "clsp-mini", checksum, bundled.device, text_backend="auto")
    assert auto.active_text_backend() == ("openvino" if openvino_cpu.fast_bf16(core) else "onnx")

    reference = _pair(bundled)
    gallery = reference.encode_text(varied_queries(400, seed=1, heldout=False))
    queries = varied_queries(200, seed=2)
    expected = reference.encode_text(queries)
    got = np.stack([openvino.encode_text(q)[0] for q in queries])  # one query a call, as a search makes
    assert (got * expected).sum(axis=1).min() >= 0.997
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    top = lambda q: np.argsort(-(q @ gallery.T), axis=1)[:, :10]  # noqa: E731
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top(got), top(expected), strict=True)])
    assert overlap >= 0.97, overlap
    batched = openvino._onnx_text_path()(TEXTS)  # one batch mixing 1-token and 128-token texts
    assert (batched * reference.encode_text(TEXTS)).sum(axis=1).min() >= 0.997
    # a bulk call (captions at indexing): batches run a stream each, answers in the caller's order
    bulk = openvino.encode_text(queries[:100])
    assert (bulk * expected[:100]).sum(axis=1).min() >= 0.997
    # queries arriving together run on the throughput compilation, each caller getting its own answer
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        together = np.stack(list(pool.map(lambda q: openvino.encode_text(q)[0], queries[:60])))
    assert (together * got[:60]).sum(axis=1).min() >= 0.9995


def test_auto_keeps_onnx_runtime_when_openvino_cannot_compile(monkeypatch, random_clsp_mini, cache_root, caplog):
    """On a CPU where bf16 pays, a graph OpenVINO cannot compile leaves the text path on ONNX Runtime fp32
    (one warning), and asking for OpenVINO by name falls back to torch, as any failed text path does."""
    from searchengine import openvino_cpu

    class NoCompile(openvino_cpu.Network):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("unsupported operation")

    monkeypatch.setattr(openvino_cpu, "core", lambda: object())
    monkeypatch.setattr(openvino_cpu, "fast_bf16", lambda core: True)
    monkeypatch.setattr(openvino_cpu, "Network", NoCompile)
    with caplog.at_level(logging.WARNING, logger=onnx_text.__name__):
        auto = ClspEncoder(random_clsp_mini, "clsp-mini-random", "no-openvino", torch.device("cpu"))
        assert auto.active_text_backend() == "onnx"
        named = ClspEncoder(random_clsp_mini, "clsp-mini-random", "no-openvino", torch.device("cpu"),
                            text_backend="openvino")
        assert named.active_text_backend() == "torch"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("using ONNX Runtime fp32" in m and "unsupported operation" in m for m in messages) == 1
    assert sum("using torch" in m and "unsupported operation" in m for m in messages) == 1
    expected = _pair(auto).encode_text(["fast", "slow"])
    for encoder in (auto, named):
        assert (encoder.encode_text(["fast", "slow"]) * expected).sum(axis=1).min() >= 0.999


def test_openvino_compiles_the_network_for_concurrent_calls_on_first_need(random_clsp_mini, cache_root):
    """Opening the text path compiles the network its first call needs: the lone-call one for a query (all
    a command-line search needs), the throughput one for captions (all indexing needs); the other comes
    on first need, and `warm_up` (a server at start) compiles both."""
    pytest.importorskip("openvino")
    from searchengine import openvino_cpu

    def compiled(path: onnx_text.OnnxTextPath) -> set:
        return {dict(settings)["PERFORMANCE_HINT"] for file, settings in openvino_cpu._COMPILED if file == str(path.path)}

    encoder = ClspEncoder(random_clsp_mini, "clsp-mini-random", "lazy-compile", torch.device("cpu"), text_backend="openvino")
    text_path = encoder._onnx_text_path()
    assert text_path.backend == "openvino" and compiled(text_path) == {"LATENCY"}
    alone = encoder.encode_text("one query alone")
    assert compiled(text_path) == {"LATENCY"}
    bulk = encoder.encode_text([f"caption number {i}" for i in range(3 * ONNX_TEXT_BATCH)] + ["one query alone"])
    assert compiled(text_path) == {"LATENCY", "THROUGHPUT"}
    assert float(alone[0] @ bulk[-1]) >= 0.999

    other = ClspEncoder(random_clsp_mini, "clsp-mini-random", "lazy-compile-2", torch.device("cpu"), text_backend="openvino")
    other.warm_up()
    assert compiled(other._onnx_text_path()) == {"LATENCY", "THROUGHPUT"}

    indexer = ClspEncoder(random_clsp_mini, "clsp-mini-random", "lazy-compile-3", torch.device("cpu"), text_backend="openvino")
    indexer.encode_text([f"caption number {i}" for i in range(3 * ONNX_TEXT_BATCH)])  # captions first: no lone call
    assert compiled(indexer._onnx_text_path()) == {"THROUGHPUT"}
