"""`clsp-search tune-text`: the bundled clsp-mini's text head retrained on a small generated corpus.

Real parts throughout: the committed weights as the base, a corpus rendered by the generator, the
frozen MiniLM text tower. What is checked is what a user relies on: the speech side (and so every
speech index built with the base model) is untouched, the run exports, logs and resumes exactly, and
the paraphrases it trains on are new wordings of the clip's own facts.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from searchengine.model.heads import TokenBatch
from training.tune_text import STATE_FILE, TextTuner, TextTuneSettings, paraphrases, tune_text

pytestmark = pytest.mark.slow


def mentions(text: str, phrases) -> bool:
    return re.search(r"\b(?:" + "|".join(re.escape(p.lower()) for p in phrases) + r")\b", text.lower()) is not None

SETTINGS = TextTuneSettings(seed=2, epochs=2, batch_size=8, warmup_steps=2, workers=1)


@pytest.fixture(scope="module")
def corpus(make_corpus):
    return make_corpus(40, 3)


@pytest.fixture(scope="module")
def base_weights():
    from searchengine.model.registry import WEIGHTS_DIR

    return load_file(str(WEIGHTS_DIR / "clsp-mini" / "model.safetensors"))


def test_tuning_locks_the_speech_side_exports_and_resumes_exactly(corpus, base_weights, tmp_path):
    from searchengine.model import load_model
    from searchengine.model.data import read_manifest

    straight = tune_text("clsp-mini", corpus, tmp_path / "straight", SETTINGS, log=lambda _: None)
    log = [json.loads(line) for line in (straight / "tune_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(np.isfinite(r["loss"]) and "val_paraphrase_fine_t2s_R@1" in r for r in log)
    config = json.loads((straight / "config.json").read_text())
    assert config["text_tuning"]["base_model"] == load_model("clsp-mini", device="cpu").model_id
    from searchengine.model.registry import WEIGHTS_DIR

    base_config = json.loads((WEIGHTS_DIR / "clsp-mini" / "config.json").read_text())
    assert config["training"] == base_config["training"]  # the base model's own recipe is kept beside

    tuned = load_file(str(straight / "model.safetensors"))
    assert tuned.keys() == base_weights.keys()
    for key, value in tuned.items():
        same = np.array_equal(value.numpy(), base_weights[key].numpy())
        assert same != key.startswith("text_head."), key  # only the text head moved, all of it

    # Speech embeddings are bit-identical, so a collection indexed with the base model stays valid;
    # text embeddings are new.
    base, new = load_model("clsp-mini", device="cpu"), load_model(straight, device="cpu")
    clips = read_manifest(corpus)[:4]
    audio = [c.load_audio() for c in clips]
    np.testing.assert_array_equal(base.encode_speech(audio, 16000), new.encode_speech(audio, 16000))
    captions = [c.global_caption for c in clips]
    assert not np.allclose(base.encode_text(captions), new.encode_text(captions), atol=1e-3)

    # Stopped after one epoch (as a killed run leaves it), then resumed: bit-identical result.
    TextTuner("clsp-mini", corpus, tmp_path / "resumed", SETTINGS, log=lambda _: None).run(stop_after_epoch=1)
    with pytest.raises(FileExistsError, match="--resume"):
        tune_text("clsp-mini", corpus, tmp_path / "resumed", SETTINGS, log=lambda _: None)
    with pytest.raises(ValueError, match="other settings|same model and flags"):
        tune_text("clsp-mini", corpus, tmp_path / "resumed", dataclasses.replace(SETTINGS, seed=3), resume=True,
                  log=lambda _: None)
    resumed = tune_text("clsp-mini", corpus, tmp_path / "resumed", SETTINGS, resume=True, log=lambda _: None)
    assert (resumed / STATE_FILE).is_file()
    again = load_file(str(resumed / "model.safetensors"))
    for key in tuned:
        assert np.array_equal(tuned[key].numpy(), again[key].numpy()), key


def test_paraphrases_reword_the_clips_own_facts(corpus, monkeypatch):
    from searchengine.corpus import captions as cap
    from searchengine.model.data import read_manifest

    class Forbidden:
        def __getitem__(self, key):
            raise AssertionError("a paraphrase read the held-out pool")

    monkeypatch.setitem(cap._POOLS, "heldout", Forbidden())  # held-out wording stays unseen in training
    clips = [c for c in read_manifest(corpus) if c.attribute("speaking_rate") in ("very slow", "slow")]
    assert clips
    for clip in clips:
        sets = paraphrases(clip, seed=0, sets=2, fine_per_set=4)
        assert sets == paraphrases(clip, seed=0, sets=2, fine_per_set=4)  # deterministic
        assert sets != paraphrases(clip, seed=1, sets=2, fine_per_set=4)
        assert len(sets) == 2 and sets[0] != sets[1] and all(len(fine) == 4 for _, fine in sets)
        own = {clip.global_caption, *clip.fine_captions}
        slow = cap.LEXICON["speaking_rate"][clip.attribute("speaking_rate")]
        fast = cap.LEXICON["speaking_rate"]["fast"] | cap.LEXICON["speaking_rate"]["very fast"]
        for global_text, fine in sets:
            for text in (global_text, *fine):
                assert text not in own
                assert mentions(text, slow) and not mentions(text, fast), text


def test_only_our_own_checkpoints_can_be_tuned(corpus, tmp_path):
    from searchengine.model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no model"):
        TextTuner(str(tmp_path / "missing"), corpus, tmp_path / "out", SETTINGS, log=lambda _: None)


@pytest.mark.parametrize("pooling", ["mean", "head_mean"])
def test_text_pooling_can_be_switched(corpus, base_weights, tmp_path, pooling):
    """The bundled model's head is applied per token; a tuned model may use either pooling."""
    from searchengine.model import load_model
    from searchengine.model.data import read_manifest

    settings = dataclasses.replace(SETTINGS, epochs=1, text_pooling=pooling)
    out = tune_text("clsp-mini", corpus, tmp_path / pooling, settings, log=lambda _: None)
    config = json.loads((out / "config.json").read_text())
    assert config["text_tower"]["pooling"] == pooling and config["text_tuning"]["text_pooling"] == pooling
    tuned = load_file(str(out / "model.safetensors"))
    # The same head shape: only how it meets the tokens changed. A token memory feeds a per-token head
    # only, so a mean-pooled model drops the bundled one.
    memory_keys = {"text_tower.memory.centroids", "text_tower.memory.scale"}
    expected = base_weights.keys() if pooling == "head_mean" else base_weights.keys() - memory_keys
    assert tuned.keys() == expected
    assert ("token_memory" in config["text_tower"]) == (pooling == "head_mean")
    model = load_model(out, device="cpu")
    assert model.model.text_tower.pooling == pooling
    with torch.inference_mode():  # a per-token head gets the token states, a mean-pooled one a vector per text
        pooled = model.model.text_tower(**model.model.text_tower.prepare(["a calm voice"]))
    assert isinstance(pooled, TokenBatch) == (pooling == "head_mean")
    clips = read_manifest(corpus)[:3]
    audio = [c.load_audio() for c in clips]
    np.testing.assert_array_equal(load_model("clsp-mini", device="cpu").encode_speech(audio, 16000),
                                  model.encode_speech(audio, 16000))
    text = model.encode_text([c.fine_captions[-1] for c in clips])
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)

    with pytest.raises(ValueError, match="text_pooling must be one of"):
        TextTuner("clsp-mini", corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, text_pooling="max"),
                  log=lambda _: None)
    assert not (tmp_path / "refused").exists()


