"""Training and evaluation end to end on a tiny corpus of synthetic clips (real code, small sizes).

Tones stand in for speech so the test needs no synthesizer and stays fast; what is checked is the
machinery: caching, both stages, validation logging, export, exact resume, and the eval report.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile
from safetensors.torch import load_file

from training.train import STATE_FILE, Trainer, TrainSettings, train

from .conftest import tone

pytestmark = pytest.mark.slow

PITCH_WORDS = {"low": 110.0, "medium": 170.0, "high": 260.0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "audio").mkdir()
    lines = []
    index = 0
    for split, voices in (("train", 3), ("val", 1), ("test", 1)):
        for voice in range(voices):
            for pitch, frequency in PITCH_WORDS.items():
                for loud in ("quiet", "loud"):
                    path = f"audio/{index:03d}.wav"
                    amplitude = 0.05 if loud == "quiet" else 0.5
                    soundfile.write(root / path, tone(1.0 + 0.1 * voice, frequency * (1 + 0.05 * voice), amplitude=amplitude), 16000)
                    gender = "female" if frequency > 150 else "male"
                    lines.append({
                        "id": f"{index:03d}", "path": path, "duration": 1.0, "sample_rate": 16000, "voice": f"v{split}{voice}",
                        "gender": gender, "accent": "American",
                        "attributes": {"pitch_level": pitch, "loudness": loud, "speaking_rate": "medium",
                                       "rate_factor": round(0.8 + 0.1 * voice + 0.05 * (loud == "loud"), 2)},
                        "global_caption": f"A {gender} voice, {loud}.",
                        "fine_captions": [f"A {pitch} pitched {gender} voice.", f"A {loud} voice with {pitch} pitch.",
                                          f"Someone {loud}, {pitch} in pitch."],
                        "split": split, "heldout_phrasing": False,
                    })
                    index += 1
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return root


def rewritten_corpus(corpus, directory, edit):
    """A copy of `corpus`'s manifest in `directory` (audio paths made absolute), each record passed
    through `edit` first: the same clips with some labels removed."""
    directory.mkdir()
    records = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    for record in records:
        edit(record)
        record["path"] = str(corpus / record["path"])
    (directory / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return directory


SETTINGS = TrainSettings(seed=3, stage1_epochs=1, stage2_epochs=1, batch_size=6, warmup_steps=2, workers=1)


@pytest.mark.parametrize("aids", [0.0, 1.0], ids=["paper objectives", "with training aids"])
def test_training_logs_exports_and_resumes_exactly(corpus, tmp_path, aids):
    settings = dataclasses.replace(SETTINGS, attribute_loss_weight=aids, attribute_caption_weight=aids,
                                   rate_regression_weight=aids)
    straight = train(corpus, tmp_path / "straight", settings, log=lambda _: None)
    log = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == [1, 2]
    assert all("val_fine_t2s_R@1" in r and np.isfinite(r["loss"]) for r in log)
    assert (straight / "config.json").is_file() and (straight / "model.safetensors").is_file()

    # Stop after the first epoch (validated, exported and saved, as a run killed then would have left
    # it), then resume: the result must be bit-identical.
    interrupted = Trainer(corpus, tmp_path / "resumed", settings, log=lambda _: None)
    interrupted.run(stop_after_epoch=1)
    assert interrupted.epoch == 1
    with pytest.raises(FileExistsError, match="--resume"):
        train(corpus, tmp_path / "resumed", settings, log=lambda _: None)
    resumed = train(corpus, tmp_path / "resumed", settings, resume=True, log=lambda _: None)
    assert (resumed / STATE_FILE).is_file()
    for name in ("config.json",):
        assert json.loads((straight / name).read_text()) == json.loads((resumed / name).read_text())
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    # the attribute classifiers are a training aid: never part of the exported model
    assert not any(key.startswith("attributes") for key in a)
    # the frozen text tower is referenced by its source, never copied into the checkpoint
    assert not any(key.startswith("text_tower.") for key in a)


def head_mean_clsp():
    """clsp-mini's architecture with the per-token text head (`head_mean`), as tune-text makes it."""
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    config = get_model_config("clsp-mini")
    config["text_tower"]["pooling"] = "head_mean"
    return CLSP(config).eval()


