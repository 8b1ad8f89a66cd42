"""`clsp-search eval` on a user's own labelled recordings: captions are not required.

Real corpora come with labels (gender, accent, speaker) far more often than with style captions, and
the README tells users to compare models on their own labelled manifest. Without captions there is no
retrieval to score, but zero-shot classification and style similarity still are; a manifest with
neither is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchengine.model.evaluate import evaluate, format_report


@pytest.fixture(scope="module")
def corpus(make_corpus) -> Path:
    return make_corpus(40, 3)  # shared with the API and CLI tests: generated once per session


def _manifest(corpus: Path, out: Path, keep: tuple[str, ...], captioned: int = 0) -> Path:
    """The corpus's rows with absolute paths and only the `keep` labels; the first `captioned` keep
    their captions."""
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    lines = []
    for n, row in enumerate(rows):
        kept = {"id": row["id"], "path": str(corpus / row["path"])} | {k: row[k] for k in keep}
        if n < captioned:
            kept |= {"global_caption": row["global_caption"], "fine_captions": row["fine_captions"]}
        lines.append(json.dumps(kept))
    out.write_text("\n".join(lines) + "\n")
    return out


def test_labels_without_captions_are_scored_by_zero_shot_and_style_similarity(corpus, encoder, tmp_path):
    manifest = _manifest(corpus, tmp_path / "labelled.jsonl", keep=("gender", "accent"))
    result = evaluate(encoder, manifest, split="all")
    assert result["retrieval"] == {}  # nothing to retrieve without captions
    gender = result["zero_shot"]["gender"]
    assert gender["clips"] == 40 and set(gender["per_class_recall"]) == {"female", "male"}
    assert gender["weighted_accuracy"] > 0.75  # the bundled model tells these voices apart
    assert "accent" in result["zero_shot"]
    assert result["style_similarity"]["pairs"] > 0 and -1 <= result["style_similarity"]["spearman"] <= 1
    assert "zero-shot classification" in format_report(result)


def test_retrieval_is_scored_over_the_captioned_clips_only(corpus, encoder, tmp_path):
    manifest = _manifest(corpus, tmp_path / "mixed.jsonl", keep=("gender",), captioned=12)
    result = evaluate(encoder, manifest, split="all")
    assert 2 <= result["retrieval"]["all"]["clips"] <= 12  # one per attribute combination of the 12
    assert result["zero_shot"]["gender"]["clips"] == 40


def test_a_manifest_with_neither_captions_nor_labels_is_one_clear_error(corpus, encoder, tmp_path):
    manifest = _manifest(corpus, tmp_path / "bare.jsonl", keep=())
    with pytest.raises(ValueError, match="nothing to score.*captions.*labels"):
        evaluate(encoder, manifest, split="all")
