"""Query understanding: the words of a description that name a measurable property become soft
constraints over the collection's measured attributes, fused with the model's score.

    understood = parse("a deep male voice over the phone, not fast")
    understood.constraints   # gender male; pitch low (within male); channel telephone; pace slow
    understood.uncovered     # words no measured signal covers, with what (if anything) ranks them

Why: the model is trained on synthetic voices and transfers to real recordings only roughly, while
the attributes measured at indexing (pitch, pace, loudness, SNR, reverberation, bandwidth, voicing,
DNSMOS, the gender estimate) are read from the signal and hold on any audio. A description that says
"a woman" or "over the phone" can therefore be checked against what was measured, instead of trusting
the text-to-speech similarity alone.

The vocabulary is the caption vocabulary (`searchengine.corpus.captions.LEXICON`: every phrase the
corpus captions use for each value of each factor, in all phrasing pools) mapped to the measured
property that factor corresponds to, plus `SYNONYMS`, everyday words the captions do not use ("over
the phone", "shouting", "background noise", "good quality"). Words of the lexicon for factors that no
attribute measures (age, timbre) and words for accent and emotion are reported as uncovered, with
the property they name, so the caller can say what the ranking does not check.

How a constraint scores a clip (`AttributeTable`), in [0, 1]:
  graded properties (pitch, pace, loudness, noise, distance, quality, expressiveness): the clip's
    quantile among the collection's own measured values (its empirical CDF, the continuous form of
    the word bins `searchengine.attributes.words` stores), so "fast" means faster than most clips of
    *this* collection; q for "high", q^2 for "very high", 1 - q and (1 - q)^2 for the low side,
    1 - |2q - 1| for "medium". Pitch is ranked within the named gender when the query names one
    (a "high" male voice is lower than a "low" female one), across the collection otherwise.
  gender: the probability of the named gender (1 or 0 from a manifest's gender label, else the
    estimate stored at indexing with its probability).
  channel and whisper are facts, not degrees: telephone is a spectrum that ends near 4 kHz
    (`m_bandwidth_hz`), a whisper is speech with almost no voiced frames (`m_voiced_share`).
  A clip without the measurement scores 0.5 (neither kept nor pushed); so does a whisper on pitch and
    intonation, which it does not have (the score slides to 0.5 as the voiced share falls).

How scores fuse (`Reranker`): final = model + WEIGHT * sigma * sum_i (s_i - 1), where sigma is the
spread (standard deviation) of the model's fused scores over the candidates. A clip that meets every
constraint keeps its model score; each unmet one costs up to WEIGHT standard deviations of the
model's own score, so the model still orders clips that meet the constraints and can still overrule
a weak measurement. Candidates are the model's own best clips plus the clips the constraints favour
most, so a clip the model ranks low but the measurements match can still come up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_UNDERSTAND = True
"""Whether text queries understand descriptions unless asked not to. The rule, fixed before measuring:
on by default only if it raises P@10 and nDCG@10 on the real-speech development set and lowers
neither on held-out synthetic voices. At the weight chosen on validation voices (`WEIGHT`), with the
gender estimate from speaker vector and F0 and whispers left out of pitch, it raises real speech from
0.700 / 0.702 to 0.740 / 0.781 and synthetic test voices from 0.856 / 0.882 to 0.881 / 0.905, so it is
on (benchmarks/RESULTS.md, "Query understanding"). It was off while synthetic nDCG@10 fell
(0.884 -> 0.882 with the earlier estimate)."""

WEIGHT = 8.0
"""Cost of one fully unmet constraint, in standard deviations of the model's scores: chosen on
synthetic validation voices (best mean nDCG@10 of descriptive queries over 0.5, 1, 2, 3, 4, 8: 0.913
at 8, against 0.854 for the model alone); benchmarks/RESULTS.md, "Query understanding"."""

MIN_CANDIDATES = 200
"""Clips the constraints contribute to the candidates, beside the model's own (at least the page)."""

INTENSIFIERS = frozenset(
    "very extremely really much exceptionally strikingly unusually super incredibly remarkably especially "
    "considerably well highly heavy heavily strong strongly lots loads intense thick dense".split())
