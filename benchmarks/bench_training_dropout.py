"""`nn.Dropout` against packed dropout masks (`"fast_dropout": true`, searchengine/model/dropout.py) in
the training steps of `clsp-search train` and `tune-text`, on CPU under bf16 autocast as the bundled
recipe runs them:

- one dropout of a speech-tower block's activations, [64, 125, 192] (64 crops of 500 frames, 4 stacked);
- a training step of the speech side (step 1's epochs): the small speech tower and speech head, forward,
  backward and AdamW over 64 crops of 500 frames;
- a training step of the per-token text head (step 2's epochs) over about 128 captions of 30-60 tokens.
The two models share their weights and differ only in their dropout layers; each computation is timed
in turn in one run (best of 3), so the ratio holds on a noisy machine.

    python -m benchmarks training_dropout
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_model import best_of
from searchengine.model.clsp import CLSP
from searchengine.model.config import get_model_config
from searchengine.model.dropout import PackedDropout
from searchengine.model.heads import TokenBatch
from searchengine.model.train import cpu_autocast


def _models() -> dict[str, CLSP]:
    config = get_model_config("clsp-mini")
    torch.manual_seed(0)
    plain = CLSP({**config, "fast_dropout": False})
    packed = CLSP({**config, "fast_dropout": True})
    packed.load_state_dict(plain.state_dict())
    return {"nn.Dropout": plain, "packed": packed}


def main() -> None:
    models = _models()
    n_features = models["packed"].speech_tower.frontend_config.n_features
    frames = torch.randn(64, 500, n_features)
    frame_lengths = torch.from_numpy(np.random.default_rng(1).integers(300, 501, size=64))
    lengths = torch.from_numpy(np.random.default_rng(0).integers(30, 60, size=128))
    hidden_size = int(models["packed"].text_tower.model.config.hidden_size)
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    tokens = TokenBatch(torch.randn(128, int(lengths.max()), hidden_size), mask)
    activations = torch.randn(64, 125, 192).bfloat16()
    layers = {"nn.Dropout": torch.nn.Dropout(0.1), "packed": PackedDropout(0.1)}

    def dropout(kind: str) -> None:
        for _ in range(10):
            layers[kind](activations)

    def speech_steps(kind: str) -> None:
        model = models[kind].train()
        model.text_tower.eval()
        optimizer = torch.optim.AdamW([p for p in model.speech_tower.parameters()] + list(model.speech_head.parameters()), lr=1e-5)
        for _ in range(3):
            with cpu_autocast("bfloat16"):
                out = model.encode_speech(frames=frames, lengths=frame_lengths).float()
            loss = out.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def head_steps(kind: str) -> None:
        head = models[kind].text_head.train()
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-5)
        for _ in range(5):
            with cpu_autocast("bfloat16"):
                out = head(tokens).float()
            loss = out.pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    print(f"clsp-mini training dropout on cpu ({torch.get_num_threads()} threads), bf16 autocast, p = 0.1")
    for name, run, unit, count in (("dropout of one block's activations", dropout, "calls", 10),
                                   ("speech-side training step (step 1)", speech_steps, "steps", 3),
                                   ("text-head training step (step 2)", head_steps, "steps", 5)):
        for kind in layers:  # warm-up of both paths
            run(kind)
        seconds = {kind: best_of(3, lambda kind=kind, run=run: run(kind)) for kind in layers}
        print(f"  {name}: nn.Dropout {count / seconds['nn.Dropout']:.1f} {unit}/s, packed "
              f"{count / seconds['packed']:.1f} {unit}/s, ratio {seconds['nn.Dropout'] / seconds['packed']:.2f}x")
