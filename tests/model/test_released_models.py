"""The released CLSP and ParaSpeechCLAP through their faithful stand-ins (tests/fixtures/*_standin,
built by tests/fixtures/standins/build.py), loaded as a user's downloaded copy is: empty HF cache,
HF_HUB_OFFLINE unset, every proxy pointing at a socket that records connections.

Each failure mode of issue 34 fails here when its fix is removed:
- no torchaudio: the stand-in's code imports torchaudio.compliance.kaldi.fbank -> ImportError;
- names asked for by the code ("roberta-base", "microsoft/wavlm-large") -> not found / network;
- offline switch set after huggingface_hub's import -> the missing-copy load reaches the proxy;
- transformers 5's meta-device from_pretrained -> the nested RobertaModel.from_pretrained is refused
  and the positional table stays on meta;
- bf16 autocast by default -> `_autocast` is not the null context;
- the freeze flags not passed -> under inference mode the speech path's autograd Function refuses to
  save inference tensors for backward, as the release's does;
- a package the model's own code imports is not installed -> the error says to install it, not to
  download the model again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class CountingDeadProxy:
    """A listening socket that accepts and closes every connection, counting them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    proxy = CountingDeadProxy()
    home = tmp_path_factory.mktemp("hf_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}
    url = f"http://127.0.0.1:{proxy.port}"
    env.update(HF_HOME=str(home), HTTP_PROXY=url, HTTPS_PROXY=url, http_proxy=url, https_proxy=url, ALL_PROXY=url,
               NO_PROXY="", no_proxy="", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("released_probe.py"))], env=env,
                            capture_output=True, text=True, timeout=240, cwd=str(home))
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, result.stdout[-3000:] + result.stderr[-5000:]
    out = json.loads(line.removeprefix("RESULT "))
    out["proxy_connections"] = proxy.connections
    out["hf_home_hub"] = sorted(p.name for p in (home / "hub").glob("*")) if (home / "hub").exists() else []
    proxy.sock.close()
    return out


@pytest.mark.parametrize(("kind", "dim"), [("clsp", 512), ("paraspeechclap", 768)])
def test_adapter_vectors_equal_a_direct_call_of_the_models_own_code(probe, kind, dim):
    result = probe[kind]
    assert result["dim"] == dim
    assert min(result["speech_cos"]) >= 0.9999, result["speech_cos"]
    assert min(result["text_cos"]) >= 0.9999, result["text_cos"]
    assert result["distinct"] < 0.9999  # two different clips: the check is not passed by a constant vector
    assert result["autocast"] == "nullcontext"  # fp32 on a GPU too, unless asked


def test_nothing_reaches_the_network_and_the_offline_switch_holds(probe):
    assert probe["proxy_connections"] == 0
    assert probe["hub_offline"] is True  # though huggingface_hub was imported before searchengine
    assert probe["hf_home_hub"] == []  # nothing downloaded into the (empty) cache


@pytest.mark.parametrize(("kind", "name"), [("clsp", "roberta-base"), ("paraspeechclap", "microsoft/wavlm-large")])
def test_a_missing_local_copy_is_an_error_naming_it_and_the_download_command(probe, kind, name):
    message = probe[kind]["missing_error"]
    assert message is not None
    assert f"by_name/{name}" in message
    assert f"clsp-search models download {kind} --dir" in message


def test_the_releases_own_loading_path_fails_under_transformers_5(tmp_path):
    """Why the adapter builds the class itself: AutoModel.from_pretrained (the release's README) builds
    on the meta device, where the constructor's RobertaModel.from_pretrained("roberta-base") is refused."""
    import shutil

    import transformers
    from transformers import AutoModel

    from searchengine.model.kaldi_fbank import torchaudio_shim
    from searchengine.model.offline import names_resolve_to

    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers < 5 builds models on the real device")
    shutil.copytree(ROOT / "tests" / "fixtures" / "clsp_standin", tmp_path / "CLSP")
    with torchaudio_shim(), names_resolve_to(tmp_path / "CLSP"), pytest.raises(RuntimeError, match="meta"):
        AutoModel.from_pretrained(str(tmp_path / "CLSP"), trust_remote_code=True)


def test_without_the_shim_the_releases_code_does_not_import(tmp_path):
    import shutil

    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    shutil.copytree(ROOT / "tests" / "fixtures" / "clsp_standin", tmp_path / "CLSP")
    with pytest.raises(ImportError, match="torchaudio"):
        get_class_from_dynamic_module("modeling_clsp.CLSPModel", str(tmp_path / "CLSP"))


def test_a_model_that_loads_but_cannot_embed_is_a_clear_error(tmp_path):
    """The dimension probe runs the model's own code once; its failure is a CheckpointError naming the
    directory, not a bare traceback from inside remote code."""
    import shutil

    from searchengine.model import CheckpointError, load_model

    directory = tmp_path / "CLSP"
    shutil.copytree(ROOT / "tests" / "fixtures" / "clsp_standin", directory)
    modeling = directory / "modeling_clsp.py"
    modeling.write_text(modeling.read_text().replace(
        "    def compute_fbank(self, audio: torch.Tensor, audio_lens: torch.Tensor):\n",
        "    def compute_fbank(self, audio: torch.Tensor, audio_lens: torch.Tensor):\n"
        "        raise RuntimeError('this build cannot embed')\n"))
    with pytest.raises(CheckpointError, match=r"loads but cannot embed one second of silence: RuntimeError"):
        load_model(directory, device="cpu")


