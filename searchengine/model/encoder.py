"""The one object callers use: `Encoder`, in the spirit of sentence-transformers' `encode`.

Batching, length bucketing, devices, mixed precision and progress bars are the encoder's business,
not the caller's. Every concrete model (our CLSP checkpoints, the released CLSP, CLAP) subclasses
`Encoder` and only implements how one prepared batch becomes embeddings.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from searchengine.model.audio import MODEL_SAMPLE_RATE, prepare_waveforms

DEFAULT_ZERO_SHOT_TEMPLATE = "A speaker in a {} tone."


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def length_buckets(lengths: Sequence[int], batch_size: int, max_batch_samples: int | None = None) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Sorting by length means little padding (padding is wasted compute) and putting the longest batch
    first makes an out-of-memory error happen at once rather than at the end of a long job.
    `max_batch_samples` additionally caps batch size x longest clip, so long clips get smaller batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        too_many = len(batch) >= batch_size
        too_long = max_batch_samples is not None and batch and (len(batch) + 1) * longest > max_batch_samples
        if batch and (too_many or too_long):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


class Encoder(ABC):
    """Speech and text -> L2-normalised float32 vectors in one space (inner product = cosine)."""

    name: str
    model_id: str
    dim: int = 512
    device: torch.device

    # ------------------------------------------------------------------ to implement per model family
    @abstractmethod
    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """16 kHz mono waveforms -> [B, dim] embeddings (any dtype/device; normalised later)."""

    @abstractmethod
    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        """Texts -> [B, dim] embeddings."""

    def _logit_scale(self) -> float:
        """Temperature used to turn cosines into zero-shot probabilities."""
        return 100.0

    # --------------------------------------------------------------------------------- shared API
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode_speech(
        self,
        waveforms: Any,
        sample_rate: int = MODEL_SAMPLE_RATE,
        batch_size: int = 32,
        max_batch_seconds: float = 480.0,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed waveforms (any rate, mono or multichannel) -> float32 [N, dim], L2-normalised."""
        prepared = prepare_waveforms(waveforms, sample_rate)
        output = np.zeros((len(prepared), self.dim), dtype=np.float32)
        if not prepared:
            return output
        lengths = [len(w) for w in prepared]
        batches = list(length_buckets(lengths, batch_size, int(max_batch_seconds * MODEL_SAMPLE_RATE)))
        progress = _progress(len(prepared), "speech", show_progress)
        with torch.inference_mode(), self._autocast():
            for batch in batches:
                vectors = self._speech_batch([prepared[i] for i in batch])
                output[batch] = _normalise(vectors)
                progress.update(len(batch))
        progress.close()
        return output

    def encode_text(self, texts: str | Sequence[str], batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
        """Embed texts -> float32 [N, dim], L2-normalised."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        batches = list(length_buckets([len(t) for t in texts], batch_size))
        progress = _progress(len(texts), "text", show_progress)
        with torch.inference_mode(), self._autocast():
            for batch in batches:
                output[batch] = _normalise(self._text_batch([texts[i] for i in batch]))
                progress.update(len(batch))
        progress.close()
        return output

    def zero_shot(
        self,
        waveforms: Any,
        labels: Sequence[str],
        template: str | Sequence[str] = DEFAULT_ZERO_SHOT_TEMPLATE,
        sample_rate: int = MODEL_SAMPLE_RATE,
        speech_embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """Class probabilities [N, len(labels)]: softmax over the model's scaled cosine to each prompt.

        `template` may be several templates: each class is then the normalised mean of its prompts'
        embeddings (CLIP's prompt ensembling), which makes the result depend less on one wording.
        Pass `speech_embeddings` to reuse vectors already computed (evaluation scores several
        attributes on the same clips).
        """
        templates = [template] if isinstance(template, str) else list(template)
        if not templates:
            raise ValueError("zero_shot needs at least one template")
        text = np.zeros((len(labels), self.dim), dtype=np.float32)
        for pattern in templates:
            text += self.encode_text([pattern.format(label) for label in labels])
        text = _normalise(torch.from_numpy(text))
        speech = speech_embeddings if speech_embeddings is not None else self.encode_speech(waveforms, sample_rate)
        logits = self._logit_scale() * (speech @ text.T)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)

    def style_similarity(self, a: Any, b: Any, sample_rate: int = MODEL_SAMPLE_RATE) -> float | np.ndarray:
        """Speaking-style similarity in 0..1: the cosine of the speech embeddings, mapped (cos + 1) / 2.

        `a` and `b` are single waveforms (returns a float) or equally long lists (returns [N]).
        """
        single = hasattr(a, "ndim") and a.ndim == 1
        left = self.encode_speech([a] if single else a, sample_rate)
        right = self.encode_speech([b] if single else b, sample_rate)
        if left.shape != right.shape:
            raise ValueError("style_similarity needs as many clips in `a` as in `b`")
        similarity = np.clip(((left * right).sum(axis=1) + 1.0) / 2.0, 0.0, 1.0)
        return float(similarity[0]) if single else similarity

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, device={self.device})"


class ClspEncoder(Encoder):
    """Encoder over one of our CLSP checkpoints (clsp-mini or anything `clsp-search train` wrote)."""

    def __init__(self, model: torch.nn.Module, name: str, checksum: str, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.model_id = f"{name}@{checksum}"
        self.dim = model.embed_dim
        self.device = device

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in batch.items()}

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        return self.model.encode_speech(**self._to_device(self.model.speech_tower.prepare(waveforms)))

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(**self._to_device(self.model.text_tower.prepare(texts)))

    def _logit_scale(self) -> float:
        return float(self.model.scale().detach())


def _normalise(vectors: torch.Tensor) -> np.ndarray:
    vectors = vectors.float()
    return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()


class _NoProgress:
    def update(self, n: int) -> None:  # noqa: D401 - trivial
        pass

    def close(self) -> None:
        pass


def _progress(total: int, unit: str, show: bool):
    if not show:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=f"encoding {unit}")