def test_the_pooler_output_is_not_switched_to_token_pooling(corpus, tmp_path):
    """A pooler-pooled head was trained on the model's pooler output, not on token states: switching would
    retrain the head on another input of the same size without saying so."""
    from searchengine.model.checkpoint import save_checkpoint
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    config = get_model_config("clsp-mini")
    config["text_tower"]["pooling"] = "pooler"
    base = save_checkpoint(CLSP(config), tmp_path / "pooler-base")
    with pytest.raises(ValueError, match="cannot be switched"):
        TextTuner(str(base), corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, text_pooling="head_mean"),
                  log=lambda _: None)
    assert not (tmp_path / "refused").exists()


def test_the_bundled_model_maps_every_token_with_its_text_head():
    from searchengine.model import load_model

    model = load_model("clsp-mini", device="cpu").model
    assert model.config["text_tower"]["pooling"] == "head_mean" and model.text_tower.pooling == "head_mean"
    memory = model.text_tower.memory
    assert memory is not None and memory.centroids.shape == (4096, 384) and memory.weight == 0.5
    assert float(memory.centroids.abs().sum()) > 0  # fitted centroids, not the zeros it starts from


def test_a_token_memory_is_fitted_trained_through_and_used_by_search(corpus, base_weights, tmp_path):
    """The head is trained on token states blended with the memory, and search blends the same way:
    the exported model embeds a training caption exactly as the tuner's cached, blended states do."""
    from searchengine.model import load_model

    settings = dataclasses.replace(SETTINGS, epochs=1, token_memory=64, memory_weight=0.5)
    tuner = TextTuner("clsp-mini", corpus, tmp_path / "memory", settings, log=lambda _: None)
    out = tuner.run()
    config = json.loads((out / "config.json").read_text())
    assert config["text_tower"]["token_memory"] == {"size": 64, "neighbours": 8, "weight": 0.5, "temperature": 0.5}
    tuned = load_file(str(out / "model.safetensors"))
    memory_keys = {"text_tower.memory.centroids", "text_tower.memory.scale"}
    assert memory_keys <= tuned.keys() and tuned.keys() - memory_keys == base_weights.keys() - memory_keys
    assert tuned["text_tower.memory.centroids"].shape == (64, 384) and float(tuned["text_tower.memory.scale"]) > 0
    assert len(list((tmp_path / "memory" / "cache").glob("token-memory-*.npz"))) == 1

    model = load_model(out, device="cpu")
    clip = tuner.train_clips[0]
    caption = clip.fine_captions[-1]
    cached = tuner.head.eval()(tuner.text_features[[tuner.own[0][1][-1]]]).detach().numpy()
    np.testing.assert_allclose(model.encode_text([caption]), cached, atol=2e-3)  # float16 cache
    audio = [clip.load_audio()]
    np.testing.assert_array_equal(load_model("clsp-mini", device="cpu").encode_speech(audio, 16000),
                                  model.encode_speech(audio, 16000))

    # A resumed run reuses the fitted memory from its cache instead of fitting another one.
    lines = []
    again = TextTuner("clsp-mini", corpus, tmp_path / "memory", settings, log=lines.append)
    assert not any("fitted a token memory" in line for line in lines)
    torch_centroids = again.model.text_tower.memory.centroids.numpy()
    np.testing.assert_array_equal(torch_centroids, tuned["text_tower.memory.centroids"].numpy())

    # Other captions over a copy of that cache (one paraphrase set instead of two) fit a memory of their own.
    shutil.copytree(tmp_path / "memory" / "cache", tmp_path / "fewer" / "cache")
    lines = []
    TextTuner("clsp-mini", corpus, tmp_path / "fewer", dataclasses.replace(settings, paraphrase_sets=1), log=lines.append)
    assert any("fitted a token memory" in line for line in lines)
    assert len(list((tmp_path / "fewer" / "cache").glob("token-memory-*.npz"))) == 2


