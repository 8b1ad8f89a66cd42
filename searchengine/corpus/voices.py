"""The voices the corpus can speak with, discovered from the synthesizers installed here.

A voice is a synthesizer setting whose speaker facts (gender, accent, age, timbre) are known from how
the synthesizer was built, not guessed from its sound. Only engines that are actually installed are
offered: each one is probed once per process and the answer cached, so that a missing synthesizer
shows up as fewer voices (or a clear error when one is asked for by name), never as a crash mid-run.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Voice:
    """One speaker identity: the unit a voice-wise train/test split is made of."""

    id: str
    engine: str  # "espeak-ng" | "flite" | "festival"
    gender: str | None  # "male" | "female"
    accent: str
    age: str | None = None  # "young" | "adult" | "elderly"
    timbre: tuple[str, ...] = ()
    whisper: bool = False
    #: engine-specific settings: espeak voice spec, flite voice name, festival voice function
    params: dict = field(default_factory=dict, hash=False, compare=False)
    #: whether the engine lets us shape F0 spread (espeak-ng SSML prosody range)
    controls_pitch_range: bool = False
    #: relative sampling weight, so that rare but useful kinds (whisper) get enough clips
    weight: float = 1.0


# espeak-ng English accents: voice file -> accent label.
ESPEAK_ACCENTS: dict[str, tuple[str, str]] = {
    "gmw/en-US": ("en-us", "American"),
    "gmw/en": ("en-gb", "British"),
    "gmw/en-GB-x-rp": ("en-gb-x-rp", "Received Pronunciation"),
    "gmw/en-GB-scotland": ("en-gb-scotland", "Scottish"),
    "gmw/en-GB-x-gbclan": ("en-gb-x-gbclan", "Lancastrian"),
    "gmw/en-GB-x-gbcwmd": ("en-gb-x-gbcwmd", "West Midlands"),
    "gmw/en-029": ("en-029", "Caribbean"),
    "gmw/en-US-nyc": ("en-us-nyc", "New York"),
}

# espeak-ng variants (`!v` directory) with the facts their parameter files establish: gender, the age
# the variant was designed for, and the voice-quality settings it uses (breath, roughness, flutter,
# Klatt synthesis) translated into timbre tags.
# name: (gender, age, timbre, whisper)
ESPEAK_VARIANTS: dict[str, tuple[str, str | None, tuple[str, ...], bool]] = {
    "m1": ("male", "adult", ("rough",), False),
    "m2": ("male", "adult", ("warm",), False),
    "m3": ("male", "adult", (), False),
    "m4": ("male", "adult", ("smooth",), False),
    "m5": ("male", "adult", (), False),
    "m6": ("male", "adult", (), False),
    "m7": ("male", "adult", ("bright",), False),
    "m8": ("male", "adult", ("warm",), False),
    "f1": ("female", "elderly", ("rough",), False),
    "f2": ("female", "adult", ("breathy",), False),
    "f3": ("female", "adult", ("breathy",), False),
    "f4": ("female", "adult", ("smooth",), False),
    "f5": ("female", "young", ("breathy", "bright"), False),
    "aunty": ("female", "adult", (), False),
    "croak": ("male", "elderly", ("creaky", "hoarse"), False),
    "grandpa": ("male", "elderly", ("creaky",), False),
    "grandma": ("female", "elderly", ("creaky",), False),
    "Storm": ("male", "adult", ("smooth", "warm"), False),
    "klatt": ("male", "adult", ("robotic",), False),
    "klatt4": ("male", "adult", ("robotic", "thin"), False),
    "whisper": ("male", "adult", ("breathy",), True),
    "whisperf": ("female", "adult", ("breathy",), True),
}
# Variants with strong F0 flutter (jitter by design): their F0 spread is the voice's, not ours to set.
JITTERY_VARIANTS = frozenset({"croak", "grandpa", "grandma", "aunty"})
WHISPER_WEIGHT = 2.0  # whisper variants are 2 of 23; this makes roughly one espeak clip in ten a whisper

# espeak-ng languages with Latin-script spelling rules, reading English text: a foreign accent.
# Languages with other scripts are left out, because espeak-ng switches them to its English rules.
FOREIGN_ACCENTS: dict[str, str] = {
    "de": "German",
    "fr-fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pl": "Polish",
    "pt-br": "Brazilian Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "tr": "Turkish",
    "fi": "Finnish",
    "hu": "Hungarian",
    "ro": "Romanian",
    "cs": "Czech",
    "id": "Indonesian",
}
FOREIGN_VARIANTS = ("m3", "m7", "f2", "f4")

# flite's built-in voices: name -> (gender, accent). `kal` (8 kHz) is left out: it would sound like a
# telephone channel while being labelled studio.
FLITE_VOICES: dict[str, tuple[str, str]] = {
    "kal16": ("male", "American"),
    "awb": ("male", "Scottish"),
    "rms": ("male", "American"),
    "slt": ("female", "American"),
}

# festival voices from Debian's festvox packages: directory name -> (gender, accent, timbre).
FESTIVAL_VOICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "kal_diphone": ("male", "American", ("robotic",)),
    "ked_diphone": ("male", "American", ("robotic",)),
    "cmu_us_slt_arctic_hts": ("female", "American", ("smooth",)),
    "rab_diphone": ("male", "British", ("robotic",)),
    "don_diphone": ("male", "British", ("robotic",)),
}
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)

ENGINE_BINARIES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
# Share of clips per engine family; festival is slow to start (~0.5 s a clip), so it gets a small share.
FAMILY_SHARE = {"espeak-en": 0.66, "espeak-foreign": 0.16, "flite": 0.12, "festival": 0.06}


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def installed_engines() -> frozenset[str]:
    """Engines whose binary is on PATH."""
    return frozenset(name for name, binary in ENGINE_BINARIES.items() if shutil.which(binary))


@functools.lru_cache(maxsize=1)
def _espeak_voice_files() -> dict[str, str]:
    """Voice files espeak-ng lists (e.g. `gmw/en-US`, `roa/fr`), mbrola voices excluded, each under its
    own name and its language code: {name or code: file}.

    Voices are always spoken by file name. A language code does not always name a voice file
    (`fr-fr` is the file `roa/fr`), and then espeak-ng drops a `+variant` suffix without a word:
    `fr-fr+f4` speaks with the default male voice.
    """
    files: dict[str, str] = {}
    for line in _run(["espeak-ng", "--voices"]).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not parts[4].startswith("mb/"):
            files[parts[4]] = parts[4]
            files.setdefault(parts[1], parts[4])
    return files


@functools.lru_cache(maxsize=1)
def _espeak_variants() -> frozenset[str]:
    names = set()
    for line in _run(["espeak-ng", "--voices=variant"]).splitlines()[1:]:
        parts = line.split()
        if parts and parts[-1].startswith("!v/"):
            names.add(parts[-1][3:])
    return frozenset(names)


def _espeak_voices() -> list[Voice]:
    files, variants = _espeak_voice_files(), _espeak_variants()
    voices: list[Voice] = []
    english = [(f, code, accent) for f, (code, accent) in ESPEAK_ACCENTS.items() if f in files]
    for voice_file, code, accent in english:
        for variant, (gender, age, timbre, whisper) in ESPEAK_VARIANTS.items():
            if variant not in variants:
                continue
            voices.append(
                Voice(
                    id=f"espeak-ng:{code}+{variant}",
                    engine="espeak-ng",
                    gender=gender,
                    accent=accent,
                    age=age,
                    timbre=timbre,
                    whisper=whisper,
                    params={"voice": f"{voice_file}+{variant}", "family": "espeak-en"},
                    controls_pitch_range=variant not in JITTERY_VARIANTS,
                    weight=WHISPER_WEIGHT if whisper else 1.0,
                )
            )
    for code, accent in FOREIGN_ACCENTS.items():
        if code not in files:
            continue
        for variant in FOREIGN_VARIANTS:
            if variant not in variants:
                continue
            gender, age, timbre, _ = ESPEAK_VARIANTS[variant]
            voices.append(
                Voice(
                    id=f"espeak-ng:{code}+{variant}",
                    engine="espeak-ng",
                    gender=gender,
                    accent=accent,
                    age=age,
                    timbre=timbre,
                    params={"voice": f"{files[code]}+{variant}", "family": "espeak-foreign"},
                    controls_pitch_range=True,
                )
            )
    return voices


def _flite_voices() -> list[Voice]:
    out = _run(["flite", "-lv"])
    names = set(out.split(":", 1)[-1].split()) if "Voices available" in out else set()
    return [
        Voice(
            id=f"flite:{name}",
            engine="flite",
            gender=gender,
            accent=accent,
            params={"voice": name, "family": "flite"},
        )
        for name, (gender, accent) in FLITE_VOICES.items()
        if name in names
    ]


def _festival_voices() -> list[Voice]:
    present = {p.name for d in FESTIVAL_VOICE_DIRS if d.is_dir() for p in d.glob("*/*") if p.is_dir()}
    return [
        Voice(
            id=f"festival:{name}",
            engine="festival",
            gender=gender,
            accent=accent,
            timbre=timbre,
            params={"voice": f"voice_{name}", "family": "festival"},
        )
        for name, (gender, accent, timbre) in FESTIVAL_VOICES.items()
        if name in present
    ]


@functools.lru_cache(maxsize=1)
def available_voices() -> tuple[Voice, ...]:
    """Every voice whose synthesizer is installed, in a fixed order (the order seeds depend on).

    Sampling weights are set so that each engine family gets its share of clips, whatever the number
    of voices in it.
    """
    engines = installed_engines()
    voices: list[Voice] = []
    if "espeak-ng" in engines:
        voices += _espeak_voices()
    if "flite" in engines:
        voices += _flite_voices()
    if "festival" in engines:
        voices += _festival_voices()
    totals: dict[str, float] = {}
    for v in voices:
        totals[v.params["family"]] = totals.get(v.params["family"], 0.0) + v.weight
    present_share = sum(FAMILY_SHARE[f] for f in totals)
    weighted = []
    for v in voices:
        family = v.params["family"]
        share = FAMILY_SHARE[family] / present_share
        weighted.append(_with_weight(v, share * v.weight / totals[family]))
    return tuple(weighted)


def _with_weight(voice: Voice, weight: float) -> Voice:
    from dataclasses import replace

    return replace(voice, weight=weight)


class VoiceSelectionError(ValueError):
    """A requested voice, accent or engine is not available on this machine."""


def select_voices(patterns: list[str] | None = None) -> tuple[Voice, ...]:
    """Voices matching any of `patterns` (an exact id, an engine name, or an id prefix such as
    `espeak-ng:en-gb`); all voices when no pattern is given.

    Raises VoiceSelectionError naming the first pattern that matches nothing, so that a typo or a
    missing synthesizer fails before any audio is made.
    """
    voices = available_voices()
    if not voices:
        raise VoiceSelectionError(
            "no speech synthesizer found: install espeak-ng, flite or festival (see the Makefile)"
        )
    if not patterns:
        return voices
    chosen: dict[str, Voice] = {}
    for pattern in patterns:
        pattern = pattern.strip()
        hits = [v for v in voices if v.id == pattern or v.engine == pattern or v.id.startswith(pattern)]
        if not hits:
            engine = pattern.split(":", 1)[0]
            if engine in ENGINE_BINARIES and engine not in installed_engines():
                raise VoiceSelectionError(f"synthesizer '{engine}' is not installed (needed for '{pattern}')")
            raise VoiceSelectionError(
                f"unknown voice '{pattern}': use an id such as '{voices[0].id}' or an engine name "
                f"({', '.join(sorted(installed_engines()))})"
            )
        for v in hits:
            chosen[v.id] = v
    return tuple(v for v in voices if v.id in chosen)