def test_cached_token_states_pool_like_the_text_tower(corpus, tmp_path):
    import torch

    from training.features import TokenStates, cache_text_features

    model = head_mean_clsp()
    captions = ["A low, calm man.", "A quiet woman speaking quickly in a large echoey hall, far from the microphone."]
    lines: list[str] = []
    cached = cache_text_features(model, captions, tmp_path, log=lines.append)
    assert isinstance(cached, TokenStates) and len(lines) == 1
    again = cache_text_features(model, captions[::-1], tmp_path, log=lines.append)  # read back, nothing recomputed
    assert len(lines) == 1
    with torch.inference_mode():
        direct = model.encode_text(**model.text_tower.prepare(captions))
        from_cache = model.text_head(cached[[0, 1]])
        np.testing.assert_allclose(from_cache.numpy(), direct.numpy(), atol=2e-2)  # float16 cache
        np.testing.assert_allclose(model.text_head(again[[1, 0]]).numpy(), from_cache.numpy(), atol=1e-6)


def test_attribute_classifiers_change_training_and_need_labels(corpus, tmp_path):
    plain = Trainer(corpus, tmp_path / "plain", SETTINGS, log=lambda _: None)
    aided = Trainer(corpus, tmp_path / "aided", dataclasses.replace(SETTINGS, attribute_loss_weight=1.0),
                    log=lambda _: None)
    assert aided.attributes is not None and plain.attributes is None
    # gender, pitch level and loudness vary in the corpus; accent and speaking rate have one value
    assert set(aided.attributes.vocabulary) == {"gender", "pitch_level", "loudness"}
    assert aided.train_epoch()["loss"] > plain.train_epoch()["loss"]  # the classifier term is added

    unlabelled = rewritten_corpus(corpus, tmp_path / "unlabelled",
                                  lambda r: (r.pop("attributes"), r.pop("gender"), r.pop("accent")))
    with pytest.raises(ValueError, match="no labelled attributes"):
        Trainer(unlabelled, tmp_path / "none", dataclasses.replace(SETTINGS, attribute_loss_weight=1.0),
                log=lambda _: None)


def test_pace_regression_changes_training_and_needs_rate_factors(corpus, tmp_path):
    plain = Trainer(corpus, tmp_path / "plain", SETTINGS, log=lambda _: None)
    aided = Trainer(corpus, tmp_path / "aided", dataclasses.replace(SETTINGS, rate_regression_weight=1.0),
                    log=lambda _: None)
    assert aided.pace is not None and plain.pace is None
    targets = aided.pace_targets[: aided.n_train]
    assert abs(float(targets.mean())) < 1e-5 and abs(float(targets.std(unbiased=False)) - 1.0) < 1e-4  # standardised
    assert aided.train_epoch()["loss"] > plain.train_epoch()["loss"]  # the regression term is added

    unrated = rewritten_corpus(corpus, tmp_path / "unrated", lambda r: r["attributes"].pop("rate_factor"))
    with pytest.raises(ValueError, match="no rate_factor"):
        Trainer(unrated, tmp_path / "none", dataclasses.replace(SETTINGS, rate_regression_weight=1.0),
                log=lambda _: None)


