"""Training's caches of frozen features, and the token memory's fitted centroids."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_cached_token_states_give_the_text_vectors_search_computes(tmp_path):
    """A per-token head trains on token states cached in float16; through the head they must give the
    vectors the model computes from text, so training and search meet the same inputs."""
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config
    from training.features import TokenStates, cache_text_features

    config = get_model_config("clsp-mini")
    config["text_tower"]["pooling"] = "head_mean"
    torch.manual_seed(0)
    model = CLSP(config).eval()
    captions = ["A low, calm man.", "A quiet woman speaking quickly in a large echoey hall, far from the microphone."]
    with torch.inference_mode():
        direct = model.encode_text(**model.text_tower.prepare(captions))
        cached = cache_text_features(model, captions, tmp_path, log=lambda _: None)
        assert isinstance(cached, TokenStates)
        np.testing.assert_allclose(model.text_head(cached[[0, 1]]).numpy(), direct.numpy(), atol=1e-2)  # float16


def test_centroids_are_fitted_to_the_states():
    from training.kmeans import fit_centroids

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)).astype(np.float32) * 10
    states = np.concatenate([c + rng.normal(size=(200, 16)).astype(np.float32) * 0.1 for c in centres])
    centroids, scale = fit_centroids(states, 8, seed=0)  # more centroids than centres: no centre left out
    assert centroids.shape == (8, 16)
    nearest = np.min(((centres[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.all(nearest < 1.0)  # every true centre found
    assert 0 < scale < 1.0  # squared distance of a state to its centre: about 16 * 0.01
    with pytest.raises(ValueError, match="at least 8 token states"):
        fit_centroids(states[:7], 8)


def test_cached_text_features_are_keyed_on_the_memory_centroids(tmp_path):
    """Two memories with the same settings blend differently, so they must not share a feature cache."""
    from searchengine.model import load_model
    from training.features import cache_text_features

    model = load_model("clsp-mini", device="cpu").model
    first = cache_text_features(model, ["A calm man speaks slowly."], tmp_path, log=lambda _: None)
    model.text_tower.memory.centroids.mul_(0.5)
    second = cache_text_features(model, ["A calm man speaks slowly."], tmp_path, log=lambda _: None)
    assert len(list(tmp_path.glob("text-*.npz"))) == 2
    assert not np.array_equal(first.states[0], second.states[0])


def test_segments_of_one_file_are_framed_and_cached_apart(tmp_path):
    """Training reads through the one source reader, so a csv manifest whose rows are segments of one
    long recording gives each row its own frames (the segment's length, its own cache file)."""
    import soundfile

    from searchengine.model.data import read_manifest
    from searchengine.model.frontend import FrontendConfig
    from training.features import cache_speech_frames

    from .conftest import tone

    soundfile.write(tmp_path / "long.wav", np.concatenate([tone(2.0, 120.0), tone(1.0, 240.0)]), 16000)
    (tmp_path / "manifest.csv").write_text(
        "id,path,start,end,global_caption,fine_captions\n"
        "a,long.wav,0.0,2.0,A low voice.,A low male voice.\n"
        "b,long.wav,2.0,3.0,A high voice.,A high female voice.\n"
        "c,long.wav,,,Both voices.,A low then a high voice.\n")
    clips = read_manifest(tmp_path / "manifest.csv")
    assert [(c.id, c.start, c.end) for c in clips] == [("a", 0.0, 2.0), ("b", 2.0, 3.0), ("c", None, None)]
    frames, offsets = cache_speech_frames(clips, FrontendConfig(), tmp_path / "cache", 1, lambda _: None)
    lengths = np.diff(offsets)
    assert abs(lengths[0] - 200) <= 2 and abs(lengths[1] - 100) <= 2 and abs(lengths[2] - 300) <= 2  # 100 frames/s
    assert len(list((tmp_path / "cache" / "frames").iterdir())) == 3
    low, high = frames[offsets[0]:offsets[1]].astype(np.float32), frames[offsets[1]:offsets[2]].astype(np.float32)
    assert not np.allclose(low.mean(axis=0), high.mean(axis=0), atol=0.1)  # two different segments, not one file twice
