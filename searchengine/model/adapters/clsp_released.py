"""The released CLSP checkpoint (Hugging Face `yfyeung/CLSP`) behind our `Encoder` interface.

The checkpoint ships its own modeling code (config.json `auto_map`). Loading it as its README does,
`AutoModel.from_pretrained(dir, trust_remote_code=True)`, fails here three ways, each fixed below and
each tested against tests/fixtures/clsp_standin (tests/model/test_released_models.py):

- its code imports `torchaudio.compliance.kaldi.fbank`, and no torchaudio loads with the CPU torch:
  the model is built inside `torchaudio_shim()` (searchengine.model.kaldi_fbank, pure torch);
- its constructor asks for "roberta-base" (config, tokenizer, weights) by name: offline mode is forced
  (searchengine.model.offline) and the name resolves to `by_name/roberta-base`, which
  `clsp-search models download clsp` fetches; a missing copy is an error naming it and that command
  (a Python package the code imports and this interpreter lacks is named instead, with how to install
  it: downloading again would not add it);
- transformers 5 builds `from_pretrained` models on the meta device, where a nested
  `RobertaModel.from_pretrained` is refused and plain tensor attributes (Zipformer's positional
  table) stay on meta: the class is built on the real device from its config, and the checkpoint's
  state dict loaded into it, every weight accounted for.

Vectors are computed in float32, as the authors run it; bf16 autocast only when asked
(`precision="bf16"`), since its effect on these vectors is unmeasured (benchmarks/RESULTS.md).

Its documented call embeds both modalities at once: `audio_features, text_features, logit_scale =
model(text=[...], audio=[B, T] 16 kHz zero-padded, audio_lens=[B], freeze_audio_encoder=True,
freeze_text_encoder=True)`, and it tokenises text itself. To embed one modality we use, in this order:

1. single-modality methods the modeling module defines (`encode_audio`, `get_audio_features`, ... and
   their text counterparts), called with the same argument names as `forward`;
2. `forward` with one modality only, when its signature makes the other optional (the release's
   README embeds audio with `model(audio=..., audio_lens=...)` and captions with `model(text=[...])`);
3. only if neither exists: the joint call with a fixed dummy input for the other modality.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.model.catalogue import RELEASES, download_command
from searchengine.model.checkpoint import CheckpointError, file_checksum
from searchengine.model.encoder import Encoder
from searchengine.model.kaldi_fbank import torchaudio_shim
from searchengine.model.missing_package import missing_package, not_installed_message
from searchengine.model.offline import force_offline, names_resolve_to

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16")

AUDIO_METHODS = ("encode_audio", "get_audio_features", "get_audio_embedding", "encode_speech", "forward_audio")
TEXT_METHODS = ("encode_text", "get_text_features", "get_text_embedding", "forward_text")
DUMMY_CAPTION = "A speaker."
DUMMY_AUDIO_SAMPLES = 16000  # one second of silence


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    for attribute in ("pooler_output", "embeds", "last_hidden_state"):
        value = getattr(output, attribute, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"cannot find an embedding tensor in {type(output).__name__}")


def _weights(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))


def _read_state_dict(paths: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in paths:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(path)))
        else:
            state.update(torch.load(path, map_location="cpu", weights_only=True))
    return state


def build_released_clsp(directory: Path) -> torch.nn.Module:
    """The released model's own class, built from its config on the real device, with its weights.

    No meta device (see the module docstring); offline; names resolve to `directory/by_name`."""
    force_offline()
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    directory = Path(directory).resolve()
    with torchaudio_shim(), names_resolve_to(directory):
        config = AutoConfig.from_pretrained(str(directory), trust_remote_code=True)
        reference = (getattr(config, "auto_map", None) or {}).get("AutoModel")
        if not reference:
            raise CheckpointError(f"{directory / 'config.json'} has no auto_map.AutoModel for the model's own code")
        model_class = get_class_from_dynamic_module(reference, str(directory))
        model = model_class(config)
    missing, unexpected = model.load_state_dict(_read_state_dict(_weights(directory)), strict=False)
    if missing:
        raise CheckpointError(f"{directory}: the weights lack {len(missing)} tensors the model has: {missing[:5]}")
    if unexpected:
        log.warning("%s: %d tensors in the weights are not in the model, ignored: %s", directory, len(unexpected),
                    unexpected[:5])
    return model.eval()


class ReleasedClspEncoder(Encoder):
    """Encoder over a local directory of the released CLSP (`clsp-search models download clsp`)."""

    def __init__(self, directory: str | Path, device: torch.device, name: str | None = None,
                 use_single_modality_methods: bool = True, use_single_modality_forward: bool = True,
                 precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
        directory = Path(directory)
        weights = _weights(directory)
        fetch = download_command("clsp", directory)
        if not weights:
            raise CheckpointError(
                f"{directory} has config.json but no model.safetensors (the released CLSP's weights): "
                f"run `{fetch}`, or copy a directory it wrote from a machine with internet"
            )
        try:
            self.model = build_released_clsp(directory)
        except (OSError, ValueError, ImportError) as exc:
            if isinstance(exc, ImportError):  # a package its code imports: downloading again cannot add it
                with torchaudio_shim():  # what the model was built with counts as installed
                    package = missing_package(exc, directory)
                if package:
                    release = RELEASES["clsp"].sources[0].repo_id
                    raise CheckpointError(not_installed_message(package, directory, release)) from exc
            missing = ", ".join(str(p) for p in RELEASES["clsp"].missing_by_name(directory))
            raise CheckpointError(
                f"cannot load the released CLSP from {directory}: "
                + (f"missing {missing} (what its code loads by name); " if missing else "")
                + f"{str(exc).rstrip('.')}. Fetch everything it needs with `{fetch}` (or copy such a directory from a "
                "machine with internet)"
            ) from exc
        self.model = self.model.to(device).eval()
        self.device = device
        self.precision = precision
        self.name = Path(name).name if name and Path(name).exists() else (name or directory.name)
        self.model_id = f"{self.name}@{file_checksum(*weights)}"
        self._audio_method = self._find(AUDIO_METHODS) if use_single_modality_methods else None
        self._text_method = self._find(TEXT_METHODS) if use_single_modality_methods else None
        self._forward_takes_one = use_single_modality_forward and self._forward_makes_modalities_optional()
        try:
            with torch.inference_mode(), self._autocast():
                self.dim = int(self._speech_batch([np.zeros(DUMMY_AUDIO_SAMPLES, dtype=np.float32)]).shape[-1])
        except Exception as exc:  # noqa: BLE001 - the model's own code: any failure means "cannot embed"
            raise CheckpointError(f"the model in {directory} loads but cannot embed one second of silence: "
                                  f"{type(exc).__name__}: {exc}") from exc
        self._scale: float | None = None

    def _autocast(self) -> contextlib.AbstractContextManager:
        """float32 unless bf16 was asked for: the authors run fp32 (module docstring)."""
        if self.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def uses_dummy_inputs(self) -> bool:
        """True when the checkpoint offers no single-modality path for speech or for text."""
        if self._forward_takes_one:
            return False
        return self._audio_method is None or self._text_method is None

    def _forward_makes_modalities_optional(self) -> bool:
        """Whether `forward` accepts audio without text and text without audio (both default None)."""
        parameters = inspect.signature(self.model.forward).parameters
        return all(name in parameters and parameters[name].default is None for name in ("text", "audio", "audio_lens"))

    def _find(self, names: tuple[str, ...]):
        for name in names:
            method = getattr(self.model, name, None)
            if callable(method):
                return method
        return None

    @staticmethod
    def _call(method, **candidates: Any) -> Any:
        """Call with the keyword arguments the method accepts (names as in the documented forward)."""
        parameters = inspect.signature(method).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return method(**candidates)
        return method(**{k: v for k, v in candidates.items() if k in parameters})

    def _audio_inputs(self, waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
        audio = torch.zeros(len(waveforms), int(lengths.max()))
        for i, w in enumerate(waveforms):
            audio[i, : len(w)] = torch.from_numpy(w)
        return audio.to(self.device), lengths.to(self.device)

    def _joint(self, texts: list[str], waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        audio, audio_lens = self._audio_inputs(waveforms)
        return self.model(
            text=texts, audio=audio, audio_lens=audio_lens, freeze_audio_encoder=True, freeze_text_encoder=True
        )

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        audio, audio_lens = self._audio_inputs(waveforms)
        if self._audio_method is not None:
            return _first_tensor(
                self._call(self._audio_method, audio=audio, audio_lens=audio_lens, freeze_audio_encoder=True)
            )
        if self._forward_takes_one:
            audio_features, _, _ = self.model(audio=audio, audio_lens=audio_lens, freeze_audio_encoder=True)
            return audio_features
        audio_features, _, _ = self._joint([DUMMY_CAPTION] * len(waveforms), waveforms)
        return audio_features

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        if self._text_method is not None:
            return _first_tensor(self._call(self._text_method, text=texts, freeze_text_encoder=True))
        if self._forward_takes_one:
            _, text_features, _ = self.model(text=texts, freeze_text_encoder=True)
            return text_features
        silence = [np.zeros(DUMMY_AUDIO_SAMPLES, dtype=np.float32)] * len(texts)
        _, text_features, _ = self._joint(texts, silence)
        return text_features

    def _logit_scale(self) -> float:
        if self._scale is None:
            with torch.inference_mode():
                _, _, scale = self._joint([DUMMY_CAPTION], [np.zeros(DUMMY_AUDIO_SAMPLES, dtype=np.float32)])
            value = float(torch.as_tensor(scale).float().mean())
            # Checkpoints return either exp(logit_scale) (CLIP style, > 1) or the raw log value.
            self._scale = value if value > 10 else float(np.exp(value))
        return self._scale