NEGATIONS = frozenset("not no non without never isn't isnt doesn't doesnt don't dont aren't arent".split())
NEGATION_REACH = 3
"""A negation applies to a phrase that starts at most this many words after it ("no background noise")."""


@dataclass(frozen=True)
class Property:
    """A measurable property: the column it is read from and how its values map to words.

    `kind` is "graded" (quantiles of `column`, `sign` +1 when a higher value is the "high" end),
    "gender", "channel" or "whisper" (facts read with fixed thresholds)."""

    name: str
    kind: str
    column: str
    sign: int = 1
    low: str = "low"
    high: str = "high"
    label: str = ""

    def target_label(self, target: str) -> str:
        return {"low": self.low, "high": self.high, "mid": "medium"}.get(target, target)


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("gender", "gender", "m_gender_est", label="gender"),
        Property("pitch", "graded", "m_f0_median_hz", 1, "low", "high", "pitch"),
        Property("pace", "graded", "m_rate_syl_per_s", 1, "slow", "fast", "pace"),
        Property("loudness", "graded", "m_loudness_dbfs", 1, "quiet", "loud", "loudness"),
        Property("noise", "graded", "m_snr_db", -1, "clean", "noisy", "background noise"),
        Property("distance", "graded", "m_reverb_db", 1, "close", "distant", "distance / reverberation"),
        Property("quality", "graded", "m_dnsmos_ovrl", 1, "poor", "good", "audio quality (DNSMOS)"),
        Property("expressiveness", "graded", "m_f0_spread_st", 1, "monotone", "expressive", "intonation"),
        Property("channel", "channel", "m_bandwidth_hz", label="channel"),
        Property("whisper", "whisper", "m_voiced_share", label="phonation"),
    )
}
"""Every property a description can constrain, by name."""

UNMEASURED = ("age", "timbre", "accent", "emotion")
"""Properties a description can name that no measured attribute covers."""

# Lexicon factor -> (property, {lexicon value: target}); targets are low / mid / high, a gender, or a
# channel / phonation value. Factors not listed here (age, timbre, noise colour) are unmeasured.
_FACTOR_TARGETS: dict[str, tuple[str, dict[Any, str]]] = {
    "gender": ("gender", {"male": "male", "female": "female"}),
    "pitch_level": ("pitch", {"very low": "low", "low": "low", "medium": "mid", "high": "high", "very high": "high"}),
    "pitch_variation": ("expressiveness", {"monotone": "low", "moderate": "mid", "expressive": "high"}),
    "speaking_rate": ("pace", {"very slow": "low", "slow": "low", "medium": "mid", "fast": "high", "very fast": "high"}),
    "loudness": ("loudness", {"quiet": "low", "normal": "mid", "loud": "high"}),
    "whisper": ("whisper", {True: "whisper"}),
    "noise": ("noise", {"clean": "low", "slightly noisy": "high", "noisy": "high", "very noisy": "high"}),
    "reverb": ("distance", {"close": "low", "slightly distant": "high", "distant": "high", "very distant": "high"}),
    "channel": ("channel", {"telephone": "telephone", "studio": "wideband"}),
}

_LEXICON_EXCLUDED = frozenset({"below", "above", "well below", "well above", "wash", "projected", "measured",
                               "balanced", "bold", "boldly"})
"""Caption phrases too common in ordinary English to read as a property when typed alone."""

