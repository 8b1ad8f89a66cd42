"""Word noise for text-head training: unfamiliar words put into paraphrases, never held-out wording."""

from __future__ import annotations

import random
import re

import pytest

from searchengine.corpus.captions import phrasing_pools
from searchengine.model.word_noise import caption_pool_words, unfamiliar_words, with_word_noise

VOCABULARY = ["aback", "Brisk", "slow", "unhurried", "zebra", "##ing", "a1b", "ok", "étude", "quartz", "lantern"]
TEXT = "A deep-voiced man speaks slowly, close to the microphone. His voice is warm and steady."


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]*", text)


def test_substitutes_are_whole_words_no_phrasing_pool_uses():
    known = caption_pool_words()
    for pool in phrasing_pools().values():  # every pool's words, held-out ones included
        for phrases in pool.values():
            for phrase in phrases:
                assert {w.lower() for w in re.findall(r"[A-Za-z]+", phrase)} <= known
    assert {"unhurried", "brisk", "slow", "bassy"} <= known
    assert unfamiliar_words(VOCABULARY) == ["aback", "lantern", "quartz", "zebra"]  # sorted, stable
    # A corpus's captions write words outside the pools' phrase lists (frames, accent names): never substitutes.
    assert unfamiliar_words(VOCABULARY, ["The Zebra-accented speaker.", "Quartz"]) == ["aback", "lantern"]


def test_noise_replaces_about_its_share_of_words_and_keeps_the_rest():
    substitutes = ["zebra", "lantern"]
    original = words(TEXT)
    changed = []
    for seed in range(200):
        noised = with_word_noise(TEXT, 0.25, substitutes, random.Random(seed))
        new = words(noised)
        assert len(new) == len(original)
        assert re.sub(r"[A-Za-z][A-Za-z'-]*", "w", noised) == re.sub(r"[A-Za-z][A-Za-z'-]*", "w", TEXT)  # punctuation kept
        diff = [(a, b) for a, b in zip(original, new, strict=True) if a != b]
        assert diff and all(b.lower() in substitutes and (b[0].isupper() == a[0].isupper()) for a, b in diff)
        changed.append(len(diff) / len(original))
    assert 0.2 < sum(changed) / len(changed) < 0.32
    assert with_word_noise(TEXT, 0.25, substitutes, random.Random(3)) == with_word_noise(TEXT, 0.25, substitutes, random.Random(3))
    assert with_word_noise(TEXT, 0.0, [], random.Random(0)) == TEXT
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        with_word_noise(TEXT, 1.5, substitutes, random.Random(0))
    with pytest.raises(ValueError, match="at least one substitute"):
        with_word_noise(TEXT, 0.2, [], random.Random(0))
