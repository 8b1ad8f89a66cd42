"""What the released CLSP costs on a CPU (issue 34, item 7), measured on a stand-in at its sizes.

The stand-in is tests/fixtures/clsp_standin's code (built by tests/fixtures/standins/build.py) with
random weights at the release's sizes: roberta-base (12 layers, 768-d, 50,265 tokens: 125M
parameters) and a speech encoder of about the same parameter count as the release's Zipformer
(724M in all): icefall's Conv2dSubsampling to 50 frames/s, then 47 transformer layers of 1024-d with
4096-d feed-forward at 50 frames/s. Zipformer2 runs most of its layers at 25, 12.5 or 6.25 frames/s,
so the audio figure is a lower bound on the release's speed (it should be faster, not slower).
Loaded and called through `load_model` as a user's copy is (fp32, the 128-bin fbank of
searchengine.model.kaldi_fbank included). Also: the fbank alone against lhotse's torch fbank.

    python -m benchmarks bench_released_cost     # torch threads = 2, as the test machine
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
CLIP_SECONDS = 10.0
CLIPS = 2
QUERIES = 20
RELEASE_SPEECH = {"feature_dim": 128, "encoder_dim": 1024, "num_encoder_layers": 47, "num_heads": 16,
                  "feedforward_dim": 4096, "pos_dim": 48, "joint_dim": 512}
ROBERTA_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                "vocab_size": 50265}


def fbank_cost() -> tuple[float, float]:
    """ms per 30 s of audio: ours, lhotse's Wav2LogFilterBank (same settings)."""
    from lhotse.features.kaldi.layers import Wav2LogFilterBank

    from searchengine.model.kaldi_fbank import fbank

    x = torch.randn(1, 16000 * 30) * 0.1
    layer = Wav2LogFilterBank(num_filters=128)
    results = []
    with torch.inference_mode():
        for call in (lambda: fbank(x, num_mel_bins=128, high_freq=-400.0, snip_edges=False), lambda: layer(x)):
            call()
            started = time.perf_counter()
            for _ in range(5):
                call()
            results.append((time.perf_counter() - started) / 5 * 1000)
    return results[0], results[1]


def main() -> None:
    torch.set_num_threads(THREADS)
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "standins"))
    from build import build_clsp_standin

    from searchengine.model import load_model

    ours, lhotse = fbank_cost()
    print(f"fbank, 30 s of audio, {THREADS} threads: ours {ours:.0f} ms, lhotse {lhotse:.0f} ms "
          f"(ours / lhotse {ours / lhotse:.2f})")
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work) / "CLSP"
        started = time.perf_counter()
        build_clsp_standin(directory, sizes=RELEASE_SPEECH, roberta=ROBERTA_BASE)
        built = time.perf_counter() - started
        started = time.perf_counter()
        encoder = load_model(directory, device="cpu")
        loaded = time.perf_counter() - started
        parameters = sum(p.numel() for p in encoder.model.parameters())
        rng = np.random.default_rng(0)
        waves = [(0.1 * rng.standard_normal(int(CLIP_SECONDS * 16000))).astype(np.float32) for _ in range(CLIPS)]
        encoder.encode_speech([waves[0][:16000]])  # warm-up
        started = time.perf_counter()
        encoder.encode_speech(waves, batch_size=1)
        speech_seconds = time.perf_counter() - started
        queries = [f"A speaker number {i} talks in a calm, low voice." for i in range(QUERIES)]
        encoder.encode_text(["warm-up"])
        started = time.perf_counter()
        for query in queries:
            encoder.encode_text([query])
        text_ms = (time.perf_counter() - started) / QUERIES * 1000
    audio_rate = CLIPS * CLIP_SECONDS / speech_seconds
    print(f"stand-in: {parameters / 1e6:.0f}M parameters, built in {built:.0f} s, loaded in {loaded:.0f} s")
    print(f"| measure ({THREADS} threads, fp32) | value |")
    print("|---|---|")
    print(f"| audio seconds embedded per second ({CLIPS} clips of {CLIP_SECONDS:.0f} s, batch 1) | {audio_rate:.2f} |")
    print(f"| ms per text query (one caption, roberta-base size) | {text_ms:.0f} |")
    print(f"| hours of audio per day of CPU time | {audio_rate * 24:.0f} |")


if __name__ == "__main__":
    main()