SYNONYMS: dict[str, tuple[str, str]] = {
    **{w: ("gender", "male") for w in ("male", "males", "men", "boy", "masculine", "father", "husband", "dude",
                                        "male voice", "men's", "man's")},
    **{w: ("gender", "female") for w in ("female", "females", "women", "girl", "feminine", "mother", "wife",
                                          "female voice", "women's", "woman's", "ladies")},
    **{w: ("pitch", "low") for w in ("deep-voiced", "bass", "baritone", "low pitch", "low-pitch", "low voice",
                                      "deep voice", "lower-pitched")},
    **{w: ("pitch", "high") for w in ("squeaky", "soprano", "high pitch", "high-pitch", "high voice",
                                       "higher-pitched", "falsetto")},
    **{w: ("pace", "high") for w in ("fast-talking", "fast talker", "fast-paced", "rapid-fire", "hurry",
                                      "in a hurry", "quick-fire")},
    **{w: ("pace", "low") for w in ("slow-paced", "slow talker", "slow-talking", "drawl", "drawling")},
    **{w: ("loudness", "high") for w in ("shouting", "shouts", "shout", "shouted", "yelling", "yells", "yell",
                                          "screaming", "high volume", "loud voice")},
    **{w: ("loudness", "low") for w in ("low volume", "low-volume", "quiet voice", "soft voice", "barely audible")},
    **{w: ("whisper", "whisper") for w in ("whispery", "whisperer", "whispering voice")},
    **{w: ("noise", "high") for w in ("background noise", "noisy background", "crowd", "crowded", "traffic",
                                       "cafe", "café", "restaurant", "street", "kitchen", "babble", "windy",
                                       "busy", "hum", "buzz", "buzzing", "bar", "pub", "party", "construction")},
    **{w: ("noise", "low") for w in ("noise-free", "noiseless", "quiet room", "quiet background",
                                      "silent room", "quiet place", "clean audio", "clean recording")},
    **{w: ("distance", "high") for w in ("echoes", "reverberation", "reverberating", "church", "cathedral",
                                          "cave", "tunnel", "stairwell", "bathroom", "large room", "big room",
                                          "far away", "far-away", "far-field", "across the room",
                                          "from a distance", "roomy", "echo-y")},
    **{w: ("distance", "low") for w in ("close-up", "close up", "up close", "near the microphone",
                                         "near the mic", "close to the mic", "close to the microphone",
                                         "dry", "close-mic", "close-miked", "close-mic'd", "intimate")},
    **{w: ("channel", "telephone") for w in ("over the phone", "on the phone", "phone call", "telephone line",
                                              "cellphone", "cell phone", "mobile phone", "landline",
                                              "call center", "call centre", "call-center", "voip",
                                              "narrow band", "band-limited", "bandlimited", "8 khz", "8khz",
                                              "lo-fi", "phone line")},
    **{w: ("channel", "wideband") for w in ("full bandwidth", "full-band", "fullband", "wide band",
                                             "high fidelity", "high-fidelity")},
    **{w: ("quality", "high") for w in ("good quality", "high quality", "high-quality", "great quality",
                                         "excellent quality", "good audio", "professional quality",
                                         "best quality", "top quality", "pristine quality")},
    **{w: ("quality", "low") for w in ("poor quality", "bad quality", "low quality", "low-quality",
                                        "terrible quality", "awful quality", "distorted", "degraded",
                                        "poor audio", "bad audio", "garbled", "crappy")},
    **{w: ("expressiveness", "low") for w in ("monotonic", "emotionless", "robotic delivery")},
}
"""Everyday words for measurable properties that the captions do not use: word -> (property, target)."""

EMOTION_WORDS = frozenset(
    """angry anger angrily furious fury mad annoyed irritated irritable rage enraged happy happily happiness
    joy joyful joyous cheerful cheerfully glad delighted elated sad sadly sadness unhappy sorrowful sorrow
    tearful crying cries weeping depressed gloomy melancholy miserable grief grieving fearful fear afraid
    scared frightened terrified panicked panicky nervous nervously anxious anxiously worried scared
    surprised surprise shocked amazed astonished disgusted disgust contempt contemptuous disdainful bored
    boredom calm calmly serene relaxed neutral excited excitedly excitement enthusiastic thrilled
    emotional emotion emotions sarcastic sarcasm upset frustrated frustration confident proud ashamed
    embarrassed guilty jealous loving tender affectionate hostile aggressive friendly sweet bitter
    desperate hopeful sympathetic stressed tense distressed amused laughing giggling sobbing""".split())
"""Words for emotion (no measured attribute covers it; whether the model can rank it is its own declaration)."""

ACCENT_WORDS = frozenset(
    """accent accents accented brogue drawl twang dialect british american english-accented scottish irish
    welsh australian canadian indian southern northern caribbean cockney texan jamaican african nigerian
    kenyan received pronunciation rp lancastrian midlands york yorkshire german french spanish italian
    polish hindi russian portuguese brazilian dutch chinese mandarin cantonese japanese korean arabic
    turkish greek swedish norwegian danish finnish czech hungarian romanian vietnamese indonesian persian
    farsi swahili yoruba bengali tamil urdu punjabi ukrainian hebrew thai tagalog filipino catalan
    serbian croatian bulgarian mexican european asian foreign non-native""".split()) - {"drawl"}
