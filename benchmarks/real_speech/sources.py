"""The real recordings the development set is made of: which files, whose voices, under what licence.

Each corpus names the repository and commit its audio is read from, the file that gives each
speaker's gender (and age, accent, transcript where the source has them), its licence, and its
recording condition. Labels come only from the sources' own metadata files or corpus documentation
(VCC 2016 names encode gender, LJ Speech is one woman), never from our listening or from a model,
because the set is used to measure gender and speaker retrieval.

One published correction is applied: LibriTTS-P (Kawamura et al., 2024, CC BY 4.0) had three
annotators each describe every LibriSpeech reader's voice, "masculine" or "feminine" among the tags.
Where all three heard the gender opposite to LibriSpeech's SPEAKERS.TXT, the reader is labelled as
they heard it and the row says so (`gender_source`); readers LibriTTS-P found to hold voices of both
genders under one id are left out. The rule takes the strictest form (all three annotators) and is
applied to every reader alike, before any clip is chosen. 25 of 2,484 readers change, among them 1688 (test-other)
of this set and 322 (train-clean-100) of the pool.

Not used, on purpose: RAVDESS, SAVEE, TESS and EMO-DB (held out for testing), and recordings whose
rights or labels are unclear (interview and speech excerpts cut from online videos).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.real_speech.repos import Repo, RepoStore

RESEMBLYZER = Repo("resemble-ai/Resemblyzer", "15d828edebe06bc72b9cabc8ef8ca5ab2cb457ce")
DEEP_SPEAKER = Repo("philipperemy/deep-speaker", "c9aaaf038513742283579c796cc0a6310a98ada0")
AUTOVC = Repo("auspicious3000/autovc", "c1827a60e83e6d26030b8953843b2f7cf2bd36db")
AGAIN_VC = Repo("KimythAnly/AGAIN-VC", "dbf94bf55882f897c312c7760cd892c51c93c9ab")
SPROCKET = Repo("k2kobayashi/sprocket", "cab2e150686fbad87ba15959ca8741d709556943")
PYROOMACOUSTICS = Repo("LCAV/pyroomacoustics", "6fe43fecb7c358ac9aaa054e7e73641189f1afff")
COQUI_TTS = Repo("coqui-ai/TTS", "dbf1a08a0d4e47fdad6172e433eeb34bc6b13b4e")
LIBRITTS_P = Repo("line/LibriTTS-P", "e79ba689898057ee9ea0986588a7950ef963d9d7")

#: LibriTTS-P's speaker prompts, one file per annotator, and its list of ids holding both genders.
LIBRITTS_P_ANNOTATORS = ("data/df1_en.csv", "data/df2_en.csv", "data/df3_en.csv")
LIBRITTS_P_MIXED = "data/excluded_spk_list.txt"

LIBRISPEECH_LICENCE = "CC BY 4.0 (LibriSpeech, V. Panayotov et al.)"
VCTK_LICENCE = "CC BY 4.0 (CSTR VCTK Corpus; the 0.80 release these files come from was ODC-By 1.0)"
VCC2016_LICENCE = ("non-commercial research use (VCC 2016 database, University of Edinburgh DataShare; "
                   "its recordings come from DAPS, CC BY-NC 4.0)")
ARCTIC_LICENCE = "CMU ARCTIC licence: free use, modification and redistribution with the copyright notice (BSD-style)"
LJSPEECH_LICENCE = "Public domain (LJ Speech Dataset, K. Ito and L. Johnson)"

#: Background noise mixed into the "noisy" condition: a real kitchen recording from Google's Speech
#: Commands data set (`_background_noise_/doing_the_dishes.wav`, CC BY 4.0), shipped by pyroomacoustics.
NOISE = (PYROOMACOUSTICS, "examples/input_samples/doing_the_dishes.wav",
         "CC BY 4.0 (Speech Commands background noise, Google)")


# --- metadata parsers (pure: text in, dicts out) -------------------------------------------------

def normalise_gender(value: str) -> str:
    """'F'/'female'/'M'/'male' (any case) as 'female' or 'male'; anything else is an error."""
    v = value.strip().lower()
    if v in {"f", "female"}:
        return "female"
    if v in {"m", "male"}:
        return "male"
    raise ValueError(f"unknown gender label {value!r}")


def parse_librispeech_speakers(text: str) -> dict[str, dict[str, str]]:
    """LibriSpeech SPEAKERS.TXT (`ID | SEX | SUBSET | MINUTES | NAME`, ';' comments) -> id -> labels.

    Names may themselves contain '|', so only the first four fields are split off.
    """
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        parts = [p.strip() for p in line.split("|", 4)]
        if len(parts) < 3 or not parts[0].isdigit():
            raise ValueError(f"not a SPEAKERS.TXT line: {line!r}")
        out[parts[0]] = {"gender": normalise_gender(parts[1]), "subset": parts[2]}
    return out


def parse_librittsp_heard_gender(text: str) -> dict[str, str | None]:
    """One LibriTTS-P annotator's speaker prompts (`ID|tag,tag,...`) -> id -> the gender heard.

    A tag is a word with optional degree ("very masculine", "slightly feminine"). 'male' or 'female'
    where the annotator used only masculine or only feminine tags; None where neither (e.g. only
    "gender-neutral") or both.
    """
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        sid, sep, tags = line.strip().partition("|")
        if not sep or not sid.isdigit():
            raise ValueError(f"not a LibriTTS-P speaker prompt line: {line!r}")
        heard = {{"masculine": "male", "feminine": "female"}.get(t.split()[-1]) for t in tags.split(",") if t.strip()}
        heard.discard(None)
        out[sid] = heard.pop() if len(heard) == 1 else None
    return out


def correct_librispeech_genders(speakers: dict[str, dict[str, str]], heard: list[dict[str, str | None]],
                                mixed: set[str]) -> dict[str, dict[str, str]]:
    """SPEAKERS.TXT labels with LibriTTS-P's correction: a reader every annotator heard as the other
    gender takes that gender (and `gender_source` says why); a reader in `mixed` is left out."""
    out = {}
    for sid, info in speakers.items():
        if sid in mixed:
            continue
        votes = [h.get(sid) for h in heard]
        other = "female" if info["gender"] == "male" else "male"
        if heard and all(v == other for v in votes):
            info = {**info, "gender": other,
                    "gender_source": f"LibriTTS-P: all {len(votes)} annotators heard {other}; "
                                     f"SPEAKERS.TXT says {info['gender']}"}
        out[sid] = info
    return out


def parse_librispeech_transcripts(text: str) -> dict[str, str]:
    """A LibriSpeech `*.trans.txt` (`UTTERANCE-ID WORDS...`) -> utterance id -> transcript."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            utt, _, words = line.strip().partition(" ")
            out[utt] = words.strip()
    return out


