"""Short typed queries: precision@10 of a model's speech embeddings for a dozen brief descriptions.

The CLSP protocol (`clsp-search eval`) scores long captions; people type short phrases. This
benchmark renders the `make demo` corpus (300 clips, seed 7, split by voice), embeds its audio, and
for each short query counts how many of the ten best clips (speech index only, no captions) have
every attribute the query names, against the base rate of such clips in the corpus.

    python -m benchmarks short_queries
    CLSP_SEARCH_BENCH_MODELS="clsp-mini,path/to/other-model" python -m benchmarks short_queries
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import bench_models
from benchmarks.bench_search import _corpus


def _in(name: str, *values: object) -> Callable:
    return lambda clip: clip.attribute(name) in values


def _all(*tests: Callable) -> Callable:
    return lambda clip: all(test(clip) for test in tests)


WOMAN, MAN = _in("gender", "female"), _in("gender", "male")
QUERIES: tuple[tuple[str, Callable], ...] = (
    ("a woman whispering in a quiet room", _all(WOMAN, _in("whisper", True))),
    ("someone whispering", _in("whisper", True)),
    ("a man speaking very quickly", _all(MAN, _in("speaking_rate", "fast", "very fast"))),
    ("a woman speaking slowly", _all(WOMAN, _in("speaking_rate", "slow", "very slow"))),
    ("a low-pitched man over a telephone line",
     _all(MAN, _in("pitch_level", "low", "very low"), _in("channel", "telephone"))),
    ("a high-pitched woman", _all(WOMAN, _in("pitch_level", "high", "very high"))),
    ("a voice far away in a large echoing hall", _in("reverb", "very distant")),
    ("speech with heavy background noise", _in("noise", "very noisy")),
    ("a quiet, soft-spoken voice", _in("loudness", "quiet")),
    ("a loud voice", _in("loudness", "loud")),
    ("a man with a Scottish accent", _all(MAN, _in("accent", "Scottish"))),
    ("an elderly woman", _all(WOMAN, _in("age", "elderly"))),
    ("a monotone male voice", _all(MAN, _in("pitch_variation", "monotone"))),
)


def precision_at_10(models: list[str], n: int = 300, seed: int = 7) -> dict[str, list[float]]:
    """Per model, P@10 of each query in QUERIES (same order); key "base rate" holds the base rates."""
    from searchengine.model import load_model
    from searchengine.model.data import read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        clips = read_manifest(_corpus(Path(tmp) / "corpus", n, seed))
        audio = [clip.load_audio() for clip in clips]
    results = {"base rate": [float(np.mean([test(c) for c in clips])) for _, test in QUERIES]}
    for model in models:
        encoder = load_model(model, device="cpu")
        speech = encoder.encode_speech(audio)
        text = encoder.encode_text([query for query, _ in QUERIES])
        results[model] = [
            float(np.mean([test(clips[i]) for i in np.argsort(-(speech @ vector))[:10]]))
            for (_, test), vector in zip(QUERIES, text, strict=True)
        ]
    return results


def main() -> None:
    models = bench_models()
    results = precision_at_10(models)
    names = list(results)
    print("| query | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for k, (query, _) in enumerate(QUERIES):
        print(f"| {query} | " + " | ".join(f"{results[name][k]:.2f}" for name in names) + " |")
    print("| mean | " + " | ".join(f"{np.mean(results[name]):.3f}" for name in names) + " |")


if __name__ == "__main__":
    main()
