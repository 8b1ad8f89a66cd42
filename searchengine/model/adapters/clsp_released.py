"""The released CLSP checkpoint (Hugging Face `yfyeung/CLSP`) behind our `Encoder` interface.

The checkpoint ships its own modeling code (config.json `auto_map`), loaded with
`AutoModel.from_pretrained(dir, trust_remote_code=True)`. Its documented call embeds both modalities
at once: `audio_features, text_features, logit_scale = model(text=[...], audio=[B, T] 16 kHz
zero-padded, audio_lens=[B], freeze_audio_encoder=True, freeze_text_encoder=True)`, and it tokenises
text itself. To embed one modality we use, in this order:

1. single-modality methods the modeling module defines (`encode_audio`, `get_audio_features`, ... and
   their text counterparts), called with the same argument names as `forward`;
2. `forward` with one modality only, when its signature makes the other optional: the checkpoint's
   own usage examples embed a batch of audio with `model(audio=..., audio_lens=...)` and captions
   with `model(text=[...])`, taking the audio or text half of the returned triple;
3. only if neither exists: the documented joint call with a fixed dummy input for the other
   modality, keeping just the half we need. That costs one extra (small) pass of the other tower,
   and is stated in searchengine/model/README.md.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.model.checkpoint import CheckpointError, file_checksum
from searchengine.model.encoder import Encoder

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


class ReleasedClspEncoder(Encoder):
    """Encoder over a local directory (or cached hub snapshot) of the released CLSP."""

    def __init__(self, directory: str | Path, device: torch.device, name: str | None = None,
                 use_single_modality_methods: bool = True, use_single_modality_forward: bool = True) -> None:
        from transformers import AutoModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        directory = Path(directory)
        weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
        if not weights:
            raise CheckpointError(f"{directory} has config.json but no model.safetensors; expected the released CLSP files")
        try:
            self.model = AutoModel.from_pretrained(str(directory), trust_remote_code=True)
        except (OSError, ValueError, ImportError) as exc:
            raise CheckpointError(f"cannot load the released CLSP from {directory}: {exc}") from exc
        self.model = self.model.to(device).eval()
        self.device = device
        self.name = Path(name).name if name and Path(name).exists() else (name or directory.name)
        self.model_id = f"{self.name}@{file_checksum(*weights)}"
        self._audio_method = self._find(AUDIO_METHODS) if use_single_modality_methods else None
        self._text_method = self._find(TEXT_METHODS) if use_single_modality_methods else None
        self._forward_takes_one = use_single_modality_forward and self._forward_makes_modalities_optional()
        self.dim = int(self._speech_batch([np.zeros(DUMMY_AUDIO_SAMPLES, dtype=np.float32)]).shape[-1])
        self._scale: float | None = None

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
