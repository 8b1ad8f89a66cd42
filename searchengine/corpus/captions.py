"""Captions for generated clips, at CLSP's two granularities: one global sentence and several fine ones.

A caption model trained on templated text learns the templates, not the words. So captions here are
assembled from a phrase grammar with synonyms, hedges, relative terms, and several sentence frames
and clause orders. Corpus captions draw from one of two disjoint pools: `heldout=False` only from
the training pool and `heldout=True` only from the held-out pool, so evaluation can ask whether a
model understands descriptions worded in ways it never saw. A third pool, `pool="wide"`, is the
training pool with more synonyms and frames; it writes paraphrases for training a text head on wider
wording (`clsp-search tune-text`) and, like the training pool, shares nothing with the held-out pool.

Captions only state what the facts say. An unknown fact (missing or None) is never mentioned, and
`LEXICON` lists, for every binned value, the phrases that signal it, so tests can check that a
caption for a slow clip says something slow and nothing fast.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "FACTOR_VALUES",
    "LEXICON",
    "MAX_FINE_WORDS",
    "MIN_FINE_WORDS",
    "OPPOSITES",
    "STYLE_ADJECTIVES",
    "attribute_captions",
    "fine_captions",
    "global_caption",
    "phrasing_pools",
]

MIN_FINE_WORDS, MAX_FINE_WORDS = 25, 60

FACTOR_VALUES: dict[str, tuple[Any, ...]] = {
    "gender": ("male", "female"),
    "age": ("young", "adult", "elderly"),
    "pitch_level": ("very low", "low", "medium", "high", "very high"),
    "pitch_variation": ("monotone", "moderate", "expressive"),
    "speaking_rate": ("very slow", "slow", "medium", "fast", "very fast"),
    "loudness": ("quiet", "normal", "loud"),
    "whisper": (True, False),
    "noise": ("clean", "slightly noisy", "noisy", "very noisy"),
    "noise_color": ("white", "pink", "brown"),
    "reverb": ("close", "slightly distant", "distant", "very distant"),
    "channel": ("studio", "telephone"),
}
TIMBRE_TAGS = ("creaky", "hoarse", "breathy", "nasal", "robotic", "smooth", "bright", "warm", "thin", "rough")

# Accent labels that name a first language rather than a variety of English.
FOREIGN_ACCENTS = frozenset(
    "German French Spanish Italian Polish Hindi Russian Portuguese Dutch Chinese Mandarin Cantonese "
    "Japanese Korean Arabic Turkish Greek Swedish Norwegian Danish Finnish Czech Hungarian Romanian "
    "Vietnamese Indonesian Persian Farsi Swahili Yoruba Bengali Tamil Urdu Punjabi Ukrainian Hebrew "
    "Thai Tagalog Catalan Serbian Croatian Bulgarian".split()
)

# ---------------------------------------------------------------------------------------------------
# The phrase inventory. Every choice a caption makes is drawn from exactly one pool: training, wide
# (below: training plus more synonyms) or held-out. Keys are the same in all; no phrase of the
# held-out pool appears in another (tests check it).
# ---------------------------------------------------------------------------------------------------
_TRAIN: dict[str, Any] = {
    "noun": {"male": ("man", "male speaker"), "female": ("woman", "female speaker"), None: ("speaker", "person")},
    "rel_noun": {"male": ("man", "male speaker"), "female": ("woman", "female speaker")},
    "unknown_pronoun": ("the speaker",),
    "age": {"young": ("young", "younger"), "adult": ("adult",), "elderly": ("elderly", "older")},
    "hedge_adv": ("somewhat", "rather", "fairly"),
    "hedge_pred": ("somewhat", "rather", "fairly", "a touch"),
    "intens": ("very", "extremely"),
    "pitch_adj": {
        "low": ("low-pitched", "deep", "low"),
        "medium": ("mid-pitched", "medium-pitched", "moderately pitched"),
        "high": ("high-pitched", "high"),
    },
    "rel_pitch": (
        "{cmp} than average for a {g}",
        "{cmp} than is typical for a {g}",
    ),
    "rel_cmp": {"low": ("lower",), "high": ("higher",), "very low": ("much lower",), "very high": ("much higher",)},
    "var_adj": {
        "monotone": ("flat", "monotone", "unvarying"),
        "moderate": ("moderately varied", "naturally varied"),
        "expressive": ("expressive", "animated", "lively"),
    },
    "rate_adj": {"slow": ("slow", "leisurely"), "medium": ("normal", "average", "steady"), "fast": ("quick", "fast", "rapid")},
    "rate_adv": {"slow": ("slowly",), "fast": ("quickly", "rapidly")},
    "rate_noun": ("pace", "speed"),
    "rate_medium_adj": ("moderately paced", "evenly paced"),
    "loud_adj": {
        "quiet": ("quiet", "soft"),
        "normal": ("moderate in volume", "of normal loudness"),
        "loud": ("loud", "forceful"),
    },
    "loud_adv": {
        "quiet": ("quietly", "softly"),
        "normal": ("at a normal volume", "at a moderate level"),
        "loud": ("loudly", "forcefully"),
    },
    "verb": {True: ("whispers",), False: ("speaks", "talks")},
    "verb_ing": {True: ("whispering",), False: ("speaking", "talking")},
    "voiced": ("The speech is fully voiced.", "It is an ordinary voiced delivery."),
    "accent": (" with {a} {L} accent", " with {a} {L} accent"),
    "accent_foreign": (" speaking English with a {s} {L} accent", " with a {s} {L} accent"),
    "accent_strength": ("strong", "noticeable", "slight"),
    "timbre": {
        "creaky": ("creaky", "gravelly"),
        "hoarse": ("hoarse", "husky"),
        "breathy": ("breathy", "airy"),
        "nasal": ("nasal",),
        "robotic": ("robotic", "synthetic"),
        "smooth": ("smooth", "polished"),
        "bright": ("bright", "brilliant"),
        "warm": ("warm", "mellow"),
        "thin": ("thin", "reedy"),
        "rough": ("rough", "coarse"),
    },
    "timbre_plain": ("unremarkable", "neutral"),
    "noise_level": {"slightly noisy": ("light", "slight"), "noisy": ("noticeable", "steady"), "very noisy": ("heavy", "strong")},
    "noise_color": {
        "white": ("hiss", "white noise"),
        "pink": ("rushing noise", "pink noise"),
        "brown": ("rumble", "brown noise"),
        None: ("background noise", "noise"),
    },
    "clean_np": ("a clean background", "a silent background"),
    "noise_tail": ("over {np}", "with {np} behind the voice"),
    "clean_tail": ("in a clean recording", "against a silent background"),
    "reverb_tail": {
        "close": ("close to the microphone", "close-miked and dry"),
        "slightly distant": ("slightly distant, with a little room reverb", "a little way from the microphone, with light reverb"),
        "distant": ("at a distance in a reverberant room", "with noticeable echo, away from the microphone"),
        "very distant": ("far from the microphone in a large echoey hall", "very distant, with heavy echo"),
    },
    "channel_tail": {
        "telephone": ("over a telephone line", "through a telephone"),
        "studio": ("in a studio", "with full studio bandwidth"),
    },
    "filler": (
        "Nothing else about the clip stands out.",
        "That sums up both the voice and the recording.",
        "These are the features a listener notices first.",
        "The description covers only what can be heard.",
    ),
}

_HELDOUT: dict[str, Any] = {
    "noun": {"male": ("gentleman", "male talker", "guy"), "female": ("lady", "female talker"), None: ("talker", "individual")},
    "rel_noun": {"male": ("gentleman", "male talker"), "female": ("lady", "female talker")},
    "unknown_pronoun": ("this talker",),
    "age": {"young": ("youthful",), "adult": ("mature",), "elderly": ("senior", "aged")},
    "hedge_adv": ("mildly", "slightly"),
    "hedge_pred": ("mildly", "slightly", "a little", "a bit"),
    "intens": ("exceptionally", "strikingly", "unusually"),
    "pitch_adj": {
        "low": ("low-register", "bassy", "grave"),
        "medium": ("mid-register", "middle-register"),
        "high": ("high-register", "piping", "lofty"),
    },
    "rel_pitch": (
        "{cmp} the usual range for a {g}",
        "{cmp} what one expects of a {g}",
    ),
    "rel_cmp": {"low": ("below",), "high": ("above",), "very low": ("well below",), "very high": ("well above",)},
    "var_adj": {
        "monotone": ("monotonous", "deadpan", "featureless"),
        "moderate": ("middle-of-the-road", "restrained yet varied"),
        "expressive": ("melodic", "sing-song", "colourful", "dynamic"),
    },
    "rate_adj": {"slow": ("unhurried", "sluggish", "drawn-out"), "medium": ("ordinary", "conversational", "middling"), "fast": ("brisk", "hurried", "swift")},
    "rate_adv": {"slow": ("unhurriedly", "sluggishly"), "fast": ("briskly", "hurriedly", "swiftly")},
    "rate_noun": ("tempo", "rate"),
    "rate_medium_adj": ("conversationally paced", "ordinarily timed"),
    "loud_adj": {
        "quiet": ("hushed", "subdued", "faint"),
        "normal": ("comfortably audible", "at conversational volume"),
        "loud": ("booming", "powerful", "projected"),
    },
    "loud_adv": {
        "quiet": ("faintly", "in a hushed manner"),
        "normal": ("at a comfortable level", "at an everyday level"),
        "loud": ("powerfully", "with booming force"),
    },
    "verb": {True: ("murmurs in a whisper", "delivers the words in a whisper"), False: ("converses", "delivers the words")},
    "verb_ing": {True: ("murmuring in a whisper", "uttering the words in a whisper"), False: ("conversing", "delivering the words")},
    "voiced": ("Phonation is normal, with full voicing.", "The words are voiced rather than breathed."),
    "accent": (" whose accent is {L}", " with {L}-accented English"),
    "accent_foreign": (" with {s} {L}-accented English", " whose English carries {a2} {L} accent"),
    "accent_strength": ("heavily", "mildly", "markedly"),
    "timbre": {
        "creaky": ("crackling", "fry-laden"),
        "hoarse": ("raspy", "scratchy"),
        "breathy": ("wispy", "breath-laden"),
        "nasal": ("twangy", "pinched"),
        "robotic": ("mechanical", "machine-like"),
        "smooth": ("silky", "velvety"),
        "bright": ("ringing", "glassy"),
        "warm": ("rounded", "honeyed"),
        "thin": ("slender", "wiry"),
        "rough": ("grainy", "gritty"),
    },
    "timbre_plain": ("unexceptional", "ordinary in colour"),
    "noise_level": {"slightly noisy": ("mild", "gentle"), "noisy": ("persistent", "distinct"), "very noisy": ("overwhelming", "dense")},
    "noise_color": {
        "white": ("static hiss", "hissing static"),
        "pink": ("whooshing wash", "rain-like wash"),
        "brown": ("rumbling roar", "muddy rumble"),
        None: ("background din", "interference"),
    },
    "clean_np": ("a pristine backdrop", "a spotless backdrop"),
    "noise_tail": ("against {np}", "amid {np}"),
    "clean_tail": ("in pristine conditions", "against a spotless backdrop"),
    "reverb_tail": {
        "close": ("right up on the microphone", "intimately miked at close range"),
        "slightly distant": ("a short way off the microphone, with a hint of ambience", "slightly off-axis, with a touch of room sound"),
        "distant": ("in a reverberant space, some distance off", "well off the microphone, with audible echo"),
        "very distant": ("across a cavernous, echoing space", "from far across a vast hall"),
    },
    "channel_tail": {
        "telephone": ("via a narrowband handset", "through a tinny phone connection"),
        "studio": ("at broadcast quality", "over a wideband hi-fi chain"),
    },
    "filler": (
        "No further traits call attention to themselves.",
        "Those are the qualities most apparent in the excerpt.",
        "Little beyond this is evident from the audio.",
        "Such are the main impressions the excerpt leaves.",
    ),
}

# The wide pool: the training pool plus three to eight ways to say each value and more frames, for
# paraphrase training of a text head (`clsp-search tune-text`). Corpus captions never draw from it,
# so manifests and the recipes trained on them do not move; it shares no phrase with the held-out
# pool (tests check it). Drawn uniformly like the others: the training pool's everyday words stay
# in the manifest captions a paraphrase run mixes in.
_WIDE_EXTRA: dict[str, Any] = {
    "noun": {"male": ("male narrator", "fellow", "male presenter"), "female": ("female narrator", "female presenter"),
             None: ("narrator", "presenter")},
    "rel_noun": {"male": ("male narrator",), "female": ("female narrator",)},
    "unknown_pronoun": ("the narrator",),
    "age": {"young": ("young-sounding", "juvenile"), "adult": ("grown-up", "full-grown"),
            "elderly": ("old-sounding", "retirement-age")},
    "hedge_adv": ("reasonably",),
    "hedge_pred": ("quite",),
    "intens": ("really", "remarkably", "especially"),
    "pitch_adj": {
        "low": ("deep-toned", "low-toned", "deep-sounding"),
        "medium": ("average-pitched", "normal-pitched"),
        "high": ("high-toned", "shrill", "elevated"),
    },
    "rel_pitch": ("{cmp} than a typical {g}", "{cmp} than you would expect from a {g}"),
    "rel_cmp": {"low": ("deeper",), "high": ("shriller",), "very low": ("much deeper",), "very high": ("considerably higher",)},
    "var_adj": {
        "monotone": ("droning", "uninflected"),
        "moderate": ("normally inflected", "balanced"),
        "expressive": ("spirited", "emphatic", "vivid"),
    },
    "rate_adj": {
        "slow": ("measured", "deliberate", "plodding", "languid", "slow-moving"),
        "medium": ("regular", "typical", "medium"),
        "fast": ("speedy", "rushed", "racing", "breakneck", "fast-moving"),
    },
    "rate_adv": {"slow": ("deliberately", "languidly", "leisurely"), "fast": ("speedily", "fast")},
    "rate_noun": ("talking speed", "speaking pace"),
    "rate_medium_adj": ("normally paced", "steadily paced", "regularly paced"),
    "loud_adj": {
        "quiet": ("soft-spoken", "muted"),
        "normal": ("of average volume", "of typical volume"),
        "loud": ("resounding", "bold", "thunderous"),
    },
    "loud_adv": {
        "quiet": ("in a soft-spoken way",),
        "normal": ("at an average volume", "at a typical volume"),
        "loud": ("boldly", "resoundingly"),
    },
    "verb": {True: ("speaks in a whisper", "talks in a whisper"), False: ("reads", "narrates")},
    "verb_ing": {True: ("speaking in a whisper",), False: ("reading", "narrating")},
    "voiced": ("Every word is fully voiced.",),
    "accent": (" who has {a} {L} accent", " speaking with {a} {L} accent"),
    "accent_foreign": (" with a {s} {L} accent in English",),
    "accent_strength": ("pronounced", "subtle"),
    "timbre": {
        "creaky": ("croaky",), "hoarse": ("throaty",), "breathy": ("feathery",), "nasal": ("nasally",),
        "robotic": ("artificial", "computerised"), "smooth": ("sleek",), "bright": ("crisp",), "warm": ("rich",),
        "thin": ("lean",), "rough": ("harsh",),
    },
    "timbre_plain": ("unmarked", "plain"),
    "noise_level": {"slightly noisy": ("minor",), "noisy": ("constant", "obvious"), "very noisy": ("intense", "thick")},
    "noise_color": {
        "white": ("broadband hiss",), "pink": ("rushing pink noise",), "brown": ("brownian noise",),
        None: ("ambient noise",),
    },
    "clean_np": ("a perfectly clean background",),
    "noise_tail": ("with {np} underneath", "accompanied by {np}"),
    "clean_tail": ("in a clean setting", "with a clean, silent background"),
    "reverb_tail": {
        "close": ("dry and close-up", "in a close, dry recording"),
        "slightly distant": ("a step back from the microphone, with some reverb",),
        "distant": ("distant, in an echoey room",),
        "very distant": ("very far away, in a big reverberant hall",),
    },
    "channel_tail": {
        "telephone": ("through a telephone receiver", "on a telephone call"),
        "studio": ("in a recording studio", "in a studio booth"),
    },
    "filler": ("Nothing more is worth mentioning.", "That is everything the recording reveals."),
}


def _extend(base: Any, extra: Any) -> Any:
    """`base` with `extra`'s phrases appended slot by slot (nested the same way), base phrases first."""
    if isinstance(base, Mapping):
        return {key: _extend(value, extra.get(key, ())) if extra else value for key, value in base.items()}
    return tuple(base) + tuple(extra)