"""Words for accent (no measured attribute covers it)."""

STOPWORDS = frozenset(
    """a an the of for to in on at with and or but than then is are was were be been being as by from
    this that these those it its it's who whose which what whom someone somebody anyone person people
    persons speaker speakers talker talkers narrator voice voices voiced speech speaking speaks speak spoke
    spoken talking talks talk talked saying says say said reading reads read telling tells recording
    recorded recordings record audio clip clips sound sounds sounding sounded like some any very much
    really quite rather fairly somewhat slightly little bit bits extremely a-bit kind sort of type
    pitch pitched tone tones pace speed tempo volume level quality background microphone mic room line
    english language word words sentence sentences there here has have having had with without into
    onto over under about around while when where during through his her their them they he she i me
    my you your we our us one ones two something anything find show give me want looking search need
    please example examples sample samples male-or-female tone-of-voice delivery manner way style
    read-aloud aloud out up down off too so more less most least lot light slight slightly mild mildly
    bit noticeable noticeably clearly clear""".split())
"""Words that carry no property (articles, speech nouns and verbs, the names of the scales themselves)."""

_TOKEN = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*")


@dataclass(frozen=True)
class Constraint:
    """One understood property: `key` names it in requests that drop it ("gender:male")."""

    property: str
    target: str  # low | mid | high, a gender, telephone | wideband, whisper | voiced
    very: bool
    words: str  # the words of the query it was read from

    @property
    def key(self) -> str:
        return f"{self.property}:{self.target}"

    def label(self, gender: str | None = None) -> str:
        prop = PROPERTIES[self.property]
        target = prop.target_label(self.target)
        if self.property == "channel":
            target = {"telephone": "telephone band", "wideband": "full band"}[self.target]
        if self.property == "whisper":
            target = {"whisper": "whispered", "voiced": "voiced (not whispered)"}[self.target]
        text = f"{prop.label}: {'very ' if self.very else ''}{target}"
        if self.property == "pitch" and gender:
            text += f" (for a {'man' if gender == 'male' else 'woman'})"
        return text


@dataclass(frozen=True)
class Uncovered:
    """Words of the query that no measured attribute covers, and the property they name (or None)."""

    words: str
    property: str | None  # age | timbre | accent | emotion | None (a word no vocabulary knows)


@dataclass
class Parsed:
    """A description read against the vocabulary."""

    constraints: list[Constraint] = field(default_factory=list)
    uncovered: list[Uncovered] = field(default_factory=list)

    def gender(self) -> str | None:
        """The gender the query names, if it names exactly one."""
        genders = {c.target for c in self.constraints if c.property == "gender"}
        return genders.pop() if len(genders) == 1 else None


# ------------------------------------------------------------------------------------- vocabulary
def _vocabulary() -> tuple[dict[tuple[str, ...], tuple[str, str]], dict[tuple[str, ...], str]]:
    """(phrase tokens -> (property, target), phrase tokens -> unmeasured property), from the caption
    lexicon and `SYNONYMS`; synonyms win where both list a phrase."""
    from searchengine.corpus.captions import LEXICON

    measured: dict[tuple[str, ...], tuple[str, str]] = {}
    for factor, (prop, targets) in _FACTOR_TARGETS.items():
        for value, target in targets.items():
            for phrase in LEXICON.get(factor, {}).get(value, ()):
                if phrase not in _LEXICON_EXCLUDED:
                    measured[tuple(_tokens(phrase))] = (prop, target)
    for phrase, meaning in SYNONYMS.items():
        measured[tuple(_tokens(phrase))] = meaning
    unmeasured: dict[tuple[str, ...], str] = {}
    for factor in ("age", "timbre"):
        for phrases in LEXICON.get(factor, {}).values():
            for phrase in phrases:
                unmeasured.setdefault(tuple(_tokens(phrase)), factor)
    for word in ("old", "child", "kid", "kids", "children", "teenager", "teen", "teenage", "middle-aged",
                 "grandfather", "grandmother", "grandpa", "grandma", "baby", "toddler", "adolescent"):
        unmeasured.setdefault((word,), "age")
    for word in ("raspy", "gravelly", "nasal", "breathy", "husky", "smoky", "velvet", "silky", "metallic",
                 "robot", "robotic", "creaky", "hoarse", "gruff", "brassy", "sultry", "mellow"):
        unmeasured.setdefault((word,), "timbre")
    for word in EMOTION_WORDS:
        unmeasured.setdefault((word,), "emotion")
    for word in ACCENT_WORDS:
        unmeasured.setdefault((word,), "accent")
    return measured, unmeasured


