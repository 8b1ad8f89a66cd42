"""The speaker encoder on its runtimes: torch (the reference, Resemblyzer's own `embed_utterance`) and
OpenVINO from an exported graph (bf16 where the CPU has it natively, else fp32)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from searchengine import openvino_cpu
from searchengine.attributes import speaker


@pytest.fixture(scope="module")
def clips(attr_corpus, records) -> list[np.ndarray]:
    """Eight generated clips of different voices, whispers and noise among them, and one long clip
    (several partial windows in one call)."""
    chosen, voices = [], set()
    for rec in records:
        if rec["voice"] not in voices:
            voices.add(rec["voice"])
            chosen.append(sf.read(str(attr_corpus / rec["path"]), dtype="float32")[0])
        if len(chosen) == 8:
            break
    return [*chosen, np.concatenate(chosen[:3])]


def test_torch_backend_is_resemblyzers_embed_utterance(clips, monkeypatch):
    """`speaker_embedding` runs Resemblyzer's steps itself so the network can run elsewhere; on torch
    it gives what `VoiceEncoder.embed_utterance` gives."""
    from resemblyzer import preprocess_wav

    monkeypatch.setenv(speaker.BACKEND_ENV, "torch")
    assert speaker.runtime() == "torch float32"
    for x in clips:
        reference = speaker._encoder().embed_utterance(preprocess_wav(x, source_sr=16000))
        ours = speaker.speaker_embedding(x)
        np.testing.assert_allclose(ours, reference / np.linalg.norm(reference), atol=1e-6)


def test_openvino_backend_agrees_with_torch(clips, monkeypatch, private_cache):
    """OpenVINO (bf16 where native) gives speaker vectors at cosine >= 0.999 to torch's and the same
    gender estimate; its graph is exported once into the cache, named by the weights it came from;
    threads sharing the network get what they would alone; `auto` picks OpenVINO only where bf16 was
    measured to pay (AMX); an unknown backend is a clear error."""
    from searchengine.attributes.prosody import measure_prosody

    monkeypatch.setenv(speaker.BACKEND_ENV, "torch")
    reference = [speaker.speaker_embedding(x) for x in clips]
    monkeypatch.setenv(speaker.BACKEND_ENV, "openvino")
    ours = [speaker.speaker_embedding(x) for x in clips]
    core = openvino_cpu.core()
    native = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert speaker.runtime() == ("openvino bf16" if native else "openvino f32")
    for x, a, b in zip(clips, reference, ours, strict=True):
        assert a is not None and b is not None
        assert float(a @ b) >= 0.999
        f0 = measure_prosody(x)["m_f0_median_hz"]
        assert speaker.estimate_gender(a, f0)["m_gender_est"] == speaker.estimate_gender(b, f0)["m_gender_est"]
    graph = speaker.graph_path()
    assert graph.parent == private_cache / "onnx" and graph.exists()
    assert [p.name for p in graph.parent.glob("*resemblyzer*")] == [graph.name]  # no temporary file left
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(speaker.speaker_embedding, clips))
    assert all(np.array_equal(a, b) for a, b in zip(again, ours, strict=True))
    monkeypatch.setenv(speaker.BACKEND_ENV, "auto")
    assert speaker.runtime() == ("openvino bf16" if openvino_cpu.fast_bf16(core) else "torch float32")
    monkeypatch.setenv(speaker.BACKEND_ENV, "onnx")
    with pytest.raises(ValueError, match="CLSP_SEARCH_SPEAKER_BACKEND='onnx': expected one of auto, torch, openvino"):
        speaker.speaker_embedding(clips[0])


def test_speaker_encoder_falls_back_to_torch_when_openvino_cannot_load_it(monkeypatch, tmp_path):
    """`auto` on a CPU with AMX whose OpenVINO cannot load the exported graph embeds on torch (a warning,
    not a run of empty speaker vectors); asking for OpenVINO by name is a clear error."""

    class NoLoad:  # OpenVINO present, bf16 native, but the graph does not load
        def get_property(self, device, name):
            return ["BF16", "FP32"]

        def read_model(self, path):
            return path

        def compile_model(self, model, device, config):
            raise RuntimeError("unsupported operation")

    # A cache of its own: a graph this process already compiled would be taken from OpenVINO's table.
    monkeypatch.setenv("CLSP_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(openvino_cpu, "core", NoLoad)
    monkeypatch.setattr(openvino_cpu, "fast_bf16", lambda core: True)
    network = speaker.SpeakerNetwork("auto")
    assert (network.backend, network.precision) == ("torch", "float32")
    assert os.path.exists(speaker.graph_path())  # exported, then refused by OpenVINO
    with pytest.raises(openvino_cpu.OpenVinoUnavailable, match="OpenVINO could not load the speaker encoder"):
        speaker.SpeakerNetwork("openvino")
