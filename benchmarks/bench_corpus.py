"""Corpus generation throughput: clips per second and audio seconds per wall second.

`python -m benchmarks corpus` (or `python benchmarks/bench_corpus.py --n 500`). The corpus is made in
a temporary directory with every core, exactly as `clsp-search corpus generate` does it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

DEFAULT_N = 2000


def run(n: int = DEFAULT_N, seed: int = 1, workers: int | None = None) -> dict:
    from searchengine.corpus.generate import generate
    from searchengine.corpus.voices import available_voices

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="clsp-bench-corpus-") as tmp:
        started = time.perf_counter()
        summary = generate(Path(tmp) / "corpus", n=n, seed=seed, voices=available_voices(),
                           workers=workers, split_by_voice=True)
        wall = time.perf_counter() - started
    return {"n": n, "workers": workers, "wall_s": wall, "clips_per_s": n / wall,
            "audio_s_per_wall_s": summary["audio_seconds"] / wall, "voices": summary["voices"],
            "audio_minutes": summary["audio_seconds"] / 60}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_CORPUS_N", DEFAULT_N)))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    args = parser.parse_args(argv if argv is not None else [])
    r = run(args.n, args.seed, args.workers or None)
    print(f"{r['n']} clips, {r['voices']} voices, {r['audio_minutes']:.1f} min of audio in {r['wall_s']:.1f} s "
          f"on {r['workers']} workers: {r['clips_per_s']:.1f} clips/s, "
          f"{r['audio_s_per_wall_s']:.0f} audio s per wall s")
    print(f"| corpus generate --n {r['n']} --split-by-voice | {r['workers']} workers | {r['wall_s']:.1f} s | "
          f"{r['clips_per_s']:.1f} clips/s | {r['audio_s_per_wall_s']:.0f}x real time | {r['voices']} voices |")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