_VOCAB: tuple[dict[tuple[str, ...], tuple[str, str]], dict[tuple[str, ...], str]] | None = None


def vocabulary() -> tuple[dict[tuple[str, ...], tuple[str, str]], dict[tuple[str, ...], str]]:
    """The vocabulary, built once (see `_vocabulary`)."""
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _vocabulary()
    return _VOCAB


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("’", "'"))


_OPPOSITE = {"low": "high", "high": "low", "male": "female", "female": "male", "telephone": "wideband",
             "wideband": "telephone", "whisper": "voiced", "voiced": "whisper"}


# ------------------------------------------------------------------------------------- parsing
def parse(query: str) -> Parsed:
    """Constraints and uncovered words of a description. Longest phrases match first; "very" (and
    other intensifiers) right before a phrase makes it "very"; a negation up to `NEGATION_REACH` words
    before it turns it around ("not fast" -> slow, "no background noise" -> clean); a negated "medium"
    says nothing and is dropped."""
    measured, unmeasured = vocabulary()
    longest = max(max(map(len, measured)), max(map(len, unmeasured)))
    tokens = _tokens(query)
    out = Parsed()
    seen: dict[str, int] = {}
    pending_uncovered: list[tuple[int, str, str | None]] = []  # (position, word, property)
    i = 0
    while i < len(tokens):
        match = None
        for n in range(min(longest, len(tokens) - i), 0, -1):
            span = tuple(tokens[i:i + n])
            if span in measured:
                match = ("measured", n, measured[span])
                break
            if span in unmeasured:
                match = ("unmeasured", n, unmeasured[span])
                break
        if match is None:
            word = tokens[i]
            if word not in STOPWORDS and word not in INTENSIFIERS and word not in NEGATIONS and not word.isdigit():
                parts = word.split("-")
                if len(parts) > 1 and all(p in STOPWORDS or (p,) in measured or (p,) in unmeasured for p in parts):
                    tokens[i:i + 1] = parts  # a hyphenated compound of known words: read its parts
                    continue
                pending_uncovered.append((i, word, None))
            i += 1
            continue
        what, n, meaning = match
        words = " ".join(tokens[i:i + n])
        if what == "unmeasured":
            pending_uncovered.append((i, words, meaning))  # type: ignore[arg-type]
            i += n
            continue
        prop, target = meaning  # type: ignore[misc]
        before = tokens[max(0, i - NEGATION_REACH):i]
        negated = any(t in NEGATIONS for t in before)
        very = i > 0 and tokens[i - 1] in INTENSIFIERS
        if negated:
            if target == "mid" or target not in _OPPOSITE:
                i += n
                continue
            target = _OPPOSITE[target]
        constraint = Constraint(prop, target, very, words)
        if constraint.key in seen:  # "a man ... he": one constraint, the strongest reading
            old = out.constraints[seen[constraint.key]]
            if very and not old.very:
                out.constraints[seen[constraint.key]] = constraint
        else:
            seen[constraint.key] = len(out.constraints)
            out.constraints.append(constraint)
        i += n
    out.uncovered = _group(pending_uncovered)
    return out


def _group(items: list[tuple[int, str, str | None]]) -> list[Uncovered]:
    """Adjacent uncovered words naming the same property become one phrase ("french accent")."""
    groups: list[list[Any]] = []
    for pos, word, prop in items:
        last = groups[-1] if groups else None
        if last is not None and last[2] == prop and pos == last[0] + 1:
            last[0], last[1] = pos + len(word.split()) - 1, f"{last[1]} {word}"
        else:
            groups.append([pos + len(word.split()) - 1, word, prop])
    seen: set[tuple[str, str | None]] = set()
    out = []
    for _, words, prop in groups:
        if (words, prop) not in seen:
            seen.add((words, prop))
            out.append(Uncovered(words, prop))
    return out


