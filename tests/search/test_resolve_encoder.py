"""Which encoder a collection is opened with (`resolve_encoder` over the model registry): the model
recorded by its indexing runs is found, a different model is refused, and a missing one is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from searchengine.search import Searcher, resolve_encoder
from searchengine.store import Collection, CollectionError, ModelMismatchError

DIM = 4


class ToyEncoder:
    """A 'model' whose id is written in its config.json, so tests can make matching and other weights."""

    def __init__(self, directory: Path, device: object, name: str | None = None) -> None:
        self.model_id = json.loads((Path(directory) / "config.json").read_text())["id"]
        self.dim = DIM


@pytest.fixture
def toy_models(tmp_path, monkeypatch) -> dict[str, str]:
    from searchengine.model import registry

    row = registry.Adapter("toy", lambda c: c.get("model_type") == "toy", f"{__name__}:ToyEncoder", "toy", "toy")
    monkeypatch.setattr(registry, "ADAPTERS", (row,))
    out = {}
    for name, model_id in (("right", "toy@aaa"), ("other", "toy@bbb")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"model_type": "toy", "id": model_id}))
        out[name] = str(tmp_path / name)
    return out


def _collection(path: Path, model_id: str, recorded: list[str]) -> Path:
    coll = Collection.create(path, model_id=model_id, dim=DIM)
    with coll.transaction() as tx:
        for spec in recorded:
            tx.start_run("manifest.jsonl", model_id, {"model": spec})
        tx.start_run("manifest.jsonl", "another@model", {"model": "/not/this/one"})
    coll.add([{"source_key": "a", "source_path": "/a.wav"}], np.eye(1, DIM, dtype=np.float32))
    coll.close()
    return path


def test_recorded_model_specs_newest_first(tmp_path) -> None:
    path = _collection(tmp_path / "c", "toy@aaa", ["first", "second"])
    with Collection.open(path, read_only=True) as coll:
        assert coll.recorded_model_specs() == ["second", "first"]


def test_open_finds_the_model_its_runs_recorded(tmp_path, toy_models) -> None:
    path = _collection(tmp_path / "c", "toy@aaa", [toy_models["other"], toy_models["right"]])
    searcher = Searcher.open(path, device="cpu")
    assert searcher.encoder.model_id == "toy@aaa"
    searcher.close()


def test_another_model_is_refused_and_a_missing_one_named(tmp_path, toy_models) -> None:
    path = _collection(tmp_path / "c", "toy@aaa", [toy_models["other"]])
    with Collection.open(path, read_only=True) as coll:
        with pytest.raises(ModelMismatchError, match="built with model 'toy@aaa', not 'toy@bbb'"):
            resolve_encoder(coll, toy_models["other"], device="cpu")
        with pytest.raises(CollectionError) as missing:
            resolve_encoder(coll, device="cpu")
        assert not isinstance(missing.value, ModelMismatchError)
        message = str(missing.value)
        assert message.startswith("cannot find the model toy@aaa this collection was built with; pass --model PATH")
        assert f"{toy_models['other']}: is toy@bbb" in message and "toy: no model 'toy'" in message