_WIDE: dict[str, Any] = _extend(_TRAIN, _WIDE_EXTRA)

_POOLS = {"train": _TRAIN, "wide": _WIDE, "heldout": _HELDOUT}


def _pool_name(heldout: bool, pool: str | None) -> str:
    """The pool a caption draws from: `heldout=True` is the held-out pool, else `pool` (default "train")."""
    name = "heldout" if heldout else (pool or "train")
    if name not in _POOLS:
        raise ValueError(f"unknown phrasing pool {name!r}; known: {', '.join(_POOLS)}")
    return name


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [s for v in node.values() for s in _strings(v)]
    return [s for v in node for s in _strings(v)]


def phrasing_pools() -> dict[str, dict[str, frozenset[str]]]:
    """For each pool, every phrase it can draw, per slot; frames appear under the slots
    "global_frames" and "fine_frames" by their template text. The held-out pool shares nothing with
    the other two; the wide pool contains the training pool."""
    out: dict[str, dict[str, frozenset[str]]] = {}
    for name, pool in _POOLS.items():
        slots = {key: frozenset(_strings(value)) for key, value in pool.items()}
        slots["global_frames"] = frozenset(_GLOBAL_FRAMES[name])
        slots["fine_frames"] = frozenset(f.__doc__ or f.__name__ for f in _FINE_FRAMES[name])
        out[name] = slots
    return out


