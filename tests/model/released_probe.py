"""Run as a script by test_released_models.py, in a fresh interpreter with an empty HF_HOME, HF_HUB_OFFLINE
unset and every proxy pointing at a socket that counts connections: loads both stand-ins through
`load_model` and through their own modeling code called directly, and prints what the test checks as
JSON. huggingface_hub is imported first, as any other part of a program may have done, so that a
switch set only in the environment afterwards would come too late."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import huggingface_hub.constants  # noqa: F401  - first, on purpose (see above): it reads HF_HUB_OFFLINE now
import numpy as np
import torch

from searchengine.model import CheckpointError, load_model
from searchengine.model.kaldi_fbank import torchaudio_shim
from searchengine.model.offline import hub_is_offline, names_resolve_to

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE_RATE = 16000


def waves() -> list[np.ndarray]:
    t = np.arange(int(1.3 * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    return [(0.3 * np.sin(2 * np.pi * 150 * t[: int(0.9 * SAMPLE_RATE)])).astype(np.float32),
            (0.2 * np.sin(2 * np.pi * 260 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)]


TEXTS = ["A calm older man speaks slowly.", "An excited young woman talks fast with a high pitch."]


def cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return [float(x) for x in (a * b).sum(1)]


def import_file(path: Path, name: str, package: str | None = None):
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=None)
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def direct_clsp(directory: Path):
    """The stand-in's own code, imported as a package and called as the release's README does."""
    import types

    from safetensors.torch import load_file

    package = types.ModuleType("clsp_direct")
    package.__path__ = [str(directory)]
    sys.modules["clsp_direct"] = package
    with torchaudio_shim():
        import_file(directory / "configuration_clsp.py", "clsp_direct.configuration_clsp", "clsp_direct")
        modeling = import_file(directory / "modeling_clsp.py", "clsp_direct.modeling_clsp", "clsp_direct")
    config = modeling.CLSPConfig(**json.loads((directory / "config.json").read_text()))
    with names_resolve_to(directory):
        model = modeling.CLSPModel(config)
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    model.eval()
    audio = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves()], batch_first=True)
    lens = torch.tensor([len(w) for w in waves()])
    with torch.no_grad():
        audio_emb, text_emb, _ = model(audio, lens, TEXTS)
    return audio_emb.numpy(), text_emb.numpy()


def direct_paraspeechclap(directory: Path):
    """The reference CLAP (reference_model.py, written apart from the adapter) with the documented
    preprocessing: the feature extractor per clip, the tokenizer padded to the longest text."""
    from transformers import AutoTokenizer, Wav2Vec2FeatureExtractor

    reference = import_file(directory / "reference_model.py", "paraspeechclap_reference")
    config = json.loads((directory / "config.json").read_text())
    with names_resolve_to(directory):
        model = reference.CLAP(speech_name=config["speech_name"], text_name=config["text_name"], embedding_dim=768)
        features = Wav2Vec2FeatureExtractor.from_pretrained(config["speech_name"])
        tokenizer = AutoTokenizer.from_pretrained(config["text_name"])
    model.load_state_dict(torch.load(directory / config["checkpoint"], map_location="cpu", weights_only=True))
    model.eval()
    with torch.no_grad():
        audio = [model.get_audio_embedding(features(w, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values)
                 for w in waves()]  # one clip at a time, as the README
        tokens = tokenizer(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=512)
        text = model.get_text_embedding(dict(tokens))
    return torch.cat(audio).numpy(), text.numpy()


def declared(encoder) -> dict:
    """What the loaded model declares it can rank, and the notices an emotion query gets with it."""
    from searchengine.capabilities import capabilities_for, notices
    from searchengine.understanding import parse

    caps = capabilities_for(encoder.model_id, encoder)
    return {"capabilities": caps.to_dict()["properties"],
            "angry_notices": notices(parse("an angry man").uncovered, caps, encoder.name)}


def autocast_on_cuda(encoder) -> str:
    """Which context the encoder would compute under on a GPU (the policy, checked without one)."""
    device, encoder.device = encoder.device, torch.device("cuda")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return type(encoder._autocast()).__name__
    finally:
        encoder.device = device


def main() -> None:
    work = Path(tempfile.mkdtemp())
    out: dict = {}
    for kind, direct in (("clsp", direct_clsp), ("paraspeechclap", direct_paraspeechclap)):
        directory = work / kind
        shutil.copytree(FIXTURES / f"{kind}_standin", directory)
        encoder = load_model(directory, device="cpu")
        speech, text = encoder.encode_speech(waves()), encoder.encode_text(TEXTS)
        ref_speech, ref_text = direct(directory)
        out[kind] = {"dim": encoder.dim, "model_id": encoder.model_id, "speech_cos": cosines(speech, ref_speech),
                     "text_cos": cosines(text, ref_text),
                     "distinct": float(speech[0] @ speech[1]), "autocast": autocast_on_cuda(encoder),
                     **declared(encoder)}
        missing = work / f"{kind}_missing"
        shutil.copytree(directory, missing)
        shutil.rmtree(missing / "by_name" / ("roberta-base" if kind == "clsp" else "microsoft"))
        try:
            load_model(missing, device="cpu")
            out[kind]["missing_error"] = None
        except CheckpointError as exc:
            out[kind]["missing_error"] = str(exc)
    for stem in ("paraspeechclap-situational", "paraspeechclap-intrinsic", "my-finetune"):
        copy = work / stem  # the same weights under another released checkpoint's name (or a user's)
        shutil.copytree(work / "paraspeechclap", copy)
        (copy / "paraspeechclap-combined.pth.tar").rename(copy / f"{stem}.pth.tar")
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**config, "checkpoint": f"{stem}.pth.tar"}))
        out[stem] = declared(load_model(copy, device="cpu"))
    out["hub_offline"] = hub_is_offline()
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
