"""The Encoder contract: any sample rate and channel layout, batching invisible to the caller."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchengine.model.encoder import ClspEncoder, length_buckets

from .conftest import tone


@pytest.fixture(scope="module")
def encoder(random_clsp_mini):
    return ClspEncoder(random_clsp_mini, "clsp-mini", "test", torch.device("cpu"))


def test_outputs_are_l2_normalised_float32(encoder):
    speech = encoder.encode_speech([tone(1.0, 150), tone(2.5, 250)])
    text = encoder.encode_text(["a slow deep voice", "a fast bright voice", "noisy"])
    for vectors, n in ((speech, 2), (text, 3)):
        assert vectors.dtype == np.float32 and vectors.shape == (n, 512)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_length_bucketing_keeps_the_callers_order(encoder):
    waves = [tone(d, f) for d, f in ((0.6, 120), (3.0, 200), (1.4, 300), (2.2, 90), (0.9, 260))]
    together = encoder.encode_speech(waves, batch_size=2)
    one_by_one = np.concatenate([encoder.encode_speech([w]) for w in waves])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


def test_length_buckets_group_similar_lengths_longest_first():
    batches = list(length_buckets([5, 100, 7, 90, 6], batch_size=2))
    assert batches == [[1, 3], [2, 4], [0]]
    assert list(length_buckets([10, 10, 10], batch_size=8, max_batch_samples=20)) == [[0, 1], [2]]


def test_any_sample_rate_and_stereo_are_accepted(encoder):
    import soxr

    wave = tone(2.0, 180)
    at_48k = soxr.resample(wave, 16000, 48000).astype(np.float32)
    reference = encoder.encode_speech([wave])
    resampled = encoder.encode_speech([at_48k], sample_rate=48000)
    assert float(reference[0] @ resampled[0]) > 0.99
    stereo = np.stack([wave, wave], axis=1)  # [T, 2] as soundfile returns it
    np.testing.assert_allclose(encoder.encode_speech([stereo]), reference, atol=1e-5)


def test_zero_shot_returns_probabilities(encoder):
    probabilities = encoder.zero_shot([tone(1.0, 120), tone(1.0, 240)], ["male", "female", "child"])
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_zero_shot_with_several_templates_scores_the_mean_prompt(encoder):
    waves = [tone(1.0, 120), tone(1.0, 240)]
    labels = ["low-pitched", "high-pitched"]
    templates = ["A speaker with a {} voice.", "The voice is {}."]
    speech = encoder.encode_speech(waves)
    ensembled = encoder.zero_shot(None, labels, template=templates, speech_embeddings=speech)
    prompts = [encoder.encode_text([t.format(label) for label in labels]) for t in templates]
    classes = prompts[0] + prompts[1]
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    logits = encoder._logit_scale() * (speech @ classes.T)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ensembled, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    # one template in a list is the same as the template alone
    np.testing.assert_allclose(encoder.zero_shot(waves, labels, template=templates[:1]),
                               encoder.zero_shot(waves, labels, template=templates[0]), atol=1e-6)
    with pytest.raises(ValueError, match="template"):
        encoder.zero_shot(waves, labels, template=[])


def test_class_embeddings_are_normalised_means_of_each_class_prompts(encoder):
    prompts = [["A calm voice."], ["A fast speaker.", "Someone talking rapidly.", "A hurried voice."]]
    classes = encoder.class_embeddings(prompts)
    for group, vector in zip(prompts, classes, strict=True):
        mean = encoder.encode_text(group).mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)
    with pytest.raises(ValueError, match="every class"):
        encoder.class_embeddings([["A calm voice."], []])


def test_style_similarity_is_a_mapped_cosine(encoder):
    a, b = tone(1.5, 120), tone(1.5, 300, amplitude=0.05)
    same = encoder.style_similarity(a, a)
    other = encoder.style_similarity(a, b)
    assert same == pytest.approx(1.0, abs=1e-5)
    embeddings = encoder.encode_speech([a, b])
    assert other == pytest.approx((float(embeddings[0] @ embeddings[1]) + 1) / 2, abs=1e-5)
    pairs = encoder.style_similarity([a, b], [a, a])
    assert pairs.shape == (2,) and np.all((pairs >= 0) & (pairs <= 1))


def test_empty_waveform_is_refused(encoder):
    with pytest.raises(ValueError, match="empty"):
        encoder.encode_speech([np.zeros(0, dtype=np.float32)])