# ------------------------------------------------------------------------------------- measurements
GENDER_LABEL_COLUMN = "gender"
TELEPHONE_HZ, WIDEBAND_HZ = 4200.0, 6000.0
"""A spectrum that ends below 4.2 kHz is a telephone band, one reaching past 6 kHz is full band; in between
the score slides (`searchengine.attributes.spectrum`: real telephone clips read 3.8-3.9 kHz, others 7.4-8 kHz)."""
WHISPER_VOICED, SPOKEN_VOICED = 0.15, 0.45
"""Share of sounding frames that are voiced: a whisper has almost none, ordinary speech most; between
these the score slides."""
PITCHED = frozenset({"m_f0_median_hz", "m_f0_spread_st"})
"""Columns read from the pitch track, which mean nothing for a whisper (`AttributeTable._trust_pitch`)."""


def _quantiles(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank quantile among the finite values (ties share one); NaN stays NaN."""
    out = np.full(len(values), np.nan)
    ok = np.isfinite(values)
    v = values[ok]
    if not len(v):
        return out
    order = np.sort(v)
    lo = np.searchsorted(order, v, side="left")
    hi = np.searchsorted(order, v, side="right")
    out[ok] = (lo + hi) / 2.0 / len(v)
    return out


class AttributeTable:
    """The measured attributes of every clip, as arrays aligned with sorted clip ids, with their
    quantiles: read once per open collection (a collection a Searcher opens does not change)."""

    def __init__(self, ids: np.ndarray, columns: Mapping[str, np.ndarray], p_female: np.ndarray) -> None:
        self.ids = np.asarray(ids, np.int64)
        self.columns = {k: np.asarray(v, np.float64) for k, v in columns.items()}
        self.p_female = np.asarray(p_female, np.float64)
        self.quantile = {k: _quantiles(v) for k, v in self.columns.items()}
        self._within: dict[tuple[str, str], np.ndarray] = {}

    @classmethod
    def load(cls, con: Any, column_names: Iterable[str]) -> AttributeTable:
        """Read the measured columns the collection has (any missing one is simply not available)."""
        from searchengine.store.schema import quote_ident

        present = set(column_names)
        wanted = sorted({p.column for p in PROPERTIES.values() if p.kind != "gender"} & present)
        gender_cols = [c for c in (GENDER_LABEL_COLUMN, "m_gender_est", "m_gender_prob") if c in present]
        names = ["id", *wanted, *gender_cols]
        select = ", ".join(quote_ident(n) for n in names)
        rows = con.execute(f"SELECT {select} FROM clips ORDER BY id").fetchnumpy()
        ids = np.asarray(rows["id"], np.int64)
        columns = {c: _floats(rows[c]) for c in wanted}
        return cls(ids, columns, _female_probability(rows, len(ids)))

    def available(self, prop: str) -> bool:
        """Whether the collection measured this property for at least one clip."""
        p = PROPERTIES[prop]
        values = self.p_female if p.kind == "gender" else self.columns.get(p.column)
        return values is not None and bool(np.isfinite(values).any())

    def _pitch_quantile(self, gender: str | None) -> np.ndarray:
        column = PROPERTIES["pitch"].column
        if gender is None:
            return self.quantile[column]
        key = (column, gender)
        if key not in self._within:
            values = self.columns[column]
            group = self.p_female >= 0.5 if gender == "female" else self.p_female < 0.5
            q = np.full(len(values), np.nan)
            q[group] = _quantiles(values[group])
            # clips of the other gender: ranked against this gender's values, so their scores still
            # order them sensibly (a deep female voice is "low" among men only if it is that low)
            others = ~group & np.isfinite(values)
            if others.any() and group.any():
                ref = np.sort(values[group & np.isfinite(values)])
                if len(ref):
                    q[others] = np.searchsorted(ref, values[others]) / len(ref)
            self._within[key] = q
        return self._within[key]

    def scores(self, constraint: Constraint, gender: str | None = None) -> np.ndarray:
        """The constraint's score in [0, 1] for every clip (0.5 where the clip was not measured)."""
        p = PROPERTIES[constraint.property]
        if p.kind == "gender":
            s = self.p_female if constraint.target == "female" else 1.0 - self.p_female
        elif p.kind == "channel":
            bw = self.columns[p.column]
            tel = np.clip((WIDEBAND_HZ - bw) / (WIDEBAND_HZ - TELEPHONE_HZ), 0.0, 1.0)
            s = tel if constraint.target == "telephone" else 1.0 - tel
        elif p.kind == "whisper":
            voiced = self.columns[p.column]
            whisper = np.clip((SPOKEN_VOICED - voiced) / (SPOKEN_VOICED - WHISPER_VOICED), 0.0, 1.0)
            s = whisper if constraint.target == "whisper" else 1.0 - whisper
        else:
            q = self._pitch_quantile(gender) if p.name == "pitch" else self.quantile[p.column]
            if p.sign < 0:
                q = 1.0 - q
            if constraint.target == "mid":
                s = 1.0 - np.abs(2.0 * q - 1.0)
            else:
                s = q if constraint.target == "high" else 1.0 - q
                if constraint.very:
                    s = s * s
            if p.column in PITCHED:
                s = self._trust_pitch(np.asarray(s, np.float64))
        s = np.asarray(s, np.float64)
        return np.where(np.isfinite(s), s, 0.5)

    def _trust_pitch(self, s: np.ndarray) -> np.ndarray:
        """A whisper has no pitch: the F0 a tracker reports for one is a stray reading (on whispered
        synthetic voices Praat returns about 540 Hz), so a pitch or intonation score counts only as
        far as the clip is voiced speech and slides to 0.5, "not measured", as it becomes a whisper."""
        voiced = self.columns.get(PROPERTIES["whisper"].column)
        if voiced is None:
            return s
        whisper = np.clip((SPOKEN_VOICED - voiced) / (SPOKEN_VOICED - WHISPER_VOICED), 0.0, 1.0)
        whisper = np.where(np.isfinite(whisper), whisper, 0.0)
        return (1.0 - whisper) * s + whisper * 0.5


def _floats(values: Any) -> np.ndarray:
    arr = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan) if np.ma.isMaskedArray(values) else values
    return np.asarray([np.nan if v is None else float(v) for v in arr], np.float64) if arr.dtype == object \
        else np.asarray(arr, np.float64)


