"""Attributes through the indexer: typed columns, the speaker index, words, generated captions."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from indexer.pipeline import run_index
from searchengine import openvino_cpu
from searchengine.store import SPEAKER_KIND, Collection

from .conftest import expected_text_runtime

N_FILES = 8


@pytest.fixture(scope="module")
def bare_folder(corpus, tmp_path_factory):
    """A plain folder of audio: no manifest, so no captions, speakers or labels."""
    out = tmp_path_factory.mktemp("bare")
    for wav in sorted((corpus / "audio").glob("*.wav"))[:N_FILES]:
        shutil.copy(wav, out / wav.name)
    return out


@pytest.fixture(scope="module")
def described_run(bare_folder, encoder, tmp_path_factory):
    coll_dir = tmp_path_factory.mktemp("coll") / "c"
    summary = run_index(bare_folder, coll_dir, encoder, workers=1, progress=False, attributes=True)
    assert summary.files_added == N_FILES and summary.captions_generated == N_FILES
    return coll_dir, summary


@pytest.fixture(scope="module")
def described(described_run):
    return described_run[0]


def test_summary_says_where_the_time_went(described_run):
    """The workers' seconds per stage (decode and each measurement) are summed over the files and
    printed beside this process's speech, caption, writing and describing time."""
    _, summary = described_run
    assert set(summary.worker_seconds) == {"decode", "level", "pitch", "DNSMOS", "speaker"}
    assert all(v > 0 for v in summary.worker_seconds.values())
    # DNSMOS scores at least one 9 s window per clip, far more than decoding a few seconds of wav
    assert summary.worker_seconds["DNSMOS"] > summary.worker_seconds["decode"]
    assert summary.caption_seconds == 0  # a bare folder: no captions to embed while indexing
    assert summary.write_seconds > 0 and summary.describe_seconds > 0
    text = "\n".join(summary.lines())
    line = next(x for x in summary.lines() if "time in 1 worker process, s summed: " in x)
    stages = re.findall(r"(\w+) ([\d.]+)(?: \(([^)]*)\))?", line.split("summed: ")[1])
    assert {name for name, _, _ in stages} == set(summary.worker_seconds)
    seconds = [float(s) for _, s, _ in stages]
    assert seconds == sorted(seconds, reverse=True)  # largest stage first
    # how the networks ran, since that depends on the CPU: bf16 on OpenVINO with AMX, else fp32
    core = openvino_cpu.core()
    amx = core is not None and openvino_cpu.fast_bf16(core)
    expected = {"DNSMOS": "openvino bf16" if amx else "onnxruntime float32",
                "speaker": "openvino bf16" if amx else "torch float32"}
    assert summary.worker_runtimes == {name: {how} for name, how in expected.items()}
    assert {name: how for name, _, how in stages if how} == expected
    assert "time in this process, s: speech" in text and "describing" in text


def test_the_run_row_keeps_how_its_numbers_were_computed(described_run):
    """`runs.runtimes`: the networks of the measurements, the speech tower, and the text path that
    embedded the generated captions, as the summary saw them."""
    coll_dir, summary = described_run
    with Collection.open(coll_dir, read_only=True) as coll:
        stored = json.loads(coll.sql("SELECT runtimes FROM runs WHERE status = 'done'").fetchone()[0])
    assert stored == summary.runtimes()
    assert stored["speech"] == "torch cpu float32" and stored["captions"] == expected_text_runtime()
    assert {k: set(v) for k, v in stored.items() if k not in ("speech", "captions")} == summary.worker_runtimes


def test_attribute_columns_are_typed_and_filled(described):
    with Collection.open(described, read_only=True) as coll:
        types = dict(coll.sql("SELECT column_name, data_type FROM information_schema.columns"
                              " WHERE table_name = 'clips'").fetchall())
        for col in ("m_f0_median_hz", "m_rate_syl_per_s", "m_loudness_dbfs", "m_snr_db", "m_reverb_db",
                    "m_dnsmos_ovrl", "m_gender_prob"):
            assert types[col] == "DOUBLE"
        assert types["m_speaker_cluster"] == "BIGINT" and types["m_rate_word"] == "VARCHAR"
        n, loud, bak, gender = coll.sql("SELECT count(*), count(m_loudness_dbfs), count(m_dnsmos_bak),"
                                        " count(m_gender) FROM clips").fetchone()
        assert n == loud == bak == gender == N_FILES
        assert coll.sql("SELECT count(*) FROM clips WHERE m_dnsmos_ovrl BETWEEN 1 AND 5").fetchone()[0] == N_FILES


def test_generated_captions_are_indexed_and_marked(described, encoder):
    with Collection.open(described, read_only=True) as coll:
        caps = coll.sql("SELECT id, clip_id, text, generated FROM captions WHERE kind = 'global'").fetchall()
        assert len(caps) == N_FILES and all(g for *_, g in caps)
        assert coll.index("global").ntotal == N_FILES
        for cid, _clip_id, text, _ in caps:
            assert text.startswith("A ") and text.endswith(".")
            vec = np.asarray(encoder.encode_text([text]), np.float32)
            scores, hits = coll.search("global", vec, k=N_FILES)
            assert cid in set(hits[0][np.isclose(scores[0], scores[0][0], atol=1e-4)].tolist())
        info = json.loads((described / "collection.json").read_text())
        assert set(info["attribute_bins"]) >= {"rate", "noise", "reverb", "monotony", "pitch:female", "pitch:male"}


def test_speaker_index_holds_one_unit_vector_per_clip(described):
    with Collection.open(described, read_only=True) as coll:
        index = coll.index(SPEAKER_KIND)
        assert index.d == 256 and index.ntotal == N_FILES
        ids = sorted(coll.speaker_ids().tolist())
        assert ids == sorted(r[0] for r in coll.sql("SELECT id FROM clips").fetchall())
        v = coll.vectors(SPEAKER_KIND, ids[:1])
        scores, hits = coll.search(SPEAKER_KIND, v, k=1)
        assert hits[0][0] == ids[0] and abs(scores[0][0] - 1.0) < 1e-4


def test_rerun_keeps_generated_captions_and_deletion_drops_speaker_vectors(described, bare_folder, encoder):
    summary = run_index(bare_folder, described, encoder, workers=0, progress=False, attributes=True)
    assert summary.files_added == 0 and summary.captions_generated == 0
    victim = sorted(bare_folder.glob("*.wav"))[0]
    moved = victim.with_suffix(".bak")
    victim.rename(moved)
    try:
        run_index(bare_folder, described, encoder, workers=0, progress=False, attributes=True, delete_missing=True)
        with Collection.open(described, read_only=True) as coll:
            assert coll.index(SPEAKER_KIND).ntotal == N_FILES - 1
            assert coll.sql("SELECT count(*) FROM captions WHERE generated").fetchone()[0] == N_FILES - 1
    finally:
        moved.rename(victim)


def test_no_attributes_means_no_measurements(bare_folder, encoder, tmp_path):
    run_index(bare_folder, tmp_path / "plain", encoder, workers=0, progress=False, attributes=False)
    with Collection.open(tmp_path / "plain", read_only=True) as coll:
        cols = [r[0] for r in coll.sql("SELECT column_name FROM information_schema.columns"
                                       " WHERE table_name = 'clips'").fetchall()]
        assert not [c for c in cols if c.startswith("m_")]
        assert coll.index(SPEAKER_KIND).ntotal == 0 and coll.index("global").ntotal == 0
