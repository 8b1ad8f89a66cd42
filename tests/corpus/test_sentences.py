"""The spoken content: varied, deterministic, free of style words, countable in syllables."""

import random
import re

from searchengine.corpus import captions, sentences

WORD = re.compile(r"[a-z]+")


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [sentences.make_sentence(rng) for _ in range(n)]


def test_grammar_vocabulary_has_no_style_word():
    vocab = sentences.vocabulary()
    assert len(vocab) > 600
    assert not vocab & sentences.STYLE_WORDS
    assert not vocab & captions.STYLE_ADJECTIVES


def test_generated_sentences_have_no_style_word_and_stay_in_vocabulary():
    vocab = sentences.vocabulary()
    for text in _sentences(5000):
        tokens = set(WORD.findall(text.lower()))
        assert not tokens & sentences.STYLE_WORDS, text
        assert not tokens & captions.STYLE_ADJECTIVES, text
        assert tokens <= vocab, (text, tokens - vocab)


def test_style_words_cover_the_obvious_ones():
    for word in ("loud", "whisper", "fast", "slow", "pitch", "voice", "noisy", "echo", "room", "man",
                 "woman", "accent", "telephone", "say", "speak", "talk", "quiet", "deep"):
        assert word in sentences.STYLE_WORDS


def test_shape_length_and_punctuation():
    texts = _sentences(2000, seed=1)
    for text in texts:
        words = text.split()
        assert 6 <= len(words) <= 20, text
        assert text[0].isupper() and text[-1] in ".?", text
        assert not re.search(r"\d", text), text
        assert 6 <= sentences.count_syllables(text) <= 30, text
    assert any(t.endswith("?") for t in texts)
    assert len(set(texts)) > 1950


def test_vocabulary_is_used_broadly():
    used = set()
    for text in _sentences(3000, seed=2):
        used.update(WORD.findall(text.lower()))
    assert len(used) > 500


def test_deterministic_for_an_rng_state():
    assert _sentences(50, seed=7) == _sentences(50, seed=7)
    assert _sentences(50, seed=7) != _sentences(50, seed=8)


def test_syllable_counter_on_known_words():
    known = {
        "cat": 1, "make": 1, "table": 2, "little": 2, "wanted": 2, "boxes": 2, "baked": 1,
        "apples": 2, "beautiful": 3, "radio": 3, "library": 3, "lemon": 2, "potato": 3,
        "tomatoes": 3, "helicopter": 4, "yesterday": 3, "museum": 3, "quiet": 2, "the": 1,
        "sandwiches": 3, "umbrella": 3, "tuesday": 2, "february": 4, "pharmacy": 3,
    }
    close = sum(abs(sentences.count_syllables(w) - n) <= 1 for w, n in known.items())
    exact = sum(sentences.count_syllables(w) == n for w, n in known.items())
    assert close == len(known)
    assert exact >= 0.8 * len(known)
    total = sum(known.values())
    assert abs(sentences.count_syllables(" ".join(known)) - total) <= 0.1 * total
    assert sentences.count_syllables("Please post the letter on Tuesday.") == 8