def test_attribute_captions_describe_each_class_and_change_training(corpus, tmp_path):
    from searchengine.corpus.captions import attribute_captions

    plain = Trainer(corpus, tmp_path / "plain", SETTINGS, log=lambda _: None)
    aided = Trainer(corpus, tmp_path / "aided", dataclasses.replace(SETTINGS, attribute_caption_weight=1.0),
                    log=lambda _: None)
    assert not plain.class_captions
    assert list(aided.class_captions) == ["gender", "pitch_level", "loudness"]  # the attributes that vary
    values = {"gender": ["female", "male"], "pitch_level": ["high", "low", "medium"], "loudness": ["loud", "quiet"]}
    for name, groups in aided.class_captions.items():
        for value, ids in zip(values[name], groups, strict=True):
            assert len(ids) == len(attribute_captions(name, value)) >= 2
    assert len(aided.class_caption_features) == sum(len(g) for gs in aided.class_captions.values() for g in gs)
    first = aided.train_clips[0]
    row = aided.class_caption_labels[0].tolist()
    assert [values[name][k] for name, k in zip(values, row, strict=True)] == [
        first.attribute("gender"), first.attribute("pitch_level"), first.attribute("loudness")]
    assert aided.train_epoch()["loss"] > plain.train_epoch()["loss"]  # the classification term is added


def test_evaluation_reports_the_protocol(corpus, tmp_path):
    from searchengine.model import load_model
    from searchengine.model.evaluate import evaluate, format_report

    directory = train(corpus, tmp_path / "model", SETTINGS, log=lambda _: None)
    result = evaluate(load_model(directory, device="cpu"), corpus / "manifest.jsonl", split="test")
    retrieval = result["retrieval"]["all"]
    assert retrieval["clips"] == 6  # one per (gender, pitch, loudness) combination of the test voice
    for kind in ("global", "fine"):
        for direction in ("speech_to_text", "text_to_speech"):
            scores = retrieval[kind][direction]
            assert 0.0 <= scores["R@1"] <= scores["R@5"] <= scores["R@10"] <= 1.0
    assert set(result["zero_shot"]) == {"gender", "pitch_level_3way"}
    assert result["zero_shot"]["pitch_level_3way"]["clips"] == 6
    assert -1.0 <= result["style_similarity"]["spearman"] <= 1.0
    assert "zero-shot classification" in format_report(result)

    # zero-shot in held-out wording: each class is the mean of the held-out pool's one-fact captions
    from searchengine.corpus.captions import attribute_captions
    from searchengine.model.data import read_manifest

    heldout = result["zero_shot_heldout_wording"]
    assert set(heldout) == {"gender", "pitch_level_3way"}
    assert heldout["gender"]["prompts_per_class"] == {g: len(attribute_captions("gender", g, heldout=True))
                                                      for g in ("female", "male")}
    assert heldout["gender"]["prompts"][0] in attribute_captions("gender", "female", heldout=True)
    encoder = load_model(directory, device="cpu")
    clips = [c for c in read_manifest(corpus / "manifest.jsonl") if c.split == "test"]
    speech = encoder.encode_speech([c.load_audio() for c in clips])
    centroids = np.stack([encoder.encode_text(list(attribute_captions("gender", g, heldout=True))).mean(axis=0)
                          for g in ("female", "male")])
    by_hand = np.mean((speech @ centroids.T).argmax(axis=1) == [c.attribute("gender") == "male" for c in clips])
    assert heldout["gender"]["weighted_accuracy"] == pytest.approx(by_hand)
    assert "held-out wording" in format_report(result)

    # every combination reworded from its facts in each pool, scored over the same gallery
    from searchengine.corpus.captions import phrasing_pools
    from searchengine.model.evaluate import one_per_combination, reworded_captions
    from searchengine.model.metrics import retrieval_metrics

    gallery = one_per_combination(clips)
    speech_of = {c.id: row for c, row in zip(clips, speech, strict=True)}
    gallery_speech = np.stack([speech_of[c.id] for c in gallery])
    pools = phrasing_pools()
    others = [q.lower() for name in ("train", "wide") for phrases in pools[name].values() for q in phrases]
    heldout_words = {p for phrases in pools["heldout"].values() for p in phrases
                     if "{" not in p and not any(p.lower() in q for q in others)}  # not inside a training phrase
    for name, pool_is_heldout in (("reworded_training_pool", False), ("reworded_heldout_pool", True)):
        report = result["retrieval"][name]
        assert report["clips"] == len(gallery) == 6
        global_texts, fine_texts = reworded_captions(gallery, heldout=pool_is_heldout)
        assert (global_texts, fine_texts) == reworded_captions(gallery, heldout=pool_is_heldout)  # fixed per clip
        assert not set(fine_texts) & {f for c in gallery for f in c.fine_captions}
        says_heldout = [any(phrase.lower() in text.lower() for phrase in heldout_words if len(phrase) > 6)
                        for text in fine_texts]
        assert all(says_heldout) if pool_is_heldout else not any(says_heldout)
        by_hand = retrieval_metrics(gallery_speech, encoder.encode_text(fine_texts))
        assert report["fine"]["text_to_speech"]["R@1"] == pytest.approx(by_hand["text_to_speech"]["R@1"])
    assert "reworded_heldout_pool" in format_report(result)
    bare = dataclasses.replace(gallery[0], record={k: v for k, v in gallery[0].record.items() if k != "attributes"})
    assert reworded_captions([bare, *gallery[1:]], heldout=True) is None  # nothing to describe: no such block
    odd = dataclasses.replace(gallery[0], record={**gallery[0].record,
                                                  "attributes": {**gallery[0].record["attributes"], "speaking_rate": "glacial"}})
    assert reworded_captions([odd, *gallery[1:]], heldout=False) is None  # a value the grammar cannot word


