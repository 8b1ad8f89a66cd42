"""Each measured attribute tracks the generator's ground truth on a generated corpus."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from searchengine import openvino_cpu
from searchengine.attributes.quality import measure_quality

from .conftest import spearman


def _st(hz: float) -> float:
    return 12.0 * np.log2(hz)


def test_f0_shift_tracks_requested_pitch(measured):
    rows = [r for r in measured if "base" in r and r["m"]["m_f0_median_hz"] and r["base"]["m_f0_median_hz"]]
    assert len(rows) >= 25
    requested = np.array([r["a"]["pitch_semitones"] for r in rows])
    shift = np.array([_st(r["m"]["m_f0_median_hz"]) - _st(r["base"]["m_f0_median_hz"]) for r in rows])
    assert np.corrcoef(requested, shift)[0, 1] > 0.9
    assert np.median(np.abs(shift - requested)) < 1.0


def test_f0_spread_is_higher_for_expressive_than_monotone(measured):
    rows = [r for r in measured if r["a"]["pitch_spread_semitones"] is not None and r["m"]["m_f0_spread_st"] is not None
            and (r["a"]["snr_db"] is None or r["a"]["snr_db"] >= 8)]
    assert len(rows) >= 20
    spread = np.array([r["m"]["m_f0_spread_st"] for r in rows])
    assert spearman([r["a"]["pitch_spread_semitones"] for r in rows], spread) > 0.7
    label = [r["a"]["pitch_variation"] for r in rows]
    mono = spread[[x == "monotone" for x in label]]
    expr = spread[[x == "expressive" for x in label]]
    assert len(mono) and len(expr) and mono.mean() + 1.5 < expr.mean()


def test_voiced_share_is_zero_for_whispers(measured):
    whispers = [r["m"]["m_voiced_share"] for r in measured if r["a"]["whisper"]]
    voiced = [r["m"]["m_voiced_share"] for r in measured if not r["a"]["whisper"] and r["a"]["snr_db"] is None]
    assert whispers and max(whispers) < 0.1 < 0.4 < np.median(voiced)


def test_rate_tracks_rate_factor(measured):
    from searchengine.corpus.sentences import count_syllables

    rows = [r for r in measured if "base" in r and r["m"]["m_rate_syl_per_s"] and r["base"]["m_rate_syl_per_s"]]
    assert len(rows) >= 25
    factor = [r["a"]["rate_factor"] for r in rows]
    # Intensity-peak nuclei merge at high rates and split at low ones, so syllables per second tracks
    # the factor more loosely (Spearman ~0.6 here) than the speech time it is divided by (~0.86).
    ratio = [r["m"]["m_rate_syl_per_s"] / r["base"]["m_rate_syl_per_s"] for r in rows]
    assert spearman(factor, ratio) > 0.5
    assert spearman(factor, [r["base"]["m_speech_seconds"] / r["m"]["m_speech_seconds"] for r in rows]) > 0.8
    # the nuclei are syllables: their count follows the text's
    assert spearman([count_syllables(r["rec"]["text"]) for r in rows], [r["m"]["m_syllables"] for r in rows]) > 0.75


def test_loudness_within_1_5_db_of_target(measured):
    err = np.array([r["m"]["m_loudness_dbfs"] - r["a"]["loudness_dbfs"] for r in measured])
    assert np.median(np.abs(err)) < 0.75
    assert np.mean(np.abs(err) <= 1.5) >= 0.9


def test_peak_and_clipping(measured):
    for r in measured:
        assert r["m"]["m_peak_dbfs"] < 0.0 and r["m"]["m_peak_dbfs"] > r["m"]["m_loudness_dbfs"]
        assert r["m"]["m_clipping_share"] == 0.0  # the generator soft-limits below full scale
    x = np.sin(np.linspace(0, 200 * np.pi, 16000)).astype(np.float32) * 2.0
    from searchengine.attributes.level import measure_level

    m = measure_level(np.clip(x, -1, 1))
    assert m["m_clipping_share"] > 0.3 and abs(m["m_peak_dbfs"]) < 0.01


def test_snr_tracks_requested_snr_and_separates_clean_from_very_noisy(measured):
    noisy = [r for r in measured if r["a"]["snr_db"] is not None]
    assert spearman([r["a"]["snr_db"] for r in noisy], [r["m"]["m_snr_db"] for r in noisy]) > 0.85
    very_noisy = [r["m"]["m_snr_db"] for r in noisy if r["a"]["noise"] == "very noisy"]
    clean = [r["m"]["m_snr_db"] for r in measured if r["a"]["snr_db"] is None]
    assert very_noisy and clean and max(very_noisy) < min(clean)


def test_reverb_estimate_increases_with_reverberance(measured):
    rows = [r for r in measured if r["m"]["m_reverb_db"] is not None]
    assert len(rows) >= 30
    assert spearman([r["a"]["reverberance"] for r in rows], [r["m"]["m_reverb_db"] for r in rows]) > 0.6
    by = {lab: np.median([r["m"]["m_reverb_db"] for r in rows if r["a"]["reverb"] == lab])
          for lab in ("close", "distant", "very distant")}
    assert by["close"] < by["distant"] < by["very distant"]


def test_dnsmos_background_lower_for_noisy_clips(attr_corpus, measured):
    """DNSMOS costs a 9 s window per clip, so six clean and six very noisy clips stand for the rest."""
    plain = [r for r in measured if not r["a"]["telephone"] and r["a"]["reverberance"] == 0]
    clean = [r for r in plain if r["a"]["snr_db"] is None][:6]
    noisy = sorted([r for r in measured if r["a"]["snr_db"] is not None], key=lambda r: r["a"]["snr_db"])[:6]
    assert len(clean) >= 4 and len(noisy) == 6

    def bak(r):
        x, sr = sf.read(str(attr_corpus / r["rec"]["path"]), dtype="float32")
        q = measure_quality(x, sr)
        assert all(1.0 <= q[k] <= 5.0 for k in q)
        return q["m_dnsmos_bak"]

    clean_bak = [bak(r) for r in clean]
    noisy_bak = [bak(r) for r in noisy]
    assert np.median(noisy_bak) + 1.0 < np.median(clean_bak)


def test_dnsmos_windows_cover_the_whole_of_a_long_clip(attr_corpus, measured):
    """A long segment is scored on as few 9 s windows as cover it, its end included: 10 s of clean
    speech followed by 9 s of loud noise scores a lower background than the clean speech alone."""
    clean = [r for r in measured if not r["a"]["telephone"] and r["a"]["snr_db"] is None][:3]
    speech = np.concatenate([sf.read(str(attr_corpus / r["rec"]["path"]), dtype="float32")[0] for r in clean])
    speech = np.tile(speech, int(np.ceil(10 * 16000 / len(speech))))[: 10 * 16000]
    noise = 0.3 * np.random.default_rng(0).standard_normal(9 * 16000).astype(np.float32)
    alone = measure_quality(speech, 16000)["m_dnsmos_bak"]
    with_noisy_end = measure_quality(np.concatenate([speech, noise]), 16000)["m_dnsmos_bak"]
    assert with_noisy_end + 0.5 < alone


def test_dnsmos_runs_on_either_runtime_and_they_agree(attr_corpus, measured, monkeypatch):
    """OpenVINO (bf16 where the CPU computes it natively, else fp32) and ONNX Runtime fp32 (the
    reference) score the same clips to within 0.15 MOS and rank them alike; threads sharing a network
    get the scores they would alone; `auto` picks OpenVINO where bf16 is native and the CPU has
    AMX, and an unknown backend is a clear error."""
    from searchengine.attributes import quality

    clips = [r for r in measured if not r["a"]["telephone"]][:4] + sorted(
        [r for r in measured if r["a"]["snr_db"] is not None], key=lambda r: r["a"]["snr_db"])[:4]
    audio = [sf.read(str(attr_corpus / r["rec"]["path"]), dtype="float32")[0] for r in clips]
    scores = {}
    for backend in ("onnxruntime", "openvino", "auto"):
        monkeypatch.setenv(quality.BACKEND_ENV, backend)
        scores[backend] = [measure_quality(x, 16000) for x in audio]
        scores[backend + " runtime"] = quality.runtime()
    core = openvino_cpu.core()
    assert scores["onnxruntime runtime"] == "onnxruntime float32"
    assert scores["openvino runtime"] in ("openvino bf16", "openvino f32")
    native = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert (scores["openvino runtime"] == "openvino bf16") == native
    assert scores["auto runtime"] == ("openvino bf16" if openvino_cpu.fast_bf16(core) else "onnxruntime float32")
    for key in ("m_dnsmos_sig", "m_dnsmos_bak", "m_dnsmos_ovrl"):
        ref = np.array([s[key] for s in scores["onnxruntime"]])
        other = np.array([s[key] for s in scores["openvino"]])
        assert np.abs(ref - other).max() < 0.15, key
        assert spearman(ref, other) > 0.9, key
    monkeypatch.setenv(quality.BACKEND_ENV, "openvino")  # one network, several threads at once
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda x: measure_quality(x, 16000), audio)) == scores["openvino"]
    monkeypatch.setenv(quality.BACKEND_ENV, "tensorflow")
    with pytest.raises(quality.QualityUnavailable, match="expected one of auto, onnxruntime, openvino"):
        measure_quality(audio[0], 16000)


FORK_SCENARIO = """
import json, multiprocessing, os, sys
import soundfile as sf
from searchengine.attributes import quality

