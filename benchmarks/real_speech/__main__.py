"""`python -m benchmarks.real_speech build|pool|sources`: build the real-speech development set, or the
pool of other real voices (speaker-disjoint from it) that small models are fitted on, or list the sources."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.real_speech import DEFAULT_DIR, sources
from benchmarks.real_speech.build import build
from benchmarks.real_speech.conditions import CONDITIONS
from benchmarks.real_speech.pool import DEFAULT_POOL_DIR, build_pool
from benchmarks.real_speech.repos import MIRRORS_ENV, Repo, RepoStore, SourceUnavailable, mirror_dirs
from benchmarks.real_speech.sources import CORPORA, LIBRITTS_P, LIBRITTS_P_ANNOTATORS, NOISE


def _sources() -> str:
    lines = []
    for c in CORPORA:
        lines.append(f"{c.key}: {c.name} [{c.condition}] - {c.licence}")
        lines.append(f"    {c.candidates.__doc__.strip().splitlines()[0]}")
        per = f"{c.clean_per_speaker} per speaker"
        if c.derived_per_speaker:
            per += f", plus {c.derived_per_speaker} per speaker for each of {', '.join(CONDITIONS)}"
        if c.speakers_per_gender:
            per += f", {c.speakers_per_gender} speakers of each gender"
        lines.append(f"    takes {per}; {c.min_seconds:g}-{c.max_seconds:g} s")
    lines.append(f"noise for the noisy condition: {NOISE[0].origin(NOISE[1])} - {NOISE[2]}")
    lines.append(f"LibriSpeech readers' gender: SPEAKERS.TXT, corrected where all three LibriTTS-P annotators "
                 f"heard the other gender ({LIBRITTS_P.origin(LIBRITTS_P_ANNOTATORS[0].rsplit('/', 1)[0])}, CC BY 4.0)")
    repos = sorted({r.name + "@" + r.commit for r in _repos()})
    lines.append("repositories: " + ", ".join(repos))
    return "\n".join(lines)


def _repos() -> list[Repo]:
    return [v for v in vars(sources).values() if isinstance(v, Repo)]


def _source_options(parser: argparse.ArgumentParser) -> None:
    """Where the pinned repositories are read from (shared by `build` and `pool`)."""
    parser.add_argument("--mirror", type=Path, action="append", default=[],
                        help=f"folder of repository clones named owner+name (repeatable; also ${MIRRORS_ENV})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where missing repositories are cloned (default: OUT/../real_speech_sources)")
    parser.add_argument("--offline", action="store_true", help="never fetch; fail naming what is missing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_speech", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or complete the set (re-runs reuse clips already written)")
    b.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"output folder (default {DEFAULT_DIR})")
    _source_options(b)
    pool = sub.add_parser("pool", help="write the LibriSpeech readers the set leaves out (training data for the gender estimate)")
    pool.add_argument("--out", type=Path, default=DEFAULT_POOL_DIR, help=f"output folder (default {DEFAULT_POOL_DIR})")
    _source_options(pool)
    sub.add_parser("sources", help="list the sources, their licences and pinned commits")
    args = parser.parse_args(argv)
    if args.command == "sources":
        print(_sources())
        return 0
    cache = args.cache or args.out.parent / "real_speech_sources"
    store = RepoStore(mirror_dirs(args.mirror), cache, allow_network=not args.offline)
    command = "python -m benchmarks.real_speech " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        if args.command == "pool":
            p = build_pool(args.out, store, command)
            print(f"{p['clips']} clips ({p['female']} female, {p['male']} male readers), "
                  f"{p['seconds'] / 60:.1f} minutes -> {args.out}")
            return 0
        s = build(args.out, store, command)
    except SourceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{s['clips']} clips, {s['speakers']} speakers ({s['female_speakers']} female, {s['male_speakers']} male), "
          f"{s['seconds'] / 60:.1f} minutes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
