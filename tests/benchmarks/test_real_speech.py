"""The real-speech set builder: metadata parsers, clip selection, simulated channels, and a whole build
from a local git repository (so no network and no third-party audio are needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.real_speech import build as builder
from benchmarks.real_speech import conditions
from benchmarks.real_speech.repos import Repo, RepoStore, SourceUnavailable
from benchmarks.real_speech.sources import (
    Candidate,
    Corpus,
    correct_librispeech_genders,
    normalise_gender,
    parse_cmu_arctic_speakers,
    parse_librispeech_speakers,
    parse_librispeech_transcripts,
    parse_librittsp_heard_gender,
    parse_ljspeech_metadata,
    parse_vctk_speaker_info,
    vcc2016_gender,
)

SR = 16_000


def test_librispeech_speakers_both_layouts_and_names_with_pipes():
    text = (
        "; comment\n;ID  |SEX| SUBSET           |MINUTES| NAME\n"
        "14   | F | train-clean-360  | 25.03 | Kristin LeMoine\n\n"
        "60|M|train-clean-100|20.18||CBW|Simon\n"
    )
    assert parse_librispeech_speakers(text) == {
        "14": {"gender": "female", "subset": "train-clean-360"},
        "60": {"gender": "male", "subset": "train-clean-100"},
    }
    with pytest.raises(ValueError, match="SPEAKERS.TXT"):
        parse_librispeech_speakers("not a line\n")
    with pytest.raises(ValueError, match="gender"):
        parse_librispeech_speakers("14 | X | train | 1 | n\n")


def test_librittsp_prompts_give_the_gender_each_annotator_heard():
    text = ("1688|feminine,adult-like,slightly dark\n"
            "3370|very masculine,slightly thick\n"
            "7335|slightly feminine,gender-neutral,tensed\n"
            "8625|slightly gender-neutral,adult-like,calm\n"
            "9|masculine,slightly feminine\n\n")
    assert parse_librittsp_heard_gender(text) == {
        "1688": "female", "3370": "male", "7335": "female", "8625": None, "9": None}
    with pytest.raises(ValueError, match="LibriTTS-P"):
        parse_librittsp_heard_gender("feminine,calm\n")


def test_a_librispeech_label_changes_only_when_every_annotator_heard_the_other_gender():
    speakers = {sid: {"gender": g, "subset": "test-other"} for sid, g in
                (("1", "male"), ("2", "male"), ("3", "male"), ("4", "female"), ("5", "female"), ("6", "male"))}
    heard = [{"1": "female", "2": "female", "3": "male", "4": "male", "5": None},
             {"1": "female", "2": "female", "3": "female", "4": "male", "5": "male"},
             {"1": "female", "2": None, "3": "female", "4": "male", "5": "male"}]
    out = correct_librispeech_genders(speakers, heard, mixed={"6"})
    assert out["1"] == {"gender": "female", "subset": "test-other",
                        "gender_source": "LibriTTS-P: all 3 annotators heard female; SPEAKERS.TXT says male"}
    assert out["4"]["gender"] == "male" and "SPEAKERS.TXT says female" in out["4"]["gender_source"]
    for sid in ("2", "3", "5"):  # one annotator unsure, split, or unannotated: SPEAKERS.TXT stands
        assert out[sid] == speakers[sid]
    assert "6" not in out  # one id, voices of both genders: left out
    assert correct_librispeech_genders(speakers, [], set()) == speakers


def test_vctk_speaker_info_regions_with_spaces_missing_and_bare_ids():
    text = "ID  AGE  GENDER  ACCENTS  REGION  \n225  23  F    English    Southern  England\np280  25  F  French\n"
    assert parse_vctk_speaker_info(text) == {
        "p225": {"age": 23, "gender": "female", "accent": "English", "region": "Southern England"},
        "p280": {"age": 25, "gender": "female", "accent": "French", "region": None},
    }


def test_cmu_arctic_table_is_read_as_a_literal_not_executed():
    source = (
        "import os\nos.remove('never')\n"
        'cmu_arctic_speakers = {\n    "aew": {"sex": "male", "lang": "US English", "accent": "US"},\n'
        '    "axb": {"sex": "female", "lang": "US English", "accent": "Indian"},\n}\n'
    )
    assert parse_cmu_arctic_speakers(source) == {
        "aew": {"gender": "male", "accent": "US"},
        "axb": {"gender": "female", "accent": "Indian"},
    }
    with pytest.raises(ValueError, match="cmu_arctic_speakers"):
        parse_cmu_arctic_speakers("speakers = {}\n")


def test_transcripts_and_names():
    assert parse_librispeech_transcripts("19-198-0000 NORTHANGER ABBEY\n\n19-198-0001 THIS LITTLE WORK\n") == {
        "19-198-0000": "NORTHANGER ABBEY", "19-198-0001": "THIS LITTLE WORK"}
    assert parse_ljspeech_metadata("LJ001-0001|Printing, in 1 sense|Printing, in one sense\nLJ001-0002|modern.\n") == {
        "LJ001-0001": "Printing, in one sense", "LJ001-0002": "modern."}
    assert [vcc2016_gender(s) for s in ("SF1", "SM2", "TF1", "TM3")] == ["female", "male", "female", "male"]
    with pytest.raises(ValueError):
        vcc2016_gender("XF1")
    assert normalise_gender(" Female ") == "female"
    with pytest.raises(ValueError):
        normalise_gender("unknown")


def _corpus(**kw) -> Corpus:
    defaults = dict(key="t", name="Test", licence="CC0", condition="studio", condition_detail="",
                    candidates=lambda store: [], clean_per_speaker=2)
    return Corpus(**{**defaults, **kw})


def _cands(speaker: str, gender: str, n: int) -> list[Candidate]:
    repo = Repo("o/n", "0" * 40)
    return [Candidate(f"{speaker}-{i}", speaker, gender, repo, f"{speaker}/{i}.wav") for i in range(n)]


def test_select_skips_out_of_range_and_gives_each_channel_distinct_utterances():
    cands = _cands("a", "female", 12)
    seconds = {c.clip_id: 3.0 for c in cands} | {"a-0": 0.5, "a-3": 30.0}
    chosen = builder.select(_corpus(clean_per_speaker=2, derived_per_speaker=2), cands, seconds)
    assert [(p.candidate.clip_id, p.condition) for p in chosen] == [
        ("a-1", None), ("a-2", None), ("a-4", "telephone"), ("a-5", "telephone"),
        ("a-6", "noisy"), ("a-7", "noisy"), ("a-8", "reverberant"), ("a-9", "reverberant")]
    assert len({p.clip_id for p in chosen}) == len(chosen)


def test_select_caps_speakers_per_gender_in_candidate_order():
    cands = [*_cands("m1", "male", 1), *_cands("f1", "female", 1), *_cands("m2", "male", 1),
             *_cands("f2", "female", 1), *_cands("m3", "male", 1)]
    seconds = {c.clip_id: 3.0 for c in cands} | {"m1-0": 0.2}  # m1 has nothing usable: it does not count
    chosen = builder.select(_corpus(clean_per_speaker=1, speakers_per_gender=1), cands, seconds)
    assert [p.candidate.speaker for p in chosen] == ["f1", "m2"]


def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((mixed - clean).astype(np.float64) ** 2)))


def test_channels_do_what_they_say():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(SR * 2)).astype(np.float32)  # broadband, so band limits show
    tel, params = conditions.telephone(x)
    spectrum = np.abs(np.fft.rfft(tel)) ** 2
    freqs = np.fft.rfftfreq(len(tel), 1 / SR)
    assert len(tel) == len(x) and "mu-law" in params["derivation"]
    assert spectrum[freqs > 4000].sum() < 1e-3 * spectrum.sum()
    assert spectrum[freqs < 200].sum() < 1e-2 * spectrum.sum()

    noise = np.sin(np.arange(SR * 3) * 0.05).astype(np.float32)
    noisy, params = conditions.add_noise(x, noise, np.random.default_rng(1), snr_db=(6.0, 6.0))
    assert params["snr_db"] == 6.0 and abs(_snr_db(x, noisy) - 6.0) < 0.01

    wet, params = conditions.reverberate(x, np.random.default_rng(2), rt60_range=(0.8, 0.8), drr_range=(-3, -3))
    assert len(wet) == len(x) + SR // 2 and params["rt60_s"] == 0.8
    assert np.sqrt(np.mean(wet[: len(x)] ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-3)
    assert np.abs(wet[len(x) + SR // 10:]).max() > 0  # the room rings on after the speech

    loud = np.full(SR, 0.98, dtype=np.float32)
    y, _ = conditions.apply("noisy", loud, np.random.default_rng(3), noise)
    assert np.abs(y).max() <= 0.99
    a, _ = conditions.apply("reverberant", x, np.random.default_rng(4))
    b, _ = conditions.apply("reverberant", x, np.random.default_rng(4))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="noise"):
        conditions.apply("noisy", x, rng)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, Repo]:
    """A mirror folder holding `owner+voices`: a git repository of generated tones in three layouts."""
    work = tmp_path / "mirror" / "owner+voices"
    (work / "wav" / "f1").mkdir(parents=True)
    (work / "wav" / "m1").mkdir(parents=True)
    t = np.arange(int(2.5 * 44_100)) / 44_100
    for i in range(4):
        sf.write(work / "wav" / "f1" / f"f1_{i}.wav", 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t), 44_100)
        stereo = np.stack([0.2 * np.sin(2 * np.pi * 110 * t)] * 2, axis=1)
        sf.write(work / "wav" / "m1" / f"m1_{i}.flac", stereo, 44_100)
    sf.write(work / "noise.wav", 0.05 * np.random.default_rng(0).standard_normal(SR * 5), SR)
    _git(work, "init", "-q")
    _git(work, "add", ".")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tones")
    _git(work, "config", "uploadpack.allowReachableSHA1InWant", "true")  # as GitHub allows fetching a commit
    return tmp_path / "mirror", Repo("owner/voices", _git(work, "rev-parse", "HEAD"))


def test_repo_store_reads_a_mirror_and_says_what_to_do_when_a_repo_is_missing(mirror, tmp_path):
    root, repo = mirror
    store = RepoStore([root], tmp_path / "cache", allow_network=False)
    listed = store.list(repo, "wav/f1")
    assert [p for p, _ in listed] == [f"wav/f1/f1_{i}.wav" for i in range(4)]
    assert store.read(repo, "wav/f1/f1_0.wav")[:4] == b"RIFF"
    missing = Repo("owner/absent", "1" * 40)
    with pytest.raises(SourceUnavailable, match="--mirror DIR"):
        store.list(missing, "x")
    with pytest.raises(SourceUnavailable, match="cannot read"):
        store.read(repo, "no/such/file.wav")


def test_repo_store_clones_the_pinned_commit_once_when_no_mirror_has_it(mirror, tmp_path, monkeypatch):
    root, repo = mirror
    monkeypatch.setattr(Repo, "url", property(lambda self: (root / self.folder).as_uri()))
    store = RepoStore([], tmp_path / "cache", allow_network=True)
    assert len(store.list(repo, "wav")) == 8
    assert store.git_dir(repo) == tmp_path / "cache" / "owner+voices.git"
    assert store.read(repo, "noise.wav")[:4] == b"RIFF"
    offline = RepoStore([], tmp_path / "cache", allow_network=False)  # the clone now serves offline builds
    assert len(offline.list(repo, "wav/m1")) == 4
    with pytest.raises(SourceUnavailable, match="cannot fetch owner/voices@"):
        RepoStore([], tmp_path / "cache2").list(Repo("owner/voices", "2" * 40), "wav")


def test_build_writes_16k_mono_clips_manifest_readme_and_resumes(mirror, tmp_path, monkeypatch):
    root, repo = mirror
    store = RepoStore([root], tmp_path / "cache", allow_network=False)

    def candidates(store: RepoStore) -> list[Candidate]:
        out = []
        for path, _ in store.list(repo, "wav"):
            spk = path.split("/")[1]
            out.append(Candidate(f"t-{Path(path).stem}", f"t-{spk}", "female" if spk == "f1" else "male", repo, path,
                                 {"accent": "Test", "age": None,
                                  "gender_source": "heard as male" if spk == "m1" else None}))
        return out

    corpus = _corpus(candidates=candidates, clean_per_speaker=2, derived_per_speaker=0)
    derived = _corpus(key="d", name="Derived", candidates=candidates, clean_per_speaker=0, derived_per_speaker=1)
    monkeypatch.setattr(builder, "NOISE", (repo, "noise.wav", "CC0 (generated)"))
    out = tmp_path / "set"
    logs: list[str] = []
    with pytest.raises(ValueError, match="chosen twice"):  # both corpora would pick the same first utterances
        builder.build(out, store, "cmd", [corpus, _corpus(candidates=candidates)], log=logs.append)

    s = builder.build(out, store, "python -m benchmarks.real_speech build", [corpus, derived], log=logs.append)
    rows = [json.loads(line) for line in (out / builder.MANIFEST).read_text().splitlines()]
    assert s["clips"] == len(rows) == 4 + 6 and s["speakers"] == 2
    assert s["female_speakers"] == s["male_speakers"] == 1
    for r in rows:
        data, sr = sf.read(out / r["path"])
        assert sr == SR and data.ndim == 1 and r["duration"] == pytest.approx(len(data) / SR, abs=1e-3)
        assert r["origin"].startswith(f"github.com/owner/voices@{repo.commit}:wav/")
        assert "age" not in r and r["accent"] == "Test"
    noisy = next(r for r in rows if r["condition"] == "noisy")
    assert noisy["derived"] is True and noisy["derived_from"] == noisy["id"].removesuffix("-noisy")
    assert "snr_db" in noisy and noisy["noise_licence"] == "CC0 (generated)"
    readme = (out / builder.README).read_text()
    assert "10 clips" in readme and "python -m benchmarks.real_speech build" in readme
    assert "* t-m1: heard as male" in readme and "t-f1:" not in readme

    stale = out / builder.CLIPS / "t" / "old.wav"
    stale.write_bytes(b"")
    logs.clear()
    builder.build(out, store, "cmd", [corpus, derived], log=logs.append)
    assert "wrote 0 clips, reused 10" in logs and not stale.exists()
    assert [json.loads(line) for line in (out / builder.MANIFEST).read_text().splitlines()] == rows
    loaded = builder.load_manifest(out)
    assert all(Path(r["path"]).is_absolute() and Path(r["path"]).is_file() for r in loaded)
    with pytest.raises(FileNotFoundError, match="benchmarks.real_speech build"):
        builder.load_manifest(tmp_path / "nothing")