def test_a_token_memory_needs_per_token_pooling(corpus, tmp_path):
    settings = dataclasses.replace(SETTINGS, text_pooling="mean", token_memory=64)
    with pytest.raises(ValueError, match="needs head_mean"):
        TextTuner("clsp-mini", corpus, tmp_path / "refused", settings, log=lambda _: None)
    assert not (tmp_path / "refused").exists()


def test_the_base_models_cached_frames_are_reused_and_bf16_features_train(corpus, tmp_path):
    """A base model `train` wrote keeps its speech frames in its cache; tuning its text head reads them."""
    from searchengine.model.data import read_manifest
    from searchengine.model.registry import WEIGHTS_DIR
    from training.features import cache_speech_frames

    base = tmp_path / "base"
    shutil.copytree(WEIGHTS_DIR / "clsp-mini", base)
    tuner = TextTuner(str(base), corpus, tmp_path / "unused", SETTINGS, log=lambda _: None)
    clips = tuner.train_clips + tuner.val_clips
    assert len(clips) < len(read_manifest(corpus))  # held-out clips are not the tuner's
    cache_speech_frames(clips, tuner.model.speech_tower.frontend_config, base / "cache", 1, lambda _: None)

    lines: list[str] = []
    settings = dataclasses.replace(SETTINGS, epochs=1, compute_dtype="bfloat16")
    out = tune_text(str(base), corpus, tmp_path / "tuned", settings, log=lines.append)
    assert not any(line.startswith("computed speech frames") for line in lines), lines
    assert any(line.startswith("computed text features") for line in lines)
    assert not list((out / "cache" / "frames").iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["text_tuning"]["compute_dtype"] == "bfloat16"
    exact = tune_text(str(base), corpus, tmp_path / "exact", dataclasses.replace(settings, compute_dtype="float32"),
                      log=lambda _: None)
    bf16_head, fp32_head = (load_file(str(d / "model.safetensors")) for d in (out, exact))
    for key in bf16_head:
        if key.startswith("text_head."):  # trained in the other precision: close, not the same
            assert not np.array_equal(bf16_head[key].numpy(), fp32_head[key].numpy()), key
            np.testing.assert_allclose(bf16_head[key].numpy(), fp32_head[key].numpy(), atol=0.05)

    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        TextTuner(str(base), corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, compute_dtype="int8"),
                  log=lambda _: None)