def _texts(values: Any, n: int) -> list[str | None]:
    if values is None:
        return [None] * n
    if np.ma.isMaskedArray(values):
        values = values.filled(None) if values.dtype == object else values.astype(object).filled(None)
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip().lower() for v in values]


def _female_probability(rows: Mapping[str, Any], n: int) -> np.ndarray:
    """P(female) per clip: a manifest gender label ('female'/'male') is certain; otherwise the estimate
    from the speaker vector with its probability; NaN when neither exists."""
    labels = _texts(rows.get(GENDER_LABEL_COLUMN), n)
    est = _texts(rows.get("m_gender_est"), n)
    prob = _floats(rows["m_gender_prob"]) if "m_gender_prob" in rows else np.full(n, np.nan)
    out = np.full(n, np.nan)
    for i in range(n):
        if labels[i] in ("female", "male"):
            out[i] = 1.0 if labels[i] == "female" else 0.0
        elif est[i] in ("female", "male"):
            p = prob[i] if np.isfinite(prob[i]) else 1.0
            out[i] = p if est[i] == "female" else 1.0 - p
    return out


# ------------------------------------------------------------------------------------- fusion
@dataclass
class Reranker:
    """Soft constraints for one query, ready to join a ranking (`Searcher.search_vector` calls it)."""

    table: AttributeTable
    constraints: list[Constraint]
    gender: str | None
    weight: float = WEIGHT

    def __post_init__(self) -> None:
        self._score = np.zeros(len(self.table.ids))
        for c in self.constraints:
            self._score += self.table.scores(c, self.gender if c.property == "pitch" else None)
        self._n = len(self.constraints)

    def constraint_scores(self, ids: Sequence[int]) -> np.ndarray:
        """Sum over constraints of each clip's score (clips the table does not hold score 0.5 each)."""
        ids = np.asarray(ids, np.int64)
        at = np.searchsorted(self.table.ids, ids)
        at = np.minimum(at, max(len(self.table.ids) - 1, 0))
        known = (self.table.ids[at] == ids) if len(self.table.ids) else np.zeros(len(ids), bool)
        return np.where(known, self._score[at] if len(self._score) else 0.0, 0.5 * self._n)

    def candidates(self, n: int, allowed: np.ndarray | None, excluded: set[int]) -> list[int]:
        """The `n` clips the constraints favour most among those allowed (ties: lower id first)."""
        ids, score = self.table.ids, self._score
        keep = np.ones(len(ids), bool)
        if allowed is not None:
            keep &= np.isin(ids, allowed)
        if excluded:
            keep &= ~np.isin(ids, np.fromiter(excluded, np.int64))
        ids, score = ids[keep], score[keep]
        if len(ids) > n:
            top = np.argpartition(-score, n - 1)[:n]
            ids, score = ids[top], score[top]
        order = np.lexsort((ids, -score))
        return ids[order].tolist()

    def fuse(self, fused: Mapping[int, float]) -> dict[int, float]:
        """final = model + weight * sigma * sum_i (s_i - 1), sigma the spread of the model's scores here."""
        if not fused or not self._n:
            return dict(fused)
        ids = list(fused)
        model = np.array([fused[c] for c in ids], np.float64)
        sigma = float(model.std()) if len(model) > 1 else 0.0
        sigma = sigma if sigma > 1e-9 else 1.0
        penalty = self.weight * sigma * (self.constraint_scores(ids) - self._n)
        return {c: float(m + p) for c, m, p in zip(ids, model, penalty, strict=True)}


