"""Facets: one per fact, declared and measured sources grouped; no ids, paths, licences, free text or
constant columns; numbers as ranges with their distribution. Over a real DuckDB `clips` table shaped
like a real-speech collection indexed from a labelled manifest."""

from __future__ import annotations

import duckdb
import pytest

from searchengine.facets import collection_facets, facet_fields, hidden_by_name
from searchengine.filters import filterable_columns

N = 40


@pytest.fixture()
def con():
    con = duckdb.connect(":memory:")
    con.execute("""CREATE TABLE clips (
        id BIGINT, source_key VARCHAR, source_path VARCHAR, "start" DOUBLE, "end" DOUBLE, duration DOUBLE,
        sample_rate INTEGER, speaker VARCHAR, language VARCHAR, global_caption VARCHAR, fine_captions VARCHAR[],
        gender VARCHAR, licence VARCHAR, origin VARCHAR, transcript VARCHAR, utterance VARCHAR, condition VARCHAR,
        accent VARCHAR, derived BOOLEAN, m_gender_est VARCHAR, m_gender_prob DOUBLE, m_gender VARCHAR,
        m_f0_median_hz DOUBLE, m_pitch_word VARCHAR, m_speaker_cluster BIGINT, m_snr_db DOUBLE, m_dnsmos_ovrl DOUBLE,
        timbre VARCHAR[], content_hash VARCHAR)""")
    for i in range(N):
        female = i % 2 == 0
        con.execute("INSERT INTO clips VALUES (?, ?, ?, NULL, NULL, ?, 16000, ?, 'en', ?, [], ?, ?, ?, ?, ?, 'studio', ?, ?,"
                    " ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", [
                        i, f"k{i}", f"/data/clips/{i}.wav", 2.0 + i / 10, f"spk{i % 4}", f"A voice number {i}.",
                        "female" if female else "male", "CC BY 4.0 (LibriSpeech, V. Panayotov et al.)",
                        f"github.com/x/y@abc:audio/{i}.flac", f"the words of sentence number {i} read aloud here",
                        f"utt-{i:04d}", "US" if i % 3 else "UK", i % 5 == 0,
                        "female" if female or i == 1 else "male", 0.6 + (i % 4) / 10, "female" if female else "male",
                        200.0 + i if female else 110.0 + i, "high" if female else "low", i // 4, 10.0 + i,
                        ["breathy"] if i % 2 else ["clear", "breathy"], f"h{i}"])
    yield con
    con.close()


def test_one_facet_per_fact_with_declared_and_measured_grouped(con):
    facets = collection_facets(con, filterable_columns(con))
    gender = facets["gender"]
    assert gender["label"] == "Gender"
    assert [(s["field"], s["origin"]) for s in gender["sources"]] == [
        ("gender", "declared"), ("m_gender_est", "measured"), ("m_gender_prob", "measured")]
    assert {s["origin_label"] for s in gender["sources"]} == {"declared in the manifest", "measured from the audio"}
    declared = {v["value"]: v["count"] for v in gender["sources"][0]["values"]}
    assert declared == {"female": N // 2, "male": N // 2}
    pitch = facets["pitch"]["sources"]
    assert [(s["field"], s["origin"], s["kind"]) for s in pitch] == [
        ("m_pitch_word", "measured", "category"), ("m_f0_median_hz", "measured", "range")]
    fields = facet_fields(facets)
    assert len(fields) == len(set(fields))  # no column is offered twice
    assert "m_gender" not in fields  # the merged declared-else-measured column repeats the gender fact


def test_ids_paths_licences_free_text_and_constants_are_not_facets(con):
    fields = set(facet_fields(collection_facets(con, filterable_columns(con))))
    for name in ("id", "source_key", "source_path", "start", "end", "global_caption", "fine_captions", "licence",
                 "origin", "transcript", "utterance", "m_speaker_cluster", "content_hash"):
        assert name not in fields, name
    assert "language" not in fields and "condition" not in fields and "sample_rate" not in fields  # one value each
    assert {"speaker", "accent", "derived", "timbre", "m_snr_db", "duration"} <= fields
    # `utterance` is a unique label per clip (an id by its values), not by its name
    assert hidden_by_name("utterance") is None
    for name, why in (("speaker_id", "id"), ("licence", "licence"), ("copyright_holder", "licence"),
                      ("audio_path", "path"), ("origin", "path"), ("transcript", "bookkeeping or merged"), ("notes", "free text"),
                      ("normalized_transcript", "bookkeeping or merged")):
        assert hidden_by_name(name) == why, name
    assert hidden_by_name("direct_to_reverberant_db") is None  # 'dir' only as a whole word


def test_numbers_are_ranges_with_the_collections_distribution(con):
    facets = collection_facets(con, filterable_columns(con))
    f0 = next(s for s in facets["pitch"]["sources"] if s["field"] == "m_f0_median_hz")
    assert f0["min"] == 111 and f0["max"] == 238 and f0["missing"] == 0
    assert sum(f0["histogram"]["counts"]) == N and len(f0["histogram"]["edges"]) == len(f0["histogram"]["counts"]) + 1
    assert f0["histogram"]["edges"][0] == f0["min"] and f0["histogram"]["edges"][-1] == f0["max"]
    q = f0["quantiles"]
    assert f0["min"] <= q["p5"] <= q["p25"] <= q["p50"] <= q["p75"] <= q["p95"] <= f0["max"]
    # two clusters (men at 111-149 Hz, women near 200-238 Hz): the histogram shows the gap
    assert 0 in f0["histogram"]["counts"][3:8]
    assert "quality" not in facets  # its one column holds no value: nothing to offer
