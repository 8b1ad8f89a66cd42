"""float32 against bf16 for the big computations of `clsp-search train / tune-text --compute-dtype`.

- the caption pass: MiniLM's token states of fine-grained captions, as `cache_text_features` computes
  them once per run (the largest one-off cost of step 2);
- a training step of the per-token text head: forward, backward and AdamW over a batch of token
  states the size step 2 trains on (about 128 captions of 40-50 tokens);
- a training step of the speech side (step 1's epochs): the small speech tower and speech head,
  forward, backward and AdamW over a batch of 64 crops of 500 frames, as `train` draws them.
Each is timed in turn in one run (best of 3), so the ratio holds on a noisy machine. bf16 pays on
CPUs with AMX or AVX512-BF16 (the flags are printed); elsewhere autocast may be slower than float32.

    python -m benchmarks training_precision
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import torch

from benchmarks.bench_model import best_of
from searchengine.corpus.captions import fine_captions
from searchengine.corpus.factors import facts_from_record
from searchengine.model import load_model
from training.features import encoding_order
from training.loop import cpu_autocast
from training.precision import cpu_bf16_flags


def _captions(n: int) -> list[str]:
    """Fine-grained captions (25-60 words) of varied voices, worded by the corpus's own caption writer."""
    rng = random.Random(0)
    out: list[str] = []
    for gender, accent, pitch, rate, noise, reverb in itertools.product(
            ("male", "female"), ("American", "British", "Scottish"), ("low", "medium", "high"),
            ("slow", "medium", "fast"), ("clean", "noisy"), ("close", "distant")):
        record = {"gender": gender, "accent": accent, "attributes": {
            "age": "adult", "pitch_level": pitch, "pitch_variation": "moderate", "speaking_rate": rate,
            "loudness": "normal", "noise": noise, "noise_color": None if noise == "clean" else "pink",
            "reverb": reverb, "channel": "studio", "whisper": False, "timbre": []}}
        out += fine_captions(facts_from_record(record), rng, n=2)
    return encoding_order(out[:n])  # in the cache pass's order: little padding per batch


def _cpu_bf16_flags() -> str:
    return ", ".join(sorted(cpu_bf16_flags())) or "none"


def main() -> None:
    encoder = load_model("clsp-mini", device="cpu")
    tower, head = encoder.model.text_tower.eval(), encoder.model.text_head
    captions = _captions(512)

    def caption_pass(dtype: str) -> None:
        with torch.inference_mode(), cpu_autocast(dtype):
            for start in range(0, len(captions), 128):
                tower.cached_states(**tower.prepare(captions[start : start + 128])).float()

    head = head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-5)
    lengths = np.random.default_rng(0).integers(30, 60, size=128)
    states = torch.randn(int(lengths.sum()), int(tower.model.config.hidden_size))

    def head_steps(dtype: str) -> None:
        for _ in range(5):
            with cpu_autocast(dtype):
                out = head(states).float()
            loss = out.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    speech_model = encoder.model.train()
    speech_model.text_tower.eval()
    speech_optimizer = torch.optim.AdamW([p for p in speech_model.parameters() if p.requires_grad], lr=1e-5)
    n_features = speech_model.speech_tower.frontend_config.n_features
    frames = torch.randn(64, 500, n_features)
    frame_lengths = torch.from_numpy(np.random.default_rng(1).integers(300, 501, size=64))

    def speech_steps(dtype: str) -> None:
        for _ in range(3):
            with cpu_autocast(dtype):
                out = speech_model.encode_speech(frames=frames, lengths=frame_lengths).float()
            loss = out.pow(2).mean()
            speech_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            speech_optimizer.step()

    print(f"clsp-mini training computations on cpu ({torch.get_num_threads()} threads), model {encoder.model_id}; "
          f"CPU bf16 flags: {_cpu_bf16_flags()}")
    for name, run, unit, count in (("caption pass (MiniLM token states)", caption_pass, "captions", len(captions)),
                                   ("text-head training step", head_steps, "steps", 5),
                                   ("speech-side training step (step 1)", speech_steps, "steps", 3)):
        for dtype in ("float32", "bfloat16"):  # warm-up of both paths
            run(dtype)
        seconds = {dtype: best_of(3, lambda dtype=dtype, run=run: run(dtype)) for dtype in ("float32", "bfloat16")}
        print(f"  {name}: float32 {count / seconds['float32']:.1f} {unit}/s, bfloat16 "
              f"{count / seconds['bfloat16']:.1f} {unit}/s, ratio {seconds['float32'] / seconds['bfloat16']:.2f}x")
    with torch.inference_mode():
        batch = tower.prepare(captions[-64:])
        exact = tower.cached_states(**batch).float()
        with cpu_autocast("bfloat16"):
            fast = tower.cached_states(**batch).float()
        mask = batch["attention_mask"].bool()
        error = (exact[mask] - fast[mask]).norm(dim=1) / exact[mask].norm(dim=1)
    print(f"  bf16 token states against float32 (longest 64 captions): median relative error {error.median():.4f}")
