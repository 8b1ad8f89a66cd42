"""Curated exports on a real indexed collection: every constraint holds in what is written, and N is
filled whenever the collection has enough clips that satisfy them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cli import query as query_cli
from searchengine.curate import Constraints, CurationError, curate, speaker_key, summarize, write_summary_png

QUERY = "a calm voice in a quiet room"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _all_clips(searcher) -> list[dict]:
    con = searcher.cursor()
    cols = ["id", "speaker", "m_speaker_cluster", "m_dnsmos_ovrl"]
    return [dict(zip(cols, r, strict=True)) for r in con.execute(f"SELECT {', '.join(cols)} FROM clips").fetchall()]


def _speaker(clip: dict):
    return ("speaker", clip["speaker"]) if clip.get("speaker") else ("cluster", clip["m_speaker_cluster"])


def test_without_constraints_it_is_the_plain_top_n(curate_searcher) -> None:
    from searchengine.search import SearchOptions

    result = curate(curate_searcher, QUERY, 7)
    plain = curate_searcher.search_text(QUERY, SearchOptions(top_k=7))
    assert [h.id for h in result.hits] == [h.id for h in plain.hits]
    assert result.dropped == {}


def test_min_quality_holds_and_fills_n(curate_searcher) -> None:
    quality = sorted(c["m_dnsmos_ovrl"] for c in _all_clips(curate_searcher) if c["m_dnsmos_ovrl"] is not None)
    q = quality[len(quality) // 2]
    passing = sum(v >= q for v in quality)
    result = curate(curate_searcher, QUERY, passing + 5, Constraints(min_quality=q))
    assert len(result.hits) == passing  # every passing clip, and nothing else
    assert all(h.clip["m_dnsmos_ovrl"] >= q for h in result.hits)
    ranged = curate(curate_searcher, QUERY, 50, Constraints(ranges={"m_dnsmos_ovrl": (quality[2], quality[-3])}))
    assert ranged.hits and all(quality[2] <= h.clip["m_dnsmos_ovrl"] <= quality[-3] for h in ranged.hits)


def test_max_per_speaker_holds_and_widens_the_candidate_list_to_fill_n(curate_searcher) -> None:
    clips = _all_clips(curate_searcher)
    speakers = Counter(_speaker(c) for c in clips)
    assert max(speakers.values()) > 1, "the corpus should have a speaker with several clips"
    # overfetch=1: the first fetch (depth n) holds repeated speakers, so only widening can fill n.
    result = curate(curate_searcher, QUERY, len(speakers), Constraints(max_per_speaker=1), overfetch=1)
    keys = [speaker_key(h) for h in result.hits]
    assert len(keys) == len(set(keys)) == len(speakers)
    assert result.dropped["max_per_speaker"] >= 1
    two = curate(curate_searcher, QUERY, len(clips), Constraints(max_per_speaker=2))
    assert max(Counter(speaker_key(h) for h in two.hits).values()) <= 2
    assert len(two.hits) == sum(min(2, v) for v in speakers.values())


def test_diverse_speakers_spread_across_clusters(curate_searcher) -> None:
    speakers = {_speaker(c) for c in _all_clips(curate_searcher)}
    m = len(speakers)
    diverse = curate(curate_searcher, QUERY, m, Constraints(diverse_speakers=True))
    assert len({speaker_key(h) for h in diverse.hits}) == m  # one clip of every speaker first
    plain = curate(curate_searcher, QUERY, m)
    assert len({speaker_key(h) for h in plain.hits}) <= m
    # Within the round-robin, each speaker's pick is its best-ranked clip.
    best: dict = {}
    for h in curate(curate_searcher, QUERY, 1000).hits:
        best.setdefault(speaker_key(h), h.id)
    assert {speaker_key(h): h.id for h in diverse.hits} == best


def test_no_pair_above_the_dedup_threshold(curate_searcher) -> None:
    top = curate(curate_searcher, QUERY, 20)
    vecs = curate_searcher.collection.vectors("speech", [h.id for h in top.hits])
    sims = vecs @ vecs.T
    threshold = float(np.quantile(sims[np.triu_indices(len(vecs), 1)], 0.5))  # would drop many clips
    result = curate(curate_searcher, QUERY, 20, Constraints(dedup_threshold=threshold))
    assert result.dropped.get("near_duplicate", 0) >= 1
    kept = curate_searcher.collection.vectors("speech", [h.id for h in result.hits])
    pairs = (kept @ kept.T)[np.triu_indices(len(kept), 1)]
    assert len(kept) >= 2 and float(pairs.max()) <= threshold + 1e-6


def test_summary_counts_and_png(curate_searcher, tmp_path: Path) -> None:
    result = curate(curate_searcher, QUERY, 12, Constraints(max_per_speaker=2))
    info = summarize(result)
    assert info["selected"] == len(result.hits) == sum(info["per_speaker"].values())
    assert sum(info["genders"].values()) == sum(info["accents"].values()) == len(result.hits)
    assert max(info["per_speaker"].values()) <= 2
    q = [h.clip["m_dnsmos_ovrl"] for h in result.hits]
    assert info["attributes"]["m_dnsmos_ovrl"]["min"] == pytest.approx(min(q), abs=1e-3)
    png = write_summary_png(result, tmp_path / "s" / "summary.png")
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    from PIL import Image

    with Image.open(png) as im:
        im.verify()


def test_summary_without_matplotlib_says_what_to_install(curate_searcher, tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CurationError, match="pip install matplotlib"):
        write_summary_png(curate(curate_searcher, QUERY, 3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("export")(query_cli.export)
    app.command("search")(query_cli.search)  # two commands, so typer dispatches by name as the real CLI does
    return app


def test_cli_export_honours_every_option(curate_collection: Path, curate_model_path: str, curate_searcher,
                                         tmp_path: Path) -> None:
    out, png = tmp_path / "picks.jsonl", tmp_path / "summary.png"
    q = sorted(c["m_dnsmos_ovrl"] for c in _all_clips(curate_searcher))[5]
    result = CliRunner().invoke(_app(), [
        "export", str(curate_collection), QUERY, "-n", "10", "-o", str(out), "--model", curate_model_path,
        "--min-quality", str(q), "--max-per-speaker", "1", "--diverse-speakers", "--dedup-threshold", "0.999",
        "--range", "duration=0.5:", "--summary", str(png)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["m_dnsmos_ovrl"] >= q and r["duration"] >= 0.5 for r in rows)
    keys = [("speaker", r["speaker"]) if r.get("speaker") else ("cluster", r["m_speaker_cluster"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1)) and all("search_rank" in r for r in rows)
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "clips chosen from" in result.output and f"Wrote {len(rows)} clips" in result.output
    bad = CliRunner().invoke(_app(), ["export", str(curate_collection), QUERY, "-o", str(tmp_path / "b.jsonl"),
                                      "--model", curate_model_path, "--range", "m_snr_db"])
    assert bad.exit_code == 2 and "FIELD=LOW:HIGH" in bad.output
    unknown = CliRunner().invoke(_app(), ["export", str(curate_collection), QUERY, "-o", str(tmp_path / "c.jsonl"),
                                          "--model", curate_model_path, "--range", "m_nothing=1:2"])
    assert unknown.exit_code == 2 and "unknown field 'm_nothing'" in unknown.output