audio = sf.read(sys.argv[1], dtype="float32")[0]
parent = {}
for backend in ("onnxruntime", "openvino"):  # switching keeps both networks alive
    os.environ[quality.BACKEND_ENV] = backend
    parent[backend] = quality.measure_quality(audio, 16000)


def child(queue):
    out = {}
    for backend in ("auto", "openvino", "onnxruntime"):  # built here (or inherited), inherited, inherited
        os.environ[quality.BACKEND_ENV] = backend
        out[backend] = [quality.measure_quality(audio, 16000), quality.runtime()]
    queue.put(out)


context = multiprocessing.get_context("fork")
queue = context.Queue()
worker = context.Process(target=child, args=(queue,))
worker.start()
worker.join(60)
if worker.is_alive():
    worker.kill()
    sys.exit("the forked child hung measuring")
os.environ[quality.BACKEND_ENV] = "openvino"
print(json.dumps({"parent": parent, "child": queue.get(timeout=5), "exit": worker.exitcode,
                  "after": quality.measure_quality(audio, 16000)}))
"""


def test_forked_workers_measure_with_networks_their_parent_built_and_with_their_own(attr_corpus, measured):
    """Decode workers are forked, and OpenVINO's threads do not survive a fork: once a network had been
    freed, a forked child that measured died or hung. Networks are kept for the life of a process, so a
    child runs the ones it inherited, builds others, and the parent goes on measuring. Run in a fresh
    interpreter, so this test process's own networks play no part."""
    import json
    import subprocess
    import sys


    if openvino_cpu.core() is None:
        pytest.skip("OpenVINO is not installed")
    clip = str(attr_corpus / measured[0]["rec"]["path"])
    done = subprocess.run([sys.executable, "-c", FORK_SCENARIO, clip], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["exit"] == 0 and out["after"] == out["parent"]["openvino"]
    for backend, (scores, runtime) in out["child"].items():
        assert runtime.split()[0] in ("openvino", "onnxruntime"), backend
        reference = out["parent"]["openvino" if runtime.startswith("openvino") else "onnxruntime"]
        assert scores == reference, backend


def test_dnsmos_falls_back_to_onnxruntime_when_openvino_cannot_load_it(monkeypatch, tmp_path):
    """`auto` on a CPU with AMX whose OpenVINO cannot load the network measures on ONNX Runtime
    (a warning, not a run of empty quality columns); asking for OpenVINO by name is a clear error."""
    import shutil

    from searchengine.attributes import quality

    class NoLoad:  # OpenVINO present, bf16 native, but the model does not load
        def get_property(self, device, name):
            return ["BF16", "FP32"]

        def read_model(self, path):
            return path

        def compile_model(self, model, device, config):
            raise RuntimeError("unsupported operation")

    monkeypatch.setattr(openvino_cpu, "core", NoLoad)
    monkeypatch.setattr(openvino_cpu, "fast_bf16", lambda core: True)
    path = str(tmp_path / "dnsmos.onnx")  # a file no network of this process was compiled from (they are kept)
    shutil.copy(quality._calibration().primary_model_path, path)
    assert quality.DnsmosNetwork(path, "auto").backend == "onnxruntime"
    with pytest.raises(quality.QualityUnavailable, match="OpenVINO could not load DNSMOS: unsupported operation"):
        quality.DnsmosNetwork(path, "openvino")


def test_bf16_dnsmos_is_chosen_only_where_amx_was_measured(tmp_path):
    """OpenVINO counts AVX-512 BF16 alone as native bf16 too, but DNSMOS in bf16 was only measured with
    AMX, so `auto` needs both: OpenVINO's BF16 capability and the CPU's amx_bf16 flag."""
    from searchengine.openvino_cpu import fast_bf16

    class Core:
        def __init__(self, capabilities):
            self.capabilities = capabilities

        def get_property(self, device, name):
            return self.capabilities

    amx, avx512 = tmp_path / "amx", tmp_path / "avx512"
    amx.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    avx512.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert fast_bf16(Core(["BF16", "FP32"]), str(amx)) is True
    assert fast_bf16(Core(["BF16", "FP32"]), str(avx512)) is False
    assert fast_bf16(Core(["FP32"]), str(amx)) is False
    assert fast_bf16(Core(["BF16", "FP32"]), str(tmp_path / "missing")) is False