def test_validating_every_few_epochs_trains_the_same_and_exports_only_scored_epochs(corpus, tmp_path):
    every = dataclasses.replace(SETTINGS, epochs=4)
    sparse = dataclasses.replace(every, validate_every=3)
    logs = {}
    for name, settings in (("every", every), ("sparse", sparse)):
        out = tune_text("clsp-mini", corpus, tmp_path / name, settings, log=lambda _: None)
        logs[name] = [json.loads(line) for line in (out / "tune_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logs["sparse"]] == [r["loss"] for r in logs["every"]]  # training never depends on it
    scored = [r["epoch"] for r in logs["sparse"] if any(k.startswith("val_") for k in r)]
    assert scored == [3, 4]  # every third epoch, and the schedule's last
    assert all(r["epoch"] in scored for r in logs["sparse"] if r.get("exported"))
    exported = json.loads((tmp_path / "sparse" / "config.json").read_text())["text_tuning"]["epoch"]
    assert exported in scored
    with pytest.raises(ValueError, match="validate_every must be at least 1"):
        TextTuner("clsp-mini", corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, validate_every=0),
                  log=lambda _: None)


def test_token_states_the_base_run_pooled_are_read_not_recomputed(corpus, tmp_path):
    """`train` pools MiniLM's states of every caption it encodes; it keeps those raw states beside its
    features, and tuning the text head of its model reads them instead of running MiniLM again."""
    import torch

    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config
    from searchengine.model.data import read_manifest
    from searchengine.model.registry import WEIGHTS_DIR
    from training.features import cache_text_features, token_state_store

    base = tmp_path / "base"
    shutil.copytree(WEIGHTS_DIR / "clsp-mini", base)
    manifest_captions = sorted({c for clip in read_manifest(corpus) for c in (clip.global_caption, *clip.fine_captions)})
    # What step 1 (`train`, mean pooling) does with the same captions, writing into the base model's cache.
    step1 = CLSP(get_model_config("clsp-mini")).eval()
    store = token_state_store(step1, "float32")
    assert store is not None
    pooled = cache_text_features(step1, manifest_captions, base / "cache", log=lambda _: None)
    assert (base / "cache" / store).is_file()
    with torch.inference_mode():  # the features are the tower's own (another batch: the last bits may differ)
        direct = step1.text_tower(**step1.text_tower.prepare(manifest_captions[:7]))
    np.testing.assert_allclose(pooled[:7].numpy(), direct.numpy(), atol=1e-5)

    lines: list[str] = []
    settings = dataclasses.replace(SETTINGS, epochs=1, text_pooling="head_mean", token_memory=64)
    tuner = TextTuner(str(base), corpus, tmp_path / "tuned", settings, log=lines.append)
    needed = set(manifest_captions) & set(tuner.caption_texts)  # not held-out clips, nor all of a validation clip's
    assert {tuner.caption_texts[j] for global_id, fine_ids in tuner.own for j in (global_id, *fine_ids)} <= needed
    assert f"read token states of {len(needed)} captions from {base / 'cache' / store}" in lines, lines
    computed = [int(line.split()[4]) for line in lines if line.startswith("computed text features of")]
    assert computed[0] == len(tuner.caption_texts) - len(needed)  # only the paraphrases
    # The states read are those a fresh pass of the same frozen MiniLM computes (float16 storage), which the
    # fitted memory then blended.
    read = [tuner.caption_texts.index(c) for c in sorted(needed)[:5]]
    raw = np.concatenate([tuner.text_features.states[j] for j in read])
    with torch.inference_mode():
        prepared = step1.text_tower.prepare([tuner.caption_texts[j] for j in read])
        states = step1.text_tower.token_states(**prepared)
        lengths = prepared["attention_mask"].sum(dim=1).tolist()
        expected = torch.cat([states[row, :n] for row, n in enumerate(lengths)])
        blended = tuner.model.text_tower.memory(expected).numpy()
    np.testing.assert_allclose(blended, raw.astype(np.float32), atol=2e-2)

    # A store of another precision, or a tower whose states a memory blends, is not shared.
    assert token_state_store(step1, "bfloat16") not in (None, store)
    assert token_state_store(tuner.model, "float32") is None


def test_validation_clips_keep_only_the_captions_validation_reads(corpus, tmp_path):
    """A validation clip is scored on its global and last fine caption, of the manifest and of the first
    paraphrase set; nothing else of it is encoded, while a training clip keeps every caption and set."""
    settings = dataclasses.replace(SETTINGS, paraphrase_sets=2)
    tuner = TextTuner("clsp-mini", corpus, tmp_path / "tuned", settings, log=lambda _: None)
    assert tuner.val_clips
    for i, clip in enumerate(tuner.train_clips + tuner.val_clips):
        written = paraphrases(clip, settings.seed, settings.paraphrase_sets, settings.fine_per_set)
        kept_sets = written if i < tuner.n_train else written[:1]
        for (global_id, fine_ids), (global_text, fine_texts) in zip([tuner.own[i], *tuner.para[i]],
                                                                     [(clip.global_caption, clip.fine_captions), *kept_sets],
                                                                     strict=True):
            assert tuner.caption_texts[global_id] == global_text
            expected = fine_texts if i < tuner.n_train else fine_texts[-1:]
            assert [tuner.caption_texts[j] for j in fine_ids] == expected
    assert len(tuner.caption_texts) == len(tuner.text_features)
    assert tuner.validate().keys() == {f"val_{source}{kind}_t2s_R@1" for source in ("", "paraphrase_")
                                       for kind in ("global", "fine")}