def test_bf16_text_features_stay_close_and_are_cached_apart(tmp_path):
    from training.features import cache_text_features

    model = head_mean_clsp()
    captions = ["A low, calm man.", "A quiet woman speaking quickly in a large echoey hall, far from the microphone."]
    exact = cache_text_features(model, captions, tmp_path, log=lambda _: None)
    fast = cache_text_features(model, captions, tmp_path, log=lambda _: None, dtype="bfloat16")
    assert len(list(tmp_path.glob("text-*.npz"))) == 2  # a float32 cache is never read back as bf16, or back
    for i in range(len(captions)):
        a, b = exact.states[i].astype(np.float32), fast.states[i].astype(np.float32)
        assert a.shape == b.shape and not np.array_equal(a, b)  # the precision did change
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.03
    with pytest.raises(ValueError, match="float32, bfloat16"):
        cache_text_features(model, captions, tmp_path, log=lambda _: None, dtype="float16")


def test_frames_another_run_cached_are_read_not_recomputed(corpus, tmp_path):
    from searchengine.model.data import read_manifest
    from searchengine.model.frontend import FrontendConfig
    from training.features import cache_speech_frames

    clips = read_manifest(corpus)
    lines: list[str] = []
    first, offsets = cache_speech_frames(clips[:4], FrontendConfig(), tmp_path / "base", 1, lines.append)
    assert len(lines) == 1
    shared, shared_offsets = cache_speech_frames(clips, FrontendConfig(), tmp_path / "tuned", 1, lines.append,
                                                 shared_dir=tmp_path / "base")
    assert lines[1].startswith(f"computed speech frames of {len(clips) - 4} clips")  # only the clips it lacked
    np.testing.assert_array_equal(shared[: offsets[-1]], first)
    assert len(list((tmp_path / "tuned" / "frames").iterdir())) == len(clips) - 4  # the shared cache is read only
    assert len(list((tmp_path / "base" / "frames").iterdir())) == 4
    assert shared_offsets[-1] == len(shared)