# ---------------------------------------------------------------------------------------------------
# Phrases that signal each binned value (both pools), for consistency checks.
# ---------------------------------------------------------------------------------------------------
def _family(value: str) -> str:
    return {"very low": "low", "very high": "high", "very slow": "slow", "very fast": "fast"}.get(value, value)


def _build_lexicon() -> dict[str, dict[Any, frozenset[str]]]:
    both = (_TRAIN, _WIDE, _HELDOUT)
    lex: dict[str, dict[Any, set[str]]] = {f: {v: set() for v in vals} for f, vals in FACTOR_VALUES.items()}
    lex["timbre"] = {t: set() for t in TIMBRE_TAGS}
    for pool in both:
        lex["gender"]["male"].update(pool["noun"]["male"] + ("he", "his", "him"))
        lex["gender"]["female"].update(pool["noun"]["female"] + ("she", "her"))
        for age, words in pool["age"].items():
            lex["age"][age].update(words)
        for value in FACTOR_VALUES["pitch_level"]:
            lex["pitch_level"][value].update(pool["pitch_adj"][_family(value)])
            if value != "medium":
                lex["pitch_level"][value].update(pool["rel_cmp"][value])
        for value, words in pool["var_adj"].items():
            lex["pitch_variation"][value].update(words)
        for value in FACTOR_VALUES["speaking_rate"]:
            fam = _family(value)
            if fam == "medium":
                lex["speaking_rate"][value].update(f"{a} {n}" for a in pool["rate_adj"]["medium"] for n in pool["rate_noun"])
                lex["speaking_rate"][value].update(pool["rate_medium_adj"])
            else:
                lex["speaking_rate"][value].update(pool["rate_adj"][fam] + pool["rate_adv"][fam])
        for value in FACTOR_VALUES["loudness"]:
            lex["loudness"][value].update(pool["loud_adj"][value] + pool["loud_adv"][value])
        lex["whisper"][True].update(("whisper", "whispers", "whispering", "whispered"))
        lex["whisper"][False].update(("voiced", "voicing"))
        for tag, words in pool["timbre"].items():
            lex["timbre"][tag].update(words)
        for color in ("white", "pink", "brown"):
            lex["noise_color"][color].update(pool["noise_color"][color])
        lex["channel"]["telephone"].update(("telephone", "phone", "narrowband", "handset", "tinny"))
        lex["channel"]["studio"].update(("studio", "broadcast", "wideband", "hi-fi"))
    dirty = {"noise", "noisy", "hiss", "hissing", "rumble", "rumbling", "roar", "rushing", "whooshing",
             "wash", "static", "din", "interference"}
    lex["noise"]["clean"].update(("clean", "silent background", "pristine", "spotless"))
    for value in ("slightly noisy", "noisy", "very noisy"):
        lex["noise"][value].update(dirty)
    far = {"distant", "distance", "reverb", "reverberant", "echo", "echoey", "echoing", "hall", "cavernous",
           "far", "off the microphone", "off-axis", "ambience", "room sound", "away from the microphone",
           "way from the microphone"}
    lex["reverb"]["close"].update(("close", "close-miked", "right up on the microphone"))
    for value in ("slightly distant", "distant", "very distant"):
        lex["reverb"][value].update(far)
    return {f: {v: frozenset(s) for v, s in vals.items()} for f, vals in lex.items()}