def _two_clips() -> list:
    import numpy as np

    t = np.arange(16000) / 16000
    return [(0.3 * np.sin(2 * np.pi * 150 * t[:12000])).astype(np.float32),
            (0.2 * np.sin(2 * np.pi * 260 * t)).astype(np.float32)]


def test_the_adapter_passes_the_freeze_flags_that_inference_mode_needs(tmp_path):
    """The release runs each encoder under `torch.set_grad_enabled(not freeze_...)`, and its speech
    path has autograd Functions that save tensors for backward: under `torch.inference_mode()` (how
    the product embeds) a call without `freeze_audio_encoder=True` fails. The stand-in does the same,
    so every adapter call that embeds speech (speech alone, and the joint call behind zero-shot) is
    checked here. The text encoder is plain roberta, whose built-in ops run under inference_mode with
    or without its flag, so a missing `freeze_text_encoder` cannot fail here (nor in the release)."""
    import shutil

    import numpy as np
    import torch

    from searchengine.model import load_model

    directory = tmp_path / "CLSP"
    shutil.copytree(ROOT / "tests" / "fixtures" / "clsp_standin", directory)
    encoder = load_model(directory, device="cpu")
    audio = torch.from_numpy(_two_clips()[1])[None]
    with torch.inference_mode(), pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        encoder.model(audio=audio, audio_lens=torch.tensor([audio.shape[1]]))  # no flag: the release fails so
    speech = encoder.encode_speech(_two_clips())
    text = encoder.encode_text(["A calm man.", "An excited woman."])
    probabilities = encoder.zero_shot(_two_clips(), ["calm", "excited"])
    assert speech.shape == (2, 512) and text.shape == (2, 512) and probabilities.shape == (2, 2)
    assert np.isfinite(speech).all() and np.isfinite(text).all()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("package", "advice"), [("k2_not_installed_pkg", "pip install k2_not_installed_pkg"),
                                                  ("k2", "k2's own wheel index")])
def test_a_package_the_models_code_imports_but_lacks_is_named_without_sending_to_download(tmp_path, package, advice):
    """Downloading the model again cannot install a package its code imports: the error names the
    package and says to install it (for k2, from its own wheel index) or use an unmodified release."""
    import importlib.util
    import shutil

    from searchengine.model import CheckpointError, load_model

    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    directory = tmp_path / "CLSP"
    shutil.copytree(ROOT / "tests" / "fixtures" / "clsp_standin", directory)
    modeling = directory / "modeling_clsp.py"
    modeling.write_text(modeling.read_text().replace("\nimport torch\n", f"\nimport {package}\nimport torch\n", 1))
    with pytest.raises(CheckpointError) as raised:
        load_model(directory, device="cpu")
    message = str(raised.value)
    assert f"imports the Python package '{package}', which is not installed" in message
    assert advice in message
    assert "unmodified copy of the release" in message
    assert "models download" not in message and "Fetch everything" not in message


def test_released_models_declare_what_their_authors_evaluate(probe):
    """The released CLSP and ParaSpeechCLAP's situational checkpoint are declared from what their
    authors score (emotion among it): an emotion query gets no 'cannot rank' notice with them. The
    combined checkpoint is trained on emotion captions but scored on retrieval only: unmeasured, said
    so, no notice either way. The intrinsic one never saw an emotion: it cannot, and the notice names
    the models that can. The same weights under a user's own name declare nothing."""
    for kind in ("clsp", "paraspeechclap-situational"):
        emotion = probe[kind]["capabilities"]["emotion"]
        assert emotion["status"] == "reported" and "not measured here" in emotion["evidence"]
        assert probe[kind]["angry_notices"] == []
    assert "21 situational styles" in probe["paraspeechclap-situational"]["capabilities"]["emotion"]["evidence"]
    combined = probe["paraspeechclap"]["capabilities"]["emotion"]  # the stand-in ships as the combined checkpoint
    assert combined["status"] == "unmeasured" and "retrieval" in combined["evidence"]
    assert probe["paraspeechclap"]["angry_notices"] == []
    intrinsic = probe["paraspeechclap-intrinsic"]
    assert intrinsic["capabilities"]["emotion"]["status"] == "cannot"
    [notice] = intrinsic["angry_notices"]
    assert notice["property"] == "emotion" and "paraspeechclap-intrinsic cannot rank emotion" in notice["message"]
    assert "released CLSP" in notice["who_can"] and "situational checkpoint of ParaSpeechCLAP" in notice["who_can"]
    assert probe["my-finetune"]["capabilities"] == {} and probe["my-finetune"]["angry_notices"] == []