def test_a_run_saved_before_a_setting_existed_still_matches_its_flags():
    from training.loop import same_settings

    saved = dataclasses.asdict(SETTINGS)
    del saved["rate_regression_weight"]  # a run saved before the option was added
    assert same_settings(saved, SETTINGS)
    assert not same_settings(saved, dataclasses.replace(SETTINGS, rate_regression_weight=1.0))
    assert not same_settings({**saved, "seed": SETTINGS.seed + 1}, SETTINGS)


def test_validating_every_few_epochs_trains_the_same_and_exports_only_scored_epochs(corpus, tmp_path):
    every = dataclasses.replace(SETTINGS, stage2_epochs=2)
    logs = {}
    for name, settings in (("every", every), ("sparse", dataclasses.replace(every, validate_every=2))):
        out = train(corpus, tmp_path / name, settings, log=lambda _: None)
        logs[name] = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logs["sparse"]] == [r["loss"] for r in logs["every"]]  # training never depends on it
    scored = [r["epoch"] for r in logs["sparse"] if any(k.startswith("val_") for k in r)]
    assert scored == [2, 3]  # every second epoch, and the schedule's last
    assert all(r["epoch"] in scored for r in logs["sparse"] if r.get("exported"))
    with pytest.raises(ValueError, match="validate_every must be at least 1"):
        Trainer(corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, validate_every=0), log=lambda _: None)


def test_bf16_training_is_close_to_float32_resumes_exactly_and_refuses_other_dtypes(corpus, tmp_path):
    """Step 1 under bf16 autocast: the same run in the other precision, close but not the same bits,
    still deterministic across --resume, and its exported weights stay float32."""
    settings = dataclasses.replace(SETTINGS, attribute_loss_weight=1.0, attribute_caption_weight=1.0,
                                   rate_regression_weight=1.0)
    fast_settings = dataclasses.replace(settings, compute_dtype="bfloat16")
    lines: list[str] = []
    fast = train(corpus, tmp_path / "bf16", fast_settings, log=lines.append)
    exact = train(corpus, tmp_path / "fp32", settings, log=lambda _: None)
    assert any(line.startswith("computed text features") for line in lines)
    assert {p.name for p in (fast / "cache").glob("text-*.npz")}.isdisjoint(
        p.name for p in (exact / "cache").glob("text-*.npz"))  # the caches are keyed by precision
    fast_log, exact_log = ([json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()]
                           for d in (fast, exact))
    assert [r["loss"] for r in fast_log] != [r["loss"] for r in exact_log]
    np.testing.assert_allclose([r["loss"] for r in fast_log], [r["loss"] for r in exact_log], rtol=0.05)
    a, b = (load_file(str(d / "model.safetensors")) for d in (fast, exact))
    assert all(a[key].dtype == b[key].dtype for key in a)
    assert any(not np.array_equal(a[key].numpy(), b[key].numpy()) for key in a if key.startswith("speech_"))

    Trainer(corpus, tmp_path / "resumed", fast_settings, log=lambda _: None).run(stop_after_epoch=1)
    resumed = train(corpus, tmp_path / "resumed", fast_settings, resume=True, log=lambda _: None)
    c = load_file(str(resumed / "model.safetensors"))
    assert all(np.array_equal(a[key].numpy(), c[key].numpy()) for key in a)
    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        Trainer(corpus, tmp_path / "refused", dataclasses.replace(SETTINGS, compute_dtype="float16"),
                log=lambda _: None)


def test_captions_are_encoded_in_an_order_no_hash_seed_changes():
    """Batches of the caption pass must be the same in every run: their padding shows in the features."""
    import os
    import subprocess
    import sys

    from training.features import encoding_order

    captions = [f"A {word} voice." for word in ("calm", "deep", "warm", "soft", "loud", "thin")] + ["A man.", "A man."]
    order = encoding_order(captions)
    assert order == encoding_order(captions[::-1]) and len(order) == 7 and order[0] == "A man."
    script = ("from training.features import encoding_order; "
              f"print(encoding_order({captions!r}))")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert runs == {f"{order}\n"}