def _opposites() -> dict[str, dict[Any, tuple[Any, ...]]]:
    low_side = {"pitch_level": ("very low", "low"), "speaking_rate": ("very slow", "slow")}
    high_side = {"pitch_level": ("high", "very high"), "speaking_rate": ("fast", "very fast")}
    opp: dict[str, dict[Any, tuple[Any, ...]]] = {}
    for factor in ("pitch_level", "speaking_rate"):
        opp[factor] = {v: high_side[factor] for v in low_side[factor]}
        opp[factor].update({v: low_side[factor] for v in high_side[factor]})
        opp[factor]["medium"] = ()
    opp["gender"] = {"male": ("female",), "female": ("male",)}
    opp["age"] = {"young": ("elderly",), "elderly": ("young",), "adult": ()}
    opp["pitch_variation"] = {"monotone": ("expressive",), "expressive": ("monotone",), "moderate": ()}
    opp["loudness"] = {"quiet": ("loud",), "loud": ("quiet",), "normal": ()}
    opp["whisper"] = {True: (False,), False: (True,)}
    noisy = ("slightly noisy", "noisy", "very noisy")
    opp["noise"] = {"clean": noisy, **{v: ("clean",) for v in noisy}}
    opp["noise_color"] = {c: tuple(o for o in ("white", "pink", "brown") if o != c) for c in ("white", "pink", "brown")}
    far = ("slightly distant", "distant", "very distant")
    opp["reverb"] = {"close": far, **{v: ("close",) for v in far}}
    opp["channel"] = {"studio": ("telephone",), "telephone": ("studio",)}
    return opp