def parse_vctk_speaker_info(text: str) -> dict[str, dict[str, Any]]:
    """VCTK speaker-info.txt (`ID AGE GENDER ACCENTS REGION`, whitespace-separated) -> 'p225' -> labels.

    The region may hold spaces ('Southern  England') or be missing; ids are written with or without 'p'.
    """
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].upper() == "ID":
            continue
        if len(fields) < 4:
            raise ValueError(f"not a speaker-info line: {line!r}")
        sid = fields[0] if fields[0].startswith("p") else f"p{fields[0]}"
        out[sid] = {
            "age": int(fields[1]),
            "gender": normalise_gender(fields[2]),
            "accent": fields[3],
            "region": " ".join(fields[4:]) or None,
        }
    return out


def parse_cmu_arctic_speakers(python_source: str) -> dict[str, dict[str, str]]:
    """The `cmu_arctic_speakers = {...}` table of pyroomacoustics' CMU ARCTIC loader -> code -> labels.

    Read as a literal from the module's source (never imported or executed).
    """
    for node in ast.parse(python_source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "cmu_arctic_speakers"):
            table = ast.literal_eval(node.value)
            return {code: {"gender": normalise_gender(info["sex"]), "accent": info["accent"]}
                    for code, info in table.items()}
    raise ValueError("no cmu_arctic_speakers table in this source")


def parse_ljspeech_metadata(text: str) -> dict[str, str]:
    """LJ Speech metadata.csv (`ID|TEXT|NORMALISED TEXT`) -> id -> normalised transcript."""
    out = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0].strip():
            out[parts[0].strip()] = (parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]).strip()
    return out


def vcc2016_gender(speaker: str) -> str:
    """VCC 2016 speaker names encode gender: S/T (source/target) then F/M (female/male), e.g. 'SF1'."""
    if not re.fullmatch(r"[ST][FM]\d", speaker):
        raise ValueError(f"not a VCC 2016 speaker name: {speaker!r}")
    return normalise_gender(speaker[1])


