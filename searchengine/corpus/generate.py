"""Generate a style corpus: plan every clip from (seed, index), render the missing ones in parallel,
write the manifest.

Everything about clip i (voice, factors, sentence, captions, split) is a pure function of the seed
and i, so a run is reproducible, clips can be rendered in any order on any number of workers, and an
interrupted run is resumed by rendering only the clips whose audio file is missing: a wav only gets
its final name once it is complete, and the manifest is rewritten whole (temp file + rename) at the
end.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

from searchengine.cores import available_cores
from searchengine.corpus.factors import Factors, facts, sample_factors
from searchengine.corpus.render import SAMPLE_RATE, render
from searchengine.corpus.voices import Voice

SPLITS = ("train", "val", "test")
VOICE_SPLIT_SHARES = {"val": 0.1, "test": 0.1}  # the rest is train
CLIP_SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}
HELDOUT_PHRASING_SHARE = 0.15
N_FINE_CAPTIONS = 4
STATE_FILE = ".corpus.json"
MANIFEST = "manifest.jsonl"
AUDIO_DIR = "audio"


class CorpusError(RuntimeError):
    """The output directory cannot be used for this run (message says why and what to do)."""


@dataclass(frozen=True)
class ClipPlan:
    """Everything about one clip except its audio."""

    index: int
    voice: Voice
    factors: Factors
    text: str
    split: str
    heldout_phrasing: bool
    seed: int

    @property
    def id(self) -> str:
        return f"{self.index:06d}"

    @property
    def path(self) -> str:
        return f"{AUDIO_DIR}/{self.id}.wav"


def assign_voice_splits(voices: Sequence[Voice], seed: int) -> dict[str, str]:
    """Voice id -> split, ~80/10/10 by voice, drawn within each gender so that val and test hold
    both men and women whenever there are at least three voices of a gender.
    """
    rng = random.Random(f"clsp-corpus-splits:{seed}")
    out: dict[str, str] = {}
    for gender in sorted({str(v.gender) for v in voices}):
        group = sorted(v.id for v in voices if str(v.gender) == gender)
        rng.shuffle(group)
        n_test = max(1, round(VOICE_SPLIT_SHARES["test"] * len(group))) if len(group) >= 3 else 0
        n_val = max(1, round(VOICE_SPLIT_SHARES["val"] * len(group))) if len(group) >= 3 else 0
        for i, vid in enumerate(group):
            out[vid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def plan_clip(index: int, seed: int, voices: Sequence[Voice], voice_splits: dict[str, str] | None) -> ClipPlan:
    """The clip at `index`: a pure function of (seed, index, voices)."""
    from searchengine.corpus.sentences import make_sentence

    rng = random.Random(f"clsp-corpus:{seed}:{index}")
    voice = rng.choices(voices, weights=[v.weight for v in voices])[0]
    factors = sample_factors(rng, voice)
    heldout = rng.random() < HELDOUT_PHRASING_SHARE
    if voice_splits is None:
        split = rng.choices(list(CLIP_SPLIT_SHARES), weights=list(CLIP_SPLIT_SHARES.values()))[0]
    else:
        split = voice_splits[voice.id]
    text = make_sentence(random.Random(f"clsp-corpus-text:{seed}:{index}"))
    return ClipPlan(index, voice, factors, text, split, heldout, seed)


def manifest_record(plan: ClipPlan, duration: float) -> dict:
    """One manifest line; captions get their own rng so that caption changes never move the audio."""
    from searchengine.corpus.captions import fine_captions, global_caption

    clip_facts = facts(plan.voice, plan.factors)
    rng = random.Random(f"clsp-corpus-captions:{plan.seed}:{plan.index}")
    attributes = plan.factors.attributes()
    attributes.update(age=plan.voice.age, timbre=list(plan.voice.timbre))
    return {
        "id": plan.id,
        "path": plan.path,
        "duration": round(duration, 4),
        "sample_rate": SAMPLE_RATE,
        "voice": plan.voice.id,
        "engine": plan.voice.engine,
        "gender": plan.voice.gender,
        "accent": plan.voice.accent,
        "attributes": attributes,
        "global_caption": global_caption(clip_facts, rng, heldout=plan.heldout_phrasing),
        "fine_captions": fine_captions(clip_facts, rng, n=N_FINE_CAPTIONS, heldout=plan.heldout_phrasing),
        "split": plan.split,
        "heldout_phrasing": plan.heldout_phrasing,
        "text": plan.text,
    }


def render_clip(plan: ClipPlan, out_dir: Path) -> tuple[int, float]:
    """Render one clip to its final path (via a temp name); returns (index, duration in seconds)."""
    audio = render(plan.text, plan.voice, plan.factors, np.random.default_rng([plan.seed, plan.index]))
    final = out_dir / plan.path
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp.wav")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, final)
    return plan.index, len(audio) / SAMPLE_RATE


def _render_star(args: tuple[ClipPlan, Path]) -> tuple[int, float]:
    return render_clip(*args)


def _corpus_state(seed: int, split_by_voice: bool, voices: Sequence[Voice]) -> dict:
    """What a corpus directory records about how its clips were made: the seed, the split, the voice
    ids (which fix every plan) and each voice's synthesizer setting (which fixes how it sounds).

    "voices" repeats the keys of "voice_specs" because state files written before the settings were
    recorded have only "voices", and the seed/split/voices comparison must read both kinds."""
    specs = {v.id: v.params.get("voice") for v in sorted(voices, key=lambda v: v.id)}
    return {"seed": seed, "split_by_voice": split_by_voice, "voices": list(specs), "voice_specs": specs}


def _stale_voices(out_dir: Path, state: dict) -> set[str]:
    """Voices whose clips in `out_dir` were spoken with another synthesizer setting than now.

    Refuses a directory made with another seed, split or voice set (its clips would mix). A directory
    whose state predates the recorded settings has all its voices stale: its clips are rendered anew.
    """
    path = out_dir / STATE_FILE
    if not path.exists():
        return set()
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return set()
    if not isinstance(old, dict):
        return set()
    if any(old.get(key) != state[key] for key in ("seed", "split_by_voice", "voices")):
        raise CorpusError(
            f"{out_dir} holds a corpus made with other settings (seed, voices or split); "
            "choose an empty directory"
        )
    old_specs = old.get("voice_specs")
    if not isinstance(old_specs, dict):
        return set(state["voices"])
    return {vid for vid, spec in state["voice_specs"].items() if old_specs.get(vid) != spec}


def prepare_out_dir(out_dir: Path) -> None:
    """Create OUT_DIR/audio and prove it is writable, so a bad path fails before any rendering."""
    try:
        (out_dir / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CorpusError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc


def generate(
    out_dir: Path,
    n: int,
    seed: int,
    voices: Sequence[Voice],
    workers: int | None = None,
    split_by_voice: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Make (or complete) the corpus in `out_dir`; returns a summary with counts and timings.

    `progress(done, total)` is called as clips finish, from the parent process.
    """
    import time

    if n < 1:
        raise CorpusError("--n must be at least 1")
    if not voices:
        raise CorpusError("no voices to speak with")
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir)
    voices = list(voices)
    state = _corpus_state(seed, split_by_voice, voices)
    stale_voices = _stale_voices(out_dir, state)
    for stale in (out_dir / AUDIO_DIR).glob(".*.tmp.wav"):
        stale.unlink(missing_ok=True)

    voice_splits = assign_voice_splits(voices, seed) if split_by_voice else None
    plans = [plan_clip(i, seed, voices, voice_splits) for i in range(n)]
    # Clips spoken with an outdated setting go before the new state is written, so that a run killed
    # in between still finds them stale next time.
    if stale_voices:  # clips past --n too: a later, larger run would reuse them
        indices = [int(f.stem) for f in (out_dir / AUDIO_DIR).glob("[0-9]*.wav") if f.stem.isdigit()]
        for i in range(max(indices, default=-1) + 1):
            plan = plans[i] if i < n else plan_clip(i, seed, voices, voice_splits)
            if plan.voice.id in stale_voices:
                (out_dir / plan.path).unlink(missing_ok=True)
    (out_dir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")
    durations: dict[int, float] = {}
    todo: list[ClipPlan] = []
    for plan in plans:
        path = out_dir / plan.path
        if path.exists():
            try:
                info = sf.info(str(path))
                durations[plan.index] = info.frames / info.samplerate
                continue
            except RuntimeError:
                path.unlink()  # unreadable: render again
        todo.append(plan)

    started = time.perf_counter()
    workers = max(1, workers or available_cores())
    done = len(durations)
    if progress:
        progress(done, n)
    if todo:
        jobs = [(p, out_dir) for p in todo]
        if workers == 1 or len(todo) == 1:
            results = map(_render_star, jobs)
            pool = None
        else:
            pool = get_context("fork").Pool(workers)
            results = pool.imap_unordered(_render_star, jobs, chunksize=4)
        try:
            for index, duration in results:
                durations[index] = duration
                done += 1
                if progress:
                    progress(done, n)
        except BaseException:
            if pool is not None:
                pool.terminate()  # finished clips keep their files; the next run resumes from them
            raise
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    elapsed = time.perf_counter() - started

    tmp = out_dir / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        for plan in plans:
            fh.write(json.dumps(manifest_record(plan, durations[plan.index]), ensure_ascii=False) + "\n")
    os.replace(tmp, out_dir / MANIFEST)
    rendered_seconds = sum(durations[p.index] for p in todo)
    return {
        "clips": n,
        "rendered": len(todo),
        "reused": n - len(todo),
        "voices": len({p.voice.id for p in plans}),
        "workers": workers,
        "audio_seconds": sum(durations.values()),
        "rendered_audio_seconds": rendered_seconds,
        "render_wall_seconds": elapsed,
        "manifest": str(out_dir / MANIFEST),
    }