# ---------------------------------------------------------------------------------------------------
# Building blocks: one object per caption, holding the facts and the pool it may draw from.
# ---------------------------------------------------------------------------------------------------
def _a(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _known(facts: Mapping[str, Any], key: str) -> Any:
    value = facts.get(key)
    return None if value is None or value == "" else value


class _Parts:
    """Phrases for one caption; every random choice goes through `pick`, reading only its pool."""

    def __init__(self, facts: Mapping[str, Any], rng: random.Random, pool: str):
        self.f, self.rng, self.pool = facts, rng, _POOLS[pool]
        self.gender = _known(facts, "gender")
        self.whisper = _known(facts, "whisper")
        # Set when a caption ran long: optional asides (relative pitch, "fully voiced") are dropped.
        self.terse = False

    def pick(self, *path: Any) -> str:
        node: Any = self.pool
        for key in path:
            node = node[key]
        return node[self.rng.randrange(len(node))]

    def has(self, key: str) -> bool:
        value = _known(self.f, key)
        return value is not None and not (key == "timbre" and not isinstance(value, list | tuple))

    # --- who ---
    def subject(self, age: bool = True, article: bool = True) -> str:
        words = []
        if age and self.has("age"):
            words.append(self.pick("age", self.f["age"]))
        words.append(self.pick("noun", self.gender))
        phrase = " ".join(words)
        return _a(phrase) if article else phrase

    def pronoun(self) -> str:
        return {"male": "he", "female": "she"}.get(self.gender) or self.pick("unknown_pronoun")

    def possessive(self) -> str:
        return {"male": "his", "female": "her"}.get(self.gender) or self.pick("unknown_pronoun") + "'s"

    def accent(self) -> str:
        label = _known(self.f, "accent")
        if label is None:
            return ""
        if label in FOREIGN_ACCENTS:
            strength = self.pick("accent_strength")
            frame = self.pick("accent_foreign")
            return frame.format(s=strength, L=label, a2=_a(label).split()[0])
        return self.pick("accent").format(a=_a(label).split()[0], L=label)

    # --- pitch ---
    def pitch_adj(self, attributive: bool) -> str | None:
        value = _known(self.f, "pitch_level")
        if value is None:
            return None
        adj = self.pick("pitch_adj", _family(value))
        if value.startswith("very"):
            return f"{self.pick('intens')} {adj}"
        if value != "medium" and self.rng.random() < 0.4:
            return f"{self.pick('hedge_adv' if attributive else 'hedge_pred')} {adj}"
        return adj

    def pitch_relative(self, chance: float) -> str:
        value = _known(self.f, "pitch_level")
        if value in (None, "medium") or self.gender is None or self.terse or self.rng.random() >= chance:
            return ""
        frame = self.pick("rel_pitch")
        return ", " + frame.format(cmp=self.pick("rel_cmp", value), g=self.pick("rel_noun", self.gender))

    # --- intonation ---
    def variation(self) -> str | None:
        value = _known(self.f, "pitch_variation")
        return None if value is None else self.pick("var_adj", value)

    # --- pace ---
    def rate_np(self) -> str | None:
        value = _known(self.f, "speaking_rate")
        if value is None:
            return None
        adj = self.pick("rate_adj", _family(value))
        if value.startswith("very"):
            adj = f"{self.pick('intens')} {adj}"
        elif value != "medium" and self.rng.random() < 0.35:
            adj = f"{self.pick('hedge_adv')} {adj}"
        return _a(f"{adj} {self.pick('rate_noun')}")

    def rate_adv(self) -> str | None:
        value = _known(self.f, "speaking_rate")
        if value is None:
            return None
        fam = _family(value)
        if fam == "medium" or self.rng.random() < 0.35:
            return "at " + self.rate_np()  # type: ignore[operator]
        adv = self.pick("rate_adv", fam)
        if value.startswith("very"):
            return f"{self.pick('intens')} {adv}"
        return adv

    def rate_adj(self) -> str | None:
        value = _known(self.f, "speaking_rate")
        if value is None:
            return None
        if value == "medium":
            return self.pick("rate_medium_adj")
        adj = self.pick("rate_adj", _family(value))
        return f"{self.pick('intens')} {adj}" if value.startswith("very") else adj

    # --- level ---
    def loud_adj(self) -> str | None:
        value = _known(self.f, "loudness")
        return None if value is None else self.pick("loud_adj", value)

    def loud_adv(self) -> str | None:
        value = _known(self.f, "loudness")
        return None if value is None else self.pick("loud_adv", value)

    # --- phonation ---
    def verb(self) -> str:
        return self.pick("verb", bool(self.whisper))

    def verb_ing(self) -> str:
        return self.pick("verb_ing", bool(self.whisper))

    def voiced_sentence(self) -> str | None:
        return self.pick("voiced") if self.whisper is False and not self.terse else None

    # --- timbre ---
    def timbre(self) -> str | None:
        tags = _known(self.f, "timbre")
        if tags is None:
            return None
        tags = [t for t in tags if t in TIMBRE_TAGS]
        if not tags:
            return self.pick("timbre_plain")
        words = [self.pick("timbre", t) for t in tags]
        self.rng.shuffle(words)
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    # --- recording conditions ---
    def noise_np(self) -> str | None:
        level = _known(self.f, "noise")
        if level is None:
            return None
        if level == "clean":
            return self.pick("clean_np")
        color = _known(self.f, "noise_color")
        return _a(f"{self.pick('noise_level', level)} {self.pick('noise_color', color)}")

    def noise_tail(self) -> str | None:
        level = _known(self.f, "noise")
        if level is None:
            return None
        if level == "clean":
            return self.pick("clean_tail")
        return self.pick("noise_tail").format(np=self.noise_np())

    def reverb_tail(self) -> str | None:
        value = _known(self.f, "reverb")
        return None if value is None else self.pick("reverb_tail", value)

    def channel_tail(self) -> str | None:
        value = _known(self.f, "channel")
        return None if value is None else self.pick("channel_tail", value)

    def conditions(self) -> list[str]:
        """Known recording conditions as tails, in random order."""
        tails = [t for t in (self.noise_tail(), self.reverb_tail(), self.channel_tail()) if t]
        self.rng.shuffle(tails)
        return tails


def _and(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentences(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------------
# Global captions: one short sentence, gender + pitch + rate, plus the most marked 1-3 other factors.
# ---------------------------------------------------------------------------------------------------
_TRAIN_GLOBAL_FRAMES = (
    "{Subject}{pitch_with} {verb}{rate}{extras}.",
    "{Subject} {verb}{rate}{pitch_in}{extras}.",
    "{Rate_adj_speech}from {subject}{pitch_with}{extras}.",
)
_GLOBAL_FRAMES: dict[str, tuple[str, ...]] = {
    "train": _TRAIN_GLOBAL_FRAMES,
    "wide": _TRAIN_GLOBAL_FRAMES + (
        "A recording of {subject}{pitch_with} who {verb}{rate}{extras}.",
        "{Subject}{pitch_with}, {verb_ing}{rate}{extras}.",
    ),
    "heldout": (
        "This is {subject} {verb_ing}{rate}{pitch_with_h}{extras}.",
        "Here {subject}{pitch_whose} {verb}{rate}{extras}.",
        "We hear {subject} {verb_ing}{rate}{extras}{pitch_tail_h}.",
    ),
}


def _markedness(facts: Mapping[str, Any]) -> list[tuple[int, str]]:
    """Factors other than gender, pitch and rate, scored by how far they are from the default."""
    scores = {
        "channel": {"telephone": 3, "studio": 0},
        "noise": {"very noisy": 3, "noisy": 2, "slightly noisy": 1, "clean": 0},
        "reverb": {"very distant": 3, "distant": 2, "slightly distant": 1, "close": 0},
        "loudness": {"quiet": 2, "loud": 2, "normal": 0},
        "pitch_variation": {"monotone": 2, "expressive": 2, "moderate": 0},
    }
    out = []
    for key, table in scores.items():
        value = _known(facts, key)
        if value in table:
            out.append((table[value], key))
    accent = _known(facts, "accent")
    if accent is not None:
        out.append((2 if accent in FOREIGN_ACCENTS else 1, "accent"))
    return out


def _global_extras(p: _Parts) -> tuple[str, str]:
    """(adverb to append to the rate, tails) for the chosen extra factors."""
    candidates = _markedness(p.f)
    p.rng.shuffle(candidates)
    candidates.sort(key=lambda c: -c[0])
    k = p.rng.choice((1, 2, 2, 3))
    if p.whisper:
        k -= 1  # the whispering verb already carries one salient factor
    marked = [key for score, key in candidates if score > 0]
    chosen = marked[:k]
    if not chosen and k > 0 and candidates and not p.whisper and p.rng.random() < 0.5:
        chosen = [candidates[0][1]]
    adverb, tails = "", []
    for key in chosen:
        if key == "loudness":
            adverb = p.loud_adv() or ""
        elif key == "pitch_variation":
            tails.append("with " + _a(f"{p.variation()} delivery"))
        elif key == "accent":
            tails.append(p.accent().strip())
        elif key == "noise":
            tails.append(p.noise_tail() or "")
        elif key == "reverb":
            tails.append(p.reverb_tail() or "")
        elif key == "channel":
            tails.append(p.channel_tail() or "")
    return adverb, "".join(", " + t for t in tails if t)


def global_caption(facts: Mapping[str, Any], rng: random.Random, heldout: bool = False, *,
                   pool: str | None = None) -> str:
    """One short sentence naming the clip's main factors, worded from one phrasing pool."""
    pool = _pool_name(heldout, pool)
    p = _Parts(facts, rng, pool)
    frame = _GLOBAL_FRAMES[pool][rng.randrange(len(_GLOBAL_FRAMES[pool]))]
    pitch_attr = p.pitch_adj(attributive=True)
    rate = p.rate_adv()
    adverb, extras = _global_extras(p)
    rate_words = _and([rate or "", adverb])
    rate_adj = p.rate_adj()
    subject = p.subject(age=rng.random() < 0.6)
    fields = {
        "subject": subject,
        "Subject": _cap(subject),
        "verb": p.verb(),
        "verb_ing": p.verb_ing(),
        "rate": " " + rate_words if rate_words else "",
        "extras": extras,
        "pitch_with": f" with {_a(pitch_attr)} voice" if pitch_attr else "",
        "pitch_in": f" in {_a(pitch_attr)} voice" if pitch_attr else "",
        "Rate_adj_speech": _cap(" ".join(w for w in (rate_adj, "whispered" if p.whisper else "", "speech ") if w)),
        "pitch_with_h": f", in {_a(pitch_attr)} voice" if pitch_attr else "",
        "pitch_whose": f", whose voice is {pitch_attr}," if pitch_attr else "",
        "pitch_tail_h": f", the voice {pitch_attr}" if pitch_attr else "",
    }
    if "{Rate_adj_speech}" in frame and adverb:
        fields["extras"] = f", delivered {adverb}" + extras
    return re.sub(r"\s+", " ", frame.format(**fields)).replace(" ,", ",")


# ---------------------------------------------------------------------------------------------------
# Fine captions: several longer descriptions with different structures and clause orders.
# Each frame's docstring is its identity in `phrasing_pools()`.
# ---------------------------------------------------------------------------------------------------
def _pitch_sentence(p: _Parts, lead: str) -> str | None:
    adj = p.pitch_adj(attributive=False)
    if adj is None:
        return None
    return f"{lead} {adj}{p.pitch_relative(0.5)}."


def _listener(p: _Parts) -> str:
    """A listener's impression: who, then voice, then delivery, then the recording."""
    timbre, var = p.timbre(), p.variation()
    rate, loud = p.rate_adv(), p.loud_adv()
    conds = p.conditions()
    return _sentences(
        f"You hear {p.subject()}{p.accent()}.",
        f"The voice has a {timbre} quality." if timbre else None,
        _pitch_sentence(p, "The voice itself is"),
        f"The intonation is {var}." if var else None,
        f"{_cap(p.pronoun())} {p.verb()} {_and([rate or '', loud or ''])}".strip() + "."
        if rate or loud or p.whisper else None,
        p.voiced_sentence(),
        f"It was recorded {_and(conds)}." if conds else None,
    )


def _technical(p: _Parts) -> str:
    """A technical description in labelled fields."""
    fields = []
    who = p.subject(article=False) if p.gender or p.has("age") else None
    if who:
        fields.append(f"Speaker: {who}")
    if _known(p.f, "accent"):
        fields.append(f"Accent: {p.f['accent']}")
    timbre = p.timbre()
    if timbre:
        fields.append(f"Timbre: {timbre}")
    pitch = p.pitch_adj(attributive=False)
    if pitch:
        fields.append(f"Pitch: {pitch}{p.pitch_relative(0.4)}")
    var = p.variation()
    if var:
        fields.append(f"Contour: {var}")
    rate = p.rate_np()
    if rate:
        fields.append(f"Rate: {rate}")
    loud = p.loud_adj()
    if loud:
        fields.append(f"Level: {loud}")
    if p.whisper:
        fields.append("Phonation: whispered")
    conds = p.conditions()
    if conds:
        fields.append("Conditions: " + "; ".join(conds))
    return "Technical description of the recording. " + ". ".join(fields) + "."


def _casting(p: _Parts) -> str:
    """A casting note: what kind of performer would match."""
    pitch, timbre = p.pitch_adj(attributive=True), p.timbre()
    descriptors = ", ".join(d for d in (pitch, timbre) if d)
    voice = f" who has {_a(descriptors)} voice" if descriptors else ""
    var, rate, loud = p.variation(), p.rate_adv(), p.loud_adj()
    conds = p.conditions()
    delivery = _and([f"{rate}" if rate else "", f"with {var} intonation" if var else ""])
    return _sentences(
        f"Casting note: seeking {p.subject()}{p.accent()}{voice}{p.pitch_relative(0.3)}.",
        f"The performer {p.verb()} {delivery}".strip() + "." if delivery or p.whisper else None,
        f"Keep the read {loud}." if loud else None,
        p.voiced_sentence(),
        f"Record the take {_and(conds)}." if conds else None,
    )


def _comparison(p: _Parts) -> str:
    """A comparison with an ordinary voice, recording conditions first."""
    conds = p.conditions()
    rate, loud, var, timbre = p.rate_np(), p.loud_adj(), p.variation(), p.timbre()
    pitch = _pitch_sentence(p, "Compared with most voices, this one is")
    return _sentences(
        f"Recorded {_and(conds)}, this is {p.subject()}{p.accent()}." if conds
        else f"This is {p.subject()}{p.accent()}.",
        pitch,
        f"The timbre is {timbre}." if timbre else None,
        f"{_cap(p.pronoun())} {p.verb()} at {rate}." if rate
        else (f"{_cap(p.pronoun())} {p.verb()}." if p.whisper else None),
        f"The delivery is {loud} and {var}." if loud and var else
        (f"The delivery is {loud or var}." if loud or var else None),
        p.voiced_sentence(),
    )


def _summary(p: _Parts) -> str:
    """A compact summary that opens with delivery and closes with the speaker."""
    rate, loud, var = p.rate_adj(), p.loud_adj(), p.variation()
    bits = [b for b in (rate and f"{rate} speech", loud, var and f"{var} in intonation") if b]
    timbre = p.timbre()
    pitch = _pitch_sentence(p, "The pitch sits")
    conds = p.conditions()
    return _sentences(
        f"{_cap(_and(bits))}, from {p.subject()}{p.accent()}." if bits
        else f"A clip of {p.subject()}{p.accent()}.",
        f"{_cap(p.pronoun())} {p.verb()} throughout." if p.whisper else p.voiced_sentence(),
        f"{_cap(p.possessive())} timbre is {timbre}." if timbre else None,
        pitch,
        f"The audio was captured {_and(conds)}." if conds else None,
    )


def _story(p: _Parts) -> str:
    """A narrative description that sets the scene, then the voice."""
    conds = p.conditions()
    rate, loud, var, timbre = p.rate_adv(), p.loud_adv(), p.variation(), p.timbre()
    scene = f"In a clip recorded {_and(conds)}, " if conds else "In this clip, "
    how = _and([rate or "", loud or ""])
    return _sentences(
        f"{scene}{p.subject()}{p.accent()} {p.verb()}{' ' + how if how else ''}.",
        _pitch_sentence(p, f"{_cap(p.possessive())} voice is"),
        f"It has a {timbre} timbre" + (f" and {var} intonation." if var else ".") if timbre
        else (f"The intonation is {var}." if var else None),
        p.voiced_sentence(),
    )


def _profile(p: _Parts) -> str:
    """Held-out: a talker profile that leads with register and texture."""
    pitch, timbre, var = p.pitch_adj(attributive=False), p.timbre(), p.variation()
    rate, loud = p.rate_adv(), p.loud_adj()
    conds = p.conditions()
    return _sentences(
        f"Profile of the talker: {p.subject()}{p.accent()}.",
        f"Its register is {pitch}{p.pitch_relative(0.5)}." if pitch else None,
        f"Its texture is {timbre}." if timbre else None,
        f"Melodically it is {var}." if var else None,
        f"Tempo-wise, {p.pronoun()} {p.verb()} {rate}." if rate else
        (f"Throughout, {p.pronoun()} {p.verb()}." if p.whisper else None),
        f"Energy: {loud}." if loud else None,
        p.voiced_sentence(),
        f"Capture: {_and(conds)}." if conds else None,
    )


def _imagine(p: _Parts) -> str:
    """Held-out: a second-person scene for the reader to picture."""
    conds = p.conditions()
    rate, loud, var, timbre = p.rate_adv(), p.loud_adv(), p.variation(), p.timbre()
    pitch = p.pitch_adj(attributive=True)
    qual = _and([timbre or "", pitch or ""])
    how = _and([rate or "", loud or ""])
    return _sentences(
        f"Picture {p.subject()}{p.accent()} {p.verb_ing()}{' ' + how if how else ''}.",
        f"The sound you imagine is {qual}{p.pitch_relative(0.4)}." if qual else None,
        f"Its intonation stays {var}." if var else None,
        p.voiced_sentence(),
        f"Now place that talker {_and(conds)}." if conds else None,
    )


def _director(p: _Parts) -> str:
    """Held-out: a director's brief to a voice actor, conditions last."""
    pitch, timbre, var = p.pitch_adj(attributive=True), p.timbre(), p.variation()
    rate, loud = p.rate_adv(), p.loud_adj()
    conds = p.conditions()
    return _sentences(
        f"Actor's brief: play {p.subject()}{p.accent()}.",
        f"Aim for {_a(pitch)} register{p.pitch_relative(0.4)}." if pitch else None,
        f"Make the tone {timbre}." if timbre else None,
        f"Pacing: {rate}." if rate else None,
        f"Keep it {_and([loud or '', var or ''])}." if loud or var else None,
        "Whisper throughout." if p.whisper else p.voiced_sentence(),
        f"Capture the take {_and(conds)}." if conds else None,
    )


def _traits(p: _Parts) -> str:
    """Held-out: key traits as a semicolon list, conditions first."""
    conds = p.conditions()
    items = []
    if conds:
        items.append("heard " + _and(conds))
    items.append(p.subject() + p.accent())
    pitch = p.pitch_adj(attributive=False)
    if pitch:
        items.append(f"register {pitch}{p.pitch_relative(0.3)}")
    timbre = p.timbre()
    if timbre:
        items.append(f"texture {timbre}")
    var = p.variation()
    if var:
        items.append(f"melody {var}")
    rate = p.rate_adv()
    if rate:
        items.append(f"words delivered {rate}")
    loud = p.loud_adj()
    if loud:
        items.append(f"energy {loud}")
    if p.whisper:
        items.append("entirely in a whisper")
    elif p.whisper is False:
        items.append("with full voicing")
    return "Key traits of the excerpt: " + "; ".join(items) + "."


def _questions(p: _Parts) -> str:
    """Questions a listener might ask, each answered in turn."""
    pitch, timbre, var = p.pitch_adj(attributive=False), p.timbre(), p.variation()
    rate, loud = p.rate_adv(), p.loud_adv()
    conds = p.conditions()
    how = _and([rate or "", loud or ""])
    sound = _and([f"{pitch}{p.pitch_relative(0.4)}" if pitch else "", f"{timbre} in timbre" if timbre else ""])
    return _sentences(
        f"Who is speaking? {_cap(p.subject())}{p.accent()}.",
        f"How does the voice sound? {_cap(sound)}." if sound else None,
        f"How is it delivered? {_cap(p.pronoun())} {p.verb()}{' ' + how if how else ''}"
        + (f", with {var} intonation." if var else ".") if how or var or p.whisper else None,
        p.voiced_sentence(),
        f"Where was it recorded? {_cap(_and(conds))}." if conds else None,
    )


def _review(p: _Parts) -> str:
    """A reviewer's paragraph: the recording, the speaker, then how the voice is used."""
    conds = p.conditions()
    pitch, timbre, var = p.pitch_adj(attributive=True), p.timbre(), p.variation()
    rate, loud = p.rate_np(), p.loud_adj()
    voice = ", ".join(d for d in (pitch, timbre) if d)
    return _sentences(
        f"This recording features {p.subject()}{p.accent()}"
        + (f" with {_a(voice)} voice" if voice else "") + f"{p.pitch_relative(0.3)}.",
        f"{_cap(p.pronoun())} {p.verb()} at {rate}." if rate
        else (f"{_cap(p.pronoun())} {p.verb()}." if p.whisper else None),
        f"The reading is {_and([loud or '', f'{var} in intonation' if var else ''])}." if loud or var else None,
        p.voiced_sentence(),
        f"The sound was captured {_and(conds)}." if conds else None,
    )


_TRAIN_FINE_FRAMES = (_listener, _technical, _casting, _comparison, _summary, _story)
_FINE_FRAMES: dict[str, tuple[Callable[[_Parts], str], ...]] = {
    "train": _TRAIN_FINE_FRAMES,
    "wide": _TRAIN_FINE_FRAMES + (_questions, _review),
    "heldout": (_profile, _imagine, _director, _traits),
}


def _word_count(text: str) -> int:
    return len(text.split())


def _fit(p: _Parts, frame: Callable[[_Parts], str]) -> str | None:
    """Render a frame within the word bounds: pad short ones with neutral fillers, redraw long ones."""
    for attempt in range(12):
        p.terse = attempt >= 4
        text = re.sub(r"\s+", " ", frame(p)).replace(" ,", ",").strip()
        fillers = list(p.pool["filler"])
        p.rng.shuffle(fillers)
        while _word_count(text) < MIN_FINE_WORDS and fillers:
            text += " " + fillers.pop()
        if MIN_FINE_WORDS <= _word_count(text) <= MAX_FINE_WORDS:
            return text
    return None


def fine_captions(
    facts: Mapping[str, Any], rng: random.Random, n: int = 4, heldout: bool = False, *, pool: str | None = None
) -> list[str]:
    """n distinct descriptions of 25-60 words, each from a different frame while frames last.

    Every known fact is described in each caption (conditions, voice, delivery), in words and an
    order that vary between captions; unknown facts are left out.
    """
    pool = _pool_name(heldout, pool)
    frames = list(_FINE_FRAMES[pool])
    out: list[str] = []
    order: list[Callable[[_Parts], str]] = []
    attempts = 0
    while len(out) < n:
        if not order:
            order = frames[:]
            rng.shuffle(order)
        frame = order.pop()
        attempts += 1
        text = _fit(_Parts(facts, rng, pool), frame)
        if text is not None and text not in out:
            out.append(text)
        elif attempts > 50 * max(n, 1):
            raise ValueError(f"cannot write {n} distinct captions within bounds for {dict(facts)}")
    return out


# ---------------------------------------------------------------------------------------------------
# Attribute captions: short sentences that describe one factor value and nothing else.
# ---------------------------------------------------------------------------------------------------
_ATTRIBUTE_FRAMES: dict[str, tuple[Callable[[_Parts], str | None], ...]] = {
    "gender": (lambda p: f"{_cap(p.subject(age=False))} is heard.", lambda p: f"This is {p.subject(age=False)}."),
    "age": (lambda p: f"{_cap(p.subject())} is heard.", lambda p: f"This is {p.subject()}."),
    "accent": (lambda p: f"Someone{p.accent()}.", lambda p: f"{_cap(p.subject(age=False))}{p.accent()} is heard."),
    "pitch_level": (lambda p: f"{_cap(_a(p.pitch_adj(True) or ''))} voice is heard.",
                    lambda p: f"This voice sounds {p.pitch_adj(False)}."),
    "pitch_variation": (lambda p: f"{_cap(_a(p.variation() or ''))} voice is heard.",
                        lambda p: f"The intonation sounds {p.variation()}."),
    "speaking_rate": (lambda p: f"{_cap(p.rate_adj() or '')} speech is heard.",
                      lambda p: f"Someone who {p.verb()} {p.rate_adv()}."),
    "loudness": (lambda p: f"Someone who {p.verb()} {p.loud_adv()}.", lambda p: f"The delivery is {p.loud_adj()}."),
    "whisper": (lambda p: f"Someone who {p.verb()}." if p.whisper else p.voiced_sentence(),
                lambda p: f"{_cap(p.verb_ing())} is heard." if p.whisper else None),
    "noise": (lambda p: f"Heard {p.noise_tail()}.",),
    "reverb": (lambda p: f"Heard {p.reverb_tail()}.",),
    "channel": (lambda p: f"Heard {p.channel_tail()}.",),
}
ATTRIBUTE_CAPTION_FACTORS: tuple[str, ...] = tuple(_ATTRIBUTE_FRAMES)


def attribute_captions(factor: str, value: Any, heldout: bool = False, draws: int = 200, *,
                       pool: str | None = None) -> tuple[str, ...]:
    """Every short sentence (up to `draws` random draws) that describes `factor = value` alone.

    A caption of many facts teaches what a combination sounds like; a query typed into a search box
    or a zero-shot prompt usually names one fact. These sentences ("Someone who talks rapidly.",
    "Heard over a telephone line.") are drawn from one phrasing pool with the same grammar as the
    other captions, and are deterministic: the same factor and value always give the same tuple.
    """
    if factor not in _ATTRIBUTE_FRAMES:
        raise ValueError(f"no attribute captions for {factor!r}; known: {', '.join(_ATTRIBUTE_FRAMES)}")
    pool = _pool_name(heldout, pool)
    rng = random.Random(f"{factor}:{value}:{pool}")
    found: set[str] = set()
    for _ in range(draws):
        for frame in _ATTRIBUTE_FRAMES[factor]:
            text = frame(_Parts({factor: value}, rng, pool))
            if text:
                found.add(re.sub(r"\s+", " ", text))
    return tuple(sorted(found))


LEXICON: dict[str, dict[Any, frozenset[str]]] = _build_lexicon()
OPPOSITES: dict[str, dict[Any, tuple[Any, ...]]] = _opposites()

_FUNCTION_WORDS = frozenset(
    "a an the of for to in on at with and or but than is are be as by from this that what one its it "
    "very much far well somewhat rather fairly touch slightly little bit mildly extremely exceptionally "
    "strikingly unusually way off up right some yet like into".split()
)

# Descriptive words the captions use for style; spoken content must avoid all of them.
STYLE_ADJECTIVES: frozenset[str] = frozenset(
    word
    for factor in LEXICON.values()
    for phrases in factor.values()
    for phrase in phrases
    for word in re.findall(r"[a-z]+", phrase.lower())
    if word not in _FUNCTION_WORDS
)
