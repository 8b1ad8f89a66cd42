"""ParaSpeechCLAP (Diwan, Choi, Harwath, Interspeech 2026) behind our `Encoder` interface: 768-d.

The release is bare `.pth.tar` state dicts of the authors' `CLAP` (github.com/ajd12342/paraspeechclap,
paraspeechclap/model.py, MIT code; CC-BY-NC-SA-4.0 weights), which builds WavLM-Large and
granite-embedding-278m-multilingual by name. Its structure is repeated here (module names equal, so
the state dict loads as it is): speech = WavLM last hidden state, mean over the frames the attention
mask keeps; text = granite's CLS token (max length 512); each through a Projection (Linear, GELU,
Linear, residual, LayerNorm); L2-normalised. Input as the authors prepare it: Wav2Vec2FeatureExtractor
(per-utterance zero mean / unit variance, attention mask), the granite tokenizer.

Differences that change nothing in the vectors: the towers are built from their configs (every weight
comes from the `.pth.tar`, so the base weights are never read and not downloaded), gradient
checkpointing is not enabled, and a load missing any tensor is refused (the authors' README falls
back to a non-strict load; tensors the checkpoint has beyond the model, such as training-only heads,
are ignored and logged). The directory is what `clsp-search models download paraspeechclap` writes:
config.json (which checkpoint, which towers), the `.pth.tar` files, `by_name/<tower name>/`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from searchengine.model.catalogue import RELEASES, download_command
from searchengine.model.checkpoint import CheckpointError, file_checksum
from searchengine.model.encoder import Encoder
from searchengine.model.offline import force_offline, local_copy

log = logging.getLogger(__name__)
MAX_TEXT_TOKENS = 512
SAMPLE_RATE = 16000


class Projection(torch.nn.Module):
    """Linear -> GELU -> Linear (+ dropout), residual, LayerNorm: the authors' head."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5) -> None:
        super().__init__()
        self.linear1 = torch.nn.Linear(d_in, d_out, bias=False)
        self.linear2 = torch.nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = torch.nn.LayerNorm(d_out)
        self.drop = torch.nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)
        return self.layer_norm(embed1 + self.drop(self.linear2(F.gelu(embed1))))


class SpeechBranch(torch.nn.Module):
    """WavLM with masked mean pooling over its output frames."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(directory))
        config.layerdrop = 0.0
        self.base = AutoModel.from_config(config)
        self.hidden_size = config.hidden_size

    def forward(self, audio: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.base(audio, attention_mask=attention_mask, return_dict=False)[0]
        if attention_mask is None:
            return hidden.mean(dim=1)
        mask = self.base._get_feature_vector_attention_mask(hidden.shape[1], attention_mask).unsqueeze(-1)
        mask = mask.to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class TextBranch(torch.nn.Module):
    """The text encoder's CLS token."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        # built as the authors build it (with the pooler their state dict holds; CLS is read before it)
        self.base = AutoModel.from_config(AutoConfig.from_pretrained(str(directory)))

    def forward(self, tokens: dict) -> torch.Tensor:
        return self.base(**tokens).last_hidden_state[:, 0, :]


class ParaSpeechClap(torch.nn.Module):
    """ParaSpeechCLAP's network under the release's module names, so its state dicts load unchanged."""

    def __init__(self, speech_dir: Path, text_dir: Path, embedding_dim: int = 768, projection_dropout: float = 0.5):
        super().__init__()
        self.audio_branch = SpeechBranch(speech_dir)
        self.text_branch = TextBranch(text_dir)
        self.audio_projection = Projection(self.audio_branch.hidden_size, embedding_dim, p=projection_dropout)
        self.text_projection = Projection(self.text_branch.base.config.hidden_size, embedding_dim, p=projection_dropout)
        self.log_logit_scale = torch.nn.Parameter(torch.ones([]) * math.log(1 / 0.07))


class ParaSpeechClapEncoder(Encoder):
    """Encoder over a downloaded ParaSpeechCLAP directory (or one of its `.pth.tar` files)."""

    def __init__(self, directory: str | Path, device: torch.device, name: str | None = None) -> None:
        force_offline()
        from transformers import AutoTokenizer, Wav2Vec2FeatureExtractor

        directory = Path(directory)
        fetch = download_command("paraspeechclap", directory)
        config = json.loads((directory / "config.json").read_text())
        chosen = Path(name) if name and str(name).endswith(".pth.tar") and Path(name).is_file() else None
        checkpoint = chosen or directory / config.get("checkpoint", "paraspeechclap-combined.pth.tar")
        if not checkpoint.is_file():
            raise CheckpointError(f"missing {checkpoint} (the ParaSpeechCLAP weights): run `{fetch}`, or copy a "
                                  "directory it wrote from a machine with internet")
        missing = RELEASES["paraspeechclap"].missing_by_name(directory)
        speech_dir = local_copy(directory, config["speech_name"])
        text_dir = local_copy(directory, config["text_name"])
        missing += [p for p in (speech_dir, text_dir) if not (p / "config.json").is_file() and p not in missing]
        if missing:
            raise CheckpointError(f"missing {', '.join(map(str, missing))} (what ParaSpeechCLAP loads by name): "
                                  f"run `{fetch}`, or copy a directory it wrote from a machine with internet")
        try:
            self.features = Wav2Vec2FeatureExtractor.from_pretrained(str(speech_dir))
            self.tokenizer = AutoTokenizer.from_pretrained(str(text_dir))
            model = ParaSpeechClap(speech_dir, text_dir, int(config.get("embedding_dim", 768)),
                                   float(config.get("projection_dropout", 0.5)))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot build ParaSpeechCLAP from {directory}: {exc}; run `{fetch}`") from exc
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys:
            raise CheckpointError(f"{checkpoint} lacks {len(result.missing_keys)} tensors of ParaSpeechCLAP: "
                                  f"{result.missing_keys[:5]}")
        if result.unexpected_keys:
            log.warning("%s: %d tensors not in the model, ignored: %s", checkpoint, len(result.unexpected_keys),
                        result.unexpected_keys[:5])
        self.model = model.to(device).eval()
        self.device = device
        self.dim = int(config.get("embedding_dim", 768))
        self.name = checkpoint.name.removesuffix(".pth.tar")
        self.model_id = f"{self.name}@{file_checksum(checkpoint)}"

    def _autocast(self):
        """float32 always: bf16's effect on these vectors is unmeasured."""
        import contextlib

        return contextlib.nullcontext()

    def _prepare_speech_batch(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        inputs = self.features(waveforms, sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True,
                               return_tensors="pt")
        return {"audio": inputs["input_values"], "attention_mask": inputs["attention_mask"]}

    def _embed_speech_batch(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        audio = prepared["audio"].to(self.device)
        mask = prepared["attention_mask"].to(self.device)
        return F.normalize(self.model.audio_projection(self.model.audio_branch(audio, mask)), dim=-1)

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        return self._embed_speech_batch(self._prepare_speech_batch(waveforms))

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TEXT_TOKENS,
                                return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return F.normalize(self.model.text_projection(self.model.text_branch(tokens)), dim=-1)

    def _logit_scale(self) -> float:
        return float(self.model.log_logit_scale.detach().exp())