@dataclass
class Understanding:
    """What a query was understood to ask, for the response: the constraints applied (and dropped),
    the words no measured attribute covers, and the reranker that applies them."""

    constraints: list[Constraint]
    dropped: list[Constraint]
    unavailable: list[Constraint]  # understood, but this collection has no measurement for it
    uncovered: list[Uncovered]
    gender: str | None
    reranker: Reranker | None

    def understood_dicts(self) -> list[dict[str, Any]]:
        out = []
        for c in self.constraints:
            out.append(_constraint_dict(c, self.gender, "applied"))
        out += [_constraint_dict(c, self.gender, "dropped") for c in self.dropped]
        out += [_constraint_dict(c, self.gender, "not measured in this collection") for c in self.unavailable]
        return out

    def uncovered_dicts(self) -> list[dict[str, Any]]:
        return [{"words": u.words, "property": u.property} for u in self.uncovered]


def _constraint_dict(c: Constraint, gender: str | None, status: str) -> dict[str, Any]:
    p = PROPERTIES[c.property]
    return {"key": c.key, "property": c.property, "target": c.target, "very": c.very, "words": c.words,
            "label": c.label(gender if c.property == "pitch" else None), "column": p.column, "status": status}


def understand(query: str, table: AttributeTable | None, drop: Iterable[str] = (), weight: float = WEIGHT) -> Understanding:
    """Parse `query` and build the reranker over `table` (None: the collection measured nothing).
    `drop` holds constraint keys the user removed ("gender:male"); they are reported, not applied."""
    parsed = parse(query)
    drop = {d.strip().lower() for d in drop}
    applied, dropped, unavailable = [], [], []
    for c in parsed.constraints:
        if c.key in drop:
            dropped.append(c)
        elif table is None or not table.available(c.property):
            unavailable.append(c)
        else:
            applied.append(c)
    genders = {c.target for c in applied if c.property == "gender"}
    gender = genders.pop() if len(genders) == 1 else None
    reranker = Reranker(table, applied, gender, weight) if applied and table is not None else None
    return Understanding(applied, dropped, unavailable, parsed.uncovered, gender, reranker)


__all__ = [
    "AttributeTable",
    "Constraint",
    "DEFAULT_UNDERSTAND",
    "EMOTION_WORDS",
    "PROPERTIES",
    "Parsed",
    "Reranker",
    "SYNONYMS",
    "UNMEASURED",
    "Uncovered",
    "Understanding",
    "WEIGHT",
    "parse",
    "understand",
    "vocabulary",
]
