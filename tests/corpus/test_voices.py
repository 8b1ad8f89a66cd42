"""Voice discovery: enough distinct, installed voices, each with its speaker facts."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.corpus.factors import Factors
from searchengine.corpus.render import synthesize
from searchengine.corpus.voices import VoiceSelectionError, available_voices, select_voices

GENDERS = {"male", "female"}
AGES = {"young", "adult", "elderly", None}
#: Every factor at the voice's own default: what the voice itself sounds like.
NEUTRAL = Factors(0.0, None, 1.0, -25.0, False, None, None, 0.0, False)
TIMBRES = {"creaky", "hoarse", "breathy", "nasal", "robotic", "smooth", "bright", "warm", "thin", "rough"}


def test_at_least_forty_distinct_voices():
    voices = available_voices()
    assert len({v.id for v in voices}) == len(voices) >= 40


def test_every_voice_carries_its_facts():
    for v in available_voices():
        assert v.gender in GENDERS, v
        assert v.age in AGES, v
        assert set(v.timbre) <= TIMBRES, v
        assert v.accent and isinstance(v.accent, str)
        assert v.weight > 0


def test_voices_cover_accents_genders_and_whisper():
    voices = available_voices()
    assert {"American", "British", "Scottish"} <= {v.accent for v in voices}
    assert len({v.accent for v in voices}) >= 10  # English accents plus foreign ones
    assert {v.gender for v in voices} == GENDERS
    assert any(v.whisper for v in voices)


def test_every_listed_voice_speaks():
    """One voice per engine renders a word: discovery offers nothing that cannot synthesize."""
    for engine in sorted({v.engine for v in available_voices()}):
        voice = next(v for v in available_voices() if v.engine == engine)
        x = synthesize("Hello there.", voice, NEUTRAL)
        assert x.dtype == np.float32 and len(x) > 1600 and np.abs(x).max() > 0.01


def test_select_by_id_prefix_and_engine():
    assert [v.id for v in select_voices(["espeak-ng:en-us+f3"])] == ["espeak-ng:en-us+f3"]
    assert all(v.id.startswith("espeak-ng:en-gb") for v in select_voices(["espeak-ng:en-gb"]))
    assert all(v.engine == "espeak-ng" for v in select_voices(["espeak-ng"]))


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(VoiceSelectionError, match="unknown voice 'espeak-ng:klingon'"):
        select_voices(["espeak-ng:klingon"])


def test_every_voice_sounds_like_its_gender():
    """A voice's gender comes from how the synthesizer was built, so check that the build is what is
    heard: every voiced voice, at its default pitch, has a median F0 on its gender's side of 140 Hz
    (men here speak near 100-110 Hz, women above 150). This catches a voice spec the synthesizer
    silently reads as another voice, as espeak-ng does with `fr-fr+f4` (the male default voice)."""
    import parselmouth

    wrong = []
    for voice in available_voices():
        if voice.whisper:
            continue
        x = synthesize("The quick brown fox jumps over the lazy dog near the river bank.", voice, NEUTRAL)
        f0 = parselmouth.Sound(x.astype(np.float64), 16000).to_pitch(time_step=0.02).selected_array["frequency"]
        median = float(np.median(f0[f0 > 0]))
        if (median > 140) != (voice.gender == "female"):
            wrong.append(f"{voice.id} ({voice.params['voice']}): {voice.gender}, median F0 {median:.0f} Hz")
    assert not wrong, wrong


def test_foreign_voices_are_spoken_by_voice_file():
    """espeak-ng ignores the variant of a language code that is not a voice file name (`fr-fr+f4`);
    a voice file (`roa/fr+f4`) always takes it."""
    foreign = [v for v in available_voices() if v.params.get("family") == "espeak-foreign"]
    assert foreign
    french = {v.id: v.params["voice"] for v in foreign if v.accent == "French"}
    assert french["espeak-ng:fr-fr+f4"] == "roa/fr+f4"
    for voice in foreign:
        language_file = voice.params["voice"].split("+", 1)[0]
        assert "/" in language_file, voice
