"""Unfamiliar words put into training captions, so a text head learns that words it never saw carry no fact.

A text head over a frozen tower learns the contextual token states its training captions produce. A
search box brings other words: a synonym the head never met, a verb or a frame of another writer. Such
a word gets a mapping no training ever constrained, and it also changes the context every other word is
read in, so the whole caption's embedding moves. Replacing a share of a caption's words with words that
no caption pool uses (MiniLM vocabulary entries outside every phrasing pool), while the caption keeps
its clip as the target, trains the head to map unfamiliar words to little and to read the known words
through a perturbed context. Held-out phrasings are never a source: the substitutes exclude the held-out
pool's words and every word of the corpus's own captions (all splits, both phrasings), so no substitute
is a word a caption uses with a meaning, and the held-out evaluation still measures unseen wording.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from searchengine.corpus.captions import phrasing_pools

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def words_of(texts: Iterable[str]) -> set[str]:
    """The lower-cased words of some texts."""
    return {word.lower() for text in texts for word in re.findall(r"[A-Za-z]+", text)}


def caption_pool_words() -> frozenset[str]:
    """Every lower-cased word any phrasing pool (training, wide, held-out) can write, frames included."""
    return frozenset(words_of(phrase for slots in phrasing_pools().values() for phrases in slots.values()
                              for phrase in phrases))


def unfamiliar_words(vocabulary: Iterable[str], captions: Iterable[str] = (), min_length: int = 3) -> list[str]:
    """Whole-word, alphabetic entries of a tokenizer vocabulary that no phrasing pool uses and none of
    `captions` contains, sorted (so a seed picks the same words on every machine). Pass every caption of
    the corpus: sentence frames and accent names are written outside the pools' phrase lists."""
    known = caption_pool_words() | words_of(captions)
    return sorted({word for word in vocabulary
                   if len(word) >= min_length and word.isascii() and word.isalpha() and word.lower() not in known})


def with_word_noise(text: str, share: float, substitutes: list[str], rng: random.Random) -> str:
    """`text` with each word replaced, with probability `share`, by a random substitute (capitalised where
    the word was); punctuation and spacing stay. At least one word is always replaced when share > 0."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"word noise share must be in [0, 1], got {share}")
    if not share:
        return text
    if not substitutes:
        raise ValueError("word noise needs at least one substitute word")
    spans = [match.span() for match in _WORD.finditer(text)]
    if not spans:
        return text
    chosen = [i for i in range(len(spans)) if rng.random() < share] or [rng.randrange(len(spans))]
    pieces, last = [], 0
    for i in chosen:
        start, end = spans[i]
        word = substitutes[rng.randrange(len(substitutes))]
        pieces += [text[last:start], word.capitalize() if text[start].isupper() else word]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