# --- corpora -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One recording that may go into the set, with its speaker's labels."""

    clip_id: str
    speaker: str
    gender: str
    repo: Repo
    path: str
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Corpus:
    """A group of recordings with one licence and recording condition, and how many to take."""

    key: str
    name: str
    licence: str
    condition: str
    condition_detail: str
    candidates: Callable[[RepoStore], list[Candidate]]
    clean_per_speaker: int
    #: Further recordings per speaker for each simulated channel (telephone, noisy, reverberant).
    derived_per_speaker: int = 0
    #: At most this many speakers of each gender (None: all).
    speakers_per_gender: int | None = None
    min_seconds: float = 1.5
    max_seconds: float = 15.5


def _audio(files: list[tuple[str, str]], *suffixes: str) -> list[str]:
    return [p for p, _ in files if p.lower().endswith(suffixes)]


def _utt(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _librispeech_speakers(store: RepoStore) -> dict[str, dict[str, str]]:
    """LibriSpeech readers' labels, with LibriTTS-P's listener correction (see the module's docstring)."""
    speakers = parse_librispeech_speakers(
        store.read_text(RESEMBLYZER, "audio_data/librispeech_train-clean-100/SPEAKERS.TXT"))
    heard = [parse_librittsp_heard_gender(store.read_text(LIBRITTS_P, path)) for path in LIBRITTS_P_ANNOTATORS]
    mixed = set(store.read_text(LIBRITTS_P, LIBRITTS_P_MIXED).split())
    return correct_librispeech_genders(speakers, heard, mixed)


def _librispeech_labels(info: dict[str, str], **labels: Any) -> dict[str, Any]:
    """A reader's candidate labels: the given ones, and where its gender label came from if corrected."""
    return {**labels, "gender_source": info.get("gender_source")}


def librispeech_test_other(store: RepoStore) -> list[Candidate]:
    """LibriSpeech test-other, 10 readers x 10 utterances (Resemblyzer's demo data)."""
    speakers = _librispeech_speakers(store)
    out = []
    for path in _audio(store.list(RESEMBLYZER, "audio_data/librispeech_test-other"), ".flac"):
        utt = _utt(path)
        spk = utt.split("-")[0]
        if spk in speakers:
            out.append(Candidate(f"ls-{utt}", f"librispeech-{spk}", speakers[spk]["gender"], RESEMBLYZER, path,
                                 _librispeech_labels(speakers[spk], subset="test-other")))
    return out


#: LibriSpeech readers already present with several utterances; the one-utterance set skips them.
_LS_MULTI = {"19", "26", "27", "367", "533", "1688", "1998", "2033", "2414", "2609", "3005", "3080", "3331"}


def librispeech_train_clean(store: RepoStore) -> list[Candidate]:
    """LibriSpeech train-clean-100, three readers with many utterances and transcripts (deep-speaker's samples)."""
    speakers = _librispeech_speakers(store)
    files = store.list(DEEP_SPEAKER, "audio/LibriSpeechSamples/train-clean-100")
    transcripts: dict[str, str] = {}
    for path in (p for p, _ in files if p.endswith(".trans.txt")):
        transcripts.update(parse_librispeech_transcripts(store.read_text(DEEP_SPEAKER, path)))
    out = []
    for path in _audio(files, ".flac"):
        utt = _utt(path)
        spk = utt.split("-")[0]
        if spk in speakers:
            out.append(Candidate(f"ls-{utt}", f"librispeech-{spk}", speakers[spk]["gender"], DEEP_SPEAKER, path,
                                 _librispeech_labels(speakers[spk], transcript=transcripts.get(utt),
                                                     subset="train-clean-100")))
    return out


def librispeech_one_each(store: RepoStore) -> list[Candidate]:
    """LibriSpeech train-clean-100, one utterance from each of 251 readers (Resemblyzer's demo data).

    Used for a gender-balanced handful of further voices: distractors for speaker retrieval and more
    speakers for gender accuracy.
    """
    speakers = _librispeech_speakers(store)
    out = []
    for path in _audio(store.list(RESEMBLYZER, "audio_data/librispeech_train-clean-100"), ".flac"):
        utt = _utt(path)
        spk = utt.split("-")[0]
        if spk in _LS_MULTI or spk not in speakers:
            continue
        out.append(Candidate(f"ls-{utt}", f"librispeech-{spk}", speakers[spk]["gender"], RESEMBLYZER, path,
                             _librispeech_labels(speakers[spk], subset="train-clean-100")))
    return sorted(out, key=lambda c: int(c.speaker.split("-")[1]))


def vctk(store: RepoStore) -> list[Candidate]:
    """VCTK speakers p225-p228, the union of autovc's and AGAIN-VC's samples (first copy of each utterance)."""
    info = parse_vctk_speaker_info(store.read_text(AGAIN_VC, "data/speaker-info.txt"))
    seen: dict[str, Candidate] = {}
    for repo, prefix in ((AGAIN_VC, "data/wav48"), (AUTOVC, "wavs")):
        for path in _audio(store.list(repo, prefix), ".wav"):
            utt = _utt(path)
            spk = utt.split("_")[0]
            if utt in seen:
                continue
            labels = {k: info[spk][k] for k in ("age", "accent", "region")}
            seen[utt] = Candidate(f"vctk-{utt}", f"vctk-{spk}", info[spk]["gender"], repo, path, labels)
    return sorted(seen.values(), key=lambda c: c.clip_id)


def vcc2016(store: RepoStore) -> list[Candidate]:
    """Voice Conversion Challenge 2016 speakers SF1, SM1, TF1, TM1, 35 utterances each (sprocket's example data)."""
    out = []
    for path in _audio(store.list(SPROCKET, "example/data/wav"), ".wav"):
        spk = path.split("/")[-2]
        out.append(Candidate(f"vcc2016-{spk}-{_utt(path)}", f"vcc2016-{spk}", vcc2016_gender(spk), SPROCKET, path))
    return out


def cmu_arctic(store: RepoStore) -> list[Candidate]:
    """CMU ARCTIC speakers aew and axb, three utterances each (pyroomacoustics' test samples)."""
    info = parse_cmu_arctic_speakers(store.read_text(PYROOMACOUSTICS, "pyroomacoustics/datasets/cmu_arctic.py"))
    out = []
    for path in _audio(store.list(PYROOMACOUSTICS, "examples/input_samples"), ".wav"):
        m = re.fullmatch(r"cmu_arctic_us_([a-z]{3})_(a\d{4})", _utt(path))
        if m:
            spk = m.group(1)
            out.append(Candidate(f"arctic-{spk}-{m.group(2)}", f"arctic-{spk}", info[spk]["gender"],
                                 PYROOMACOUSTICS, path, {"accent": info[spk]["accent"]}))
    return out


def ljspeech(store: RepoStore) -> list[Candidate]:
    """LJ Speech (one female reader), the clips Coqui TTS ships as test data."""
    transcripts = parse_ljspeech_metadata(store.read_text(COQUI_TTS, "tests/data/ljspeech/metadata.csv"))
    out = []
    for path in _audio(store.list(COQUI_TTS, "tests/data/ljspeech/wavs"), ".wav"):
        utt = _utt(path)
        # LJ Speech is one female reader by the corpus's own description; its files carry no labels.
        out.append(Candidate(f"lj-{utt}", "ljspeech-LJ", "female", COQUI_TTS, path,
                             {"transcript": transcripts.get(utt)}))
    return out


CORPORA: tuple[Corpus, ...] = (
    Corpus("librispeech-test-other", "LibriSpeech test-other", LIBRISPEECH_LICENCE, "audiobook-other",
           "LibriVox volunteers reading at home; the 'other' split, harder for recognisers (noisier, more accented)",
           librispeech_test_other, clean_per_speaker=10),
    Corpus("librispeech-train-clean", "LibriSpeech train-clean-100", LIBRISPEECH_LICENCE, "audiobook",
           "LibriVox volunteers reading at home; the 'clean' split",
           librispeech_train_clean, clean_per_speaker=8, derived_per_speaker=4),
    Corpus("librispeech-one-each", "LibriSpeech train-clean-100 (one utterance per reader)", LIBRISPEECH_LICENCE,
           "audiobook", "LibriVox volunteers reading at home; the 'clean' split",
           librispeech_one_each, clean_per_speaker=1, speakers_per_gender=10, min_seconds=2.0),
    Corpus("vctk", "CSTR VCTK", VCTK_LICENCE, "studio",
           "read sentences (newspaper, rainbow passage), hemi-anechoic chamber, close microphone",
           vctk, clean_per_speaker=12),
    Corpus("vcc2016", "Voice Conversion Challenge 2016", VCC2016_LICENCE, "studio",
           "speakers reading the same sentences in a studio",
           vcc2016, clean_per_speaker=10, derived_per_speaker=4),
    Corpus("cmu-arctic", "CMU ARCTIC", ARCTIC_LICENCE, "studio",
           "phonetically balanced sentences read in a sound-proof room", cmu_arctic, clean_per_speaker=3),
    Corpus("ljspeech", "LJ Speech", LJSPEECH_LICENCE, "audiobook",
           "one reader of LibriVox non-fiction, recorded at home", ljspeech, clean_per_speaker=10),
)
