"""Captions: within bounds, consistent with the facts, silent on unknowns, varied, with disjoint
training and held-out phrasings."""

import functools
import random
import re
from collections import Counter

import pytest

from searchengine.corpus import captions as cap

ACCENTS = ["American", "British", "Received Pronunciation", "Scottish", "Lancastrian", "West Midlands",
           "Caribbean", "New York", "German", "French", "Spanish", "Italian", "Polish", "Hindi", "Russian"]


def random_facts(rng: random.Random, p_known: float = 0.8) -> dict:
    facts: dict = {}
    for key, values in cap.FACTOR_VALUES.items():
        roll = rng.random()
        if roll < p_known:
            facts[key] = rng.choice(values)
        elif roll < p_known + (1 - p_known) / 2:
            facts[key] = None  # explicitly unknown; otherwise the key is missing
    if rng.random() < p_known:
        facts["timbre"] = rng.sample(cap.TIMBRE_TAGS, rng.randint(0, 3))
    if rng.random() < p_known:
        facts["accent"] = rng.choice(ACCENTS)
    return facts


@functools.cache
def _pattern(phrases: frozenset) -> re.Pattern:
    alternatives = sorted((re.escape(p.lower()) for p in phrases), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


def mentions(text: str, phrases) -> bool:
    return bool(phrases) and _pattern(frozenset(phrases)).search(text.lower()) is not None


def fact_sets(n: int, seed: int, p_known: float = 0.8) -> list[dict]:
    rng = random.Random(seed)
    return [random_facts(rng, p_known) for _ in range(n)]


def all_captions(facts: dict, seed: int, heldout: bool, pool: str | None = None) -> list[str]:
    rng = random.Random(seed)
    return [cap.global_caption(facts, rng, heldout, pool=pool)] + cap.fine_captions(facts, rng, 4, heldout, pool=pool)


#: (heldout, pool) for the three phrasing pools: training, wide (paraphrases) and held-out.
POOLS = [(False, None), (False, "wide"), (True, None)]
POOL_IDS = ["train", "wide", "heldout"]


@pytest.mark.parametrize(("heldout", "pool"), POOLS, ids=POOL_IDS)
def test_fine_caption_word_counts_and_distinctness(heldout, pool):
    for i, facts in enumerate(fact_sets(800, seed=1 + heldout, p_known=0.85)):
        texts = cap.fine_captions(facts, random.Random(i), n=4, heldout=heldout, pool=pool)
        assert len(texts) == 4 and len(set(texts)) == 4
        for text in texts:
            assert cap.MIN_FINE_WORDS <= len(text.split()) <= cap.MAX_FINE_WORDS, (facts, text)


def test_fine_captions_with_all_facts_and_with_none():
    full = {"gender": "male", "age": "elderly", "accent": "Received Pronunciation",
            "timbre": ["creaky", "hoarse", "breathy"], "pitch_level": "very low", "pitch_variation": "expressive",
            "speaking_rate": "very fast", "loudness": "quiet", "whisper": False, "noise": "very noisy",
            "noise_color": "brown", "reverb": "very distant", "channel": "telephone"}
    for facts in (full, {}, {"gender": "female"}):
        for heldout in (False, True):
            for seed in range(30):
                texts = cap.fine_captions(facts, random.Random(seed), n=6, heldout=heldout)
                assert len(set(texts)) == 6
                assert all(cap.MIN_FINE_WORDS <= len(t.split()) <= cap.MAX_FINE_WORDS for t in texts)


def test_global_caption_is_one_short_sentence():
    for i, facts in enumerate(fact_sets(800, seed=3)):
        for heldout in (False, True):
            text = cap.global_caption(facts, random.Random(i), heldout)
            assert text[0].isupper() and text.endswith(".")
            assert text.count(".") == 1, text
            assert 3 <= len(text.split()) <= 40, text


def test_captions_are_consistent_with_facts():
    for i, facts in enumerate(fact_sets(600, seed=4)):
        for heldout in (False, True):
            for text in all_captions(facts, i, heldout):
                for factor, opposite in cap.OPPOSITES.items():
                    value = facts.get(factor)
                    if value is None:
                        continue
                    for other in opposite[value]:
                        assert not mentions(text, cap.LEXICON[factor][other]), (factor, value, other, text)


def test_fine_captions_name_every_known_fact():
    for i, facts in enumerate(fact_sets(500, seed=5)):
        for heldout in (False, True):
            for text in cap.fine_captions(facts, random.Random(i), 4, heldout):
                for factor in ("gender", "age", "pitch_level", "pitch_variation", "speaking_rate", "loudness",
                               "channel", "reverb", "noise"):
                    value = facts.get(factor)
                    if value is not None:
                        assert mentions(text, cap.LEXICON[factor][value]), (factor, value, text)
                if facts.get("whisper"):
                    assert mentions(text, cap.LEXICON["whisper"][True]), text
                if facts.get("noise") not in (None, "clean") and facts.get("noise_color"):
                    assert mentions(text, cap.LEXICON["noise_color"][facts["noise_color"]]), text
                for tag in facts.get("timbre") or []:
                    assert mentions(text, cap.LEXICON["timbre"][tag]), (tag, text)
                if facts.get("accent"):
                    assert facts["accent"] in text


def test_global_caption_names_gender_pitch_rate_and_whisper():
    for i, facts in enumerate(fact_sets(800, seed=6)):
        for heldout in (False, True):
            text = cap.global_caption(facts, random.Random(i), heldout)
            for factor in ("gender", "pitch_level", "speaking_rate"):
                if facts.get(factor) is not None:
                    assert mentions(text, cap.LEXICON[factor][facts[factor]]), (factor, text)
            if facts.get("whisper"):
                assert mentions(text, cap.LEXICON["whisper"][True]), text


def test_global_caption_prefers_marked_factors():
    facts = {"gender": "female", "pitch_level": "high", "speaking_rate": "slow", "channel": "telephone",
             "noise": "clean", "reverb": "close", "loudness": "normal", "pitch_variation": "moderate"}
    for seed in range(50):
        text = cap.global_caption(facts, random.Random(seed))
        assert mentions(text, cap.LEXICON["channel"]["telephone"]), text


def test_slow_clip_is_described_as_slow():
    facts = {"gender": "male", "speaking_rate": "very slow", "pitch_level": "high"}
    for seed in range(300):
        heldout, pool = POOLS[seed % 3]
        for text in all_captions(facts, seed, heldout, pool):
            assert mentions(text, cap.LEXICON["speaking_rate"]["very slow"])
            assert not mentions(text, cap.LEXICON["speaking_rate"]["fast"])
            assert not mentions(text, cap.LEXICON["pitch_level"]["low"])


def test_unknown_facts_are_never_mentioned():
    for i, facts in enumerate(fact_sets(600, seed=7, p_known=0.5)):
        for heldout, pool in POOLS:
            for text in all_captions(facts, i, heldout, pool):
                for factor, values in cap.LEXICON.items():
                    if facts.get(factor) is None:
                        phrases = set().union(*values.values())
                        assert not mentions(text, phrases), (factor, text)
                if facts.get("accent") is None:
                    assert "accent" not in text.lower(), text


def test_deterministic_for_an_rng_state():
    facts = fact_sets(1, seed=8)[0]
    assert all_captions(facts, 3, False) == all_captions(facts, 3, False)
    assert all_captions(facts, 3, True) == all_captions(facts, 3, True)
    assert all_captions(facts, 3, False) != all_captions(facts, 4, False)


def test_phrasing_pools_are_disjoint_and_complete():
    pools = cap.phrasing_pools()
    held = pools["heldout"]
    for name in ("train", "wide"):
        pool = pools[name]
        assert pool.keys() == held.keys()
        for slot in pool:
            assert pool[slot] and held[slot], slot
            assert not pool[slot] & held[slot], (name, slot, pool[slot] & held[slot])
        assert not set().union(*pool.values()) & set().union(*held.values())
    for slot, phrases in pools["train"].items():  # the wide pool only adds to the training pool
        assert phrases < pools["wide"][slot], slot


def test_wide_pool_words_each_value_several_ways():
    """A head trained on two words per value learns those words, not the concept: the wide pool offers
    at least three per value for the factors people search by most, and more frames than the others."""
    wide = cap._POOLS["wide"]
    for slot in ("pitch_adj", "rate_adj", "loud_adj", "var_adj", "age", "noun"):
        for value, words in wide[slot].items():
            assert len(set(words)) >= 3, (slot, value, words)
    for slot in ("rate_noun", "hedge_adv", "intens", "rel_pitch", "noise_tail", "clean_tail"):
        assert len(set(wide[slot])) >= 3, slot
    for value, tails in wide["reverb_tail"].items():
        assert len(set(tails)) >= 3, value
    pools = cap.phrasing_pools()
    for frames in ("global_frames", "fine_frames"):
        assert len(pools["wide"][frames]) > len(pools["train"][frames]) >= len(pools["heldout"][frames]), frames
    with pytest.raises(ValueError, match="unknown phrasing pool"):
        cap.global_caption({"gender": "male"}, random.Random(0), pool="casual")


class _Forbidden:
    """Stands in for a pool that must not be read."""

    def __getitem__(self, key):
        raise AssertionError(f"read {key!r} from the wrong pool")


@pytest.mark.parametrize(("heldout", "pool"), POOLS, ids=POOL_IDS)
def test_each_mode_reads_only_its_own_pool(monkeypatch, heldout, pool):
    own = "heldout" if heldout else pool or "train"
    for name in cap._POOLS:
        if name != own:
            monkeypatch.setitem(cap._POOLS, name, _Forbidden())
    for i, facts in enumerate(fact_sets(300, seed=9, p_known=0.9)):
        all_captions(facts, i, heldout, pool)


def test_heldout_captions_use_heldout_only_phrases():
    pools = cap.phrasing_pools()
    train_text = " | ".join(sorted(set().union(*pools["train"].values()))).lower()
    held_only = [p for p in set().union(*pools["heldout"].values())
                 if "{" not in p and p.lower() not in train_text and len(p) > 3]
    train_frames = ["You hear", "Technical description", "Casting note", "Compared with most"]
    held_frames = ["Profile of the talker", "Picture ", "Actor's brief", "Key traits"]
    for i, facts in enumerate(fact_sets(300, seed=10)):
        for text in all_captions(facts, i, heldout=True):
            assert mentions(text, held_only), text
            assert not any(f in text for f in train_frames), text
        for text in all_captions(facts, i, heldout=False):
            assert not any(f in text for f in held_frames), text


def _four_grams(texts):
    grams = set()
    for text in texts:
        words = re.findall(r"[a-z'-]+", text.lower())
        grams.update(zip(words, words[1:], words[2:], words[3:], strict=False))
    return grams


def test_lexical_diversity_and_no_dominant_frame():
    rng = random.Random(11)
    facts = fact_sets(500, seed=11)
    fine = [t for f in facts for t in cap.fine_captions(f, rng, 4)]
    glob = [cap.global_caption(f, rng) for f in facts for _ in range(4)]
    assert len(fine) == 2000
    assert len(_four_grams(fine)) > 12000
    assert len(_four_grams(glob)) > 3000
    assert len(set(glob)) > 1900
    for texts in (fine, glob):
        openings = Counter(" ".join(t.split()[:2]) for t in texts)
        assert openings.most_common(1)[0][1] < 0.3 * len(texts), openings.most_common(3)


ATTRIBUTE_VALUES = {**{f: v for f, v in cap.FACTOR_VALUES.items() if f in cap.ATTRIBUTE_CAPTION_FACTORS},
                    "accent": ("American", "Scottish", "French", "Hindi")}


@pytest.mark.parametrize(("heldout", "pool"), POOLS, ids=POOL_IDS)
def test_attribute_captions_name_their_value_and_nothing_else(heldout, pool):
    for factor, values in ATTRIBUTE_VALUES.items():
        for value in values:
            texts = cap.attribute_captions(factor, value, heldout, pool=pool)
            assert len(texts) >= 2, (factor, value)
            assert texts == cap.attribute_captions(factor, value, heldout, pool=pool)  # deterministic
            for text in texts:
                assert text[0].isupper() and text.endswith(".") and len(text.split()) <= 14, text
                if factor == "accent":
                    assert value in text, text
                elif cap.LEXICON.get(factor, {}).get(value):
                    assert mentions(text, cap.LEXICON[factor][value]), (factor, value, text)
                for other in cap.OPPOSITES.get(factor, {}).get(value, ()):
                    assert not mentions(text, cap.LEXICON[factor][other]), (factor, value, other, text)
                # one fact only: no other factor's words (gender nouns are the subject of age captions)
                for other_factor in ("pitch_level", "speaking_rate", "loudness", "reverb", "channel"):
                    if other_factor != factor:
                        words = {w for ws in cap.LEXICON[other_factor].values() for w in ws}
                        assert not mentions(text, words - {"close", "normal", "average"}), (factor, text)


def test_attribute_captions_keep_the_pools_apart_and_are_not_the_evaluation_prompts():
    from searchengine.model.evaluate import ZERO_SHOT_TASKS

    seen = {t for f, vs in ATTRIBUTE_VALUES.items() for v in vs
            for pool in ("train", "wide") for t in cap.attribute_captions(f, v, pool=pool)}
    held = {t for f, vs in ATTRIBUTE_VALUES.items() for v in vs for t in cap.attribute_captions(f, v, heldout=True)}
    assert seen and held and not seen & held
    prompts = {template.format(word).lower()
               for task in ZERO_SHOT_TASKS for template in task.templates
               for word in (task.classes or {v: () for v in ("male", "female", *ATTRIBUTE_VALUES["accent"])})}
    assert not {t.lower() for t in seen} & prompts  # zero-shot evaluation stays zero-shot
    with pytest.raises(ValueError, match="no attribute captions"):
        cap.attribute_captions("timbre", "warm")
