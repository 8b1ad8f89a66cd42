"""Decoding, mono mixdown, resampling, segmentation and the typed failures of searchengine.audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from searchengine import audio


def tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")])
@pytest.mark.parametrize("sr", [8000, 22050, 44100])
def test_decode_resamples_to_16k_mono(tmp_path, fmt, ext, sr):
    x = tone(1.5, sr)
    stereo = np.stack([x, 0.5 * x], axis=1)
    path = tmp_path / f"a.{ext}"
    sf.write(path, stereo, sr, format=fmt)
    out = audio.decode(path)
    assert out.source_sample_rate == sr and out.source_channels == 2
    assert out.waveform.dtype == np.float32 and out.waveform.ndim == 1
    assert abs(len(out.waveform) - 1.5 * audio.SAMPLE_RATE) <= 2
    # mixdown averages the channels: peak ~ 0.75 * 0.3; resampling keeps the tone's frequency
    assert 0.2 < np.abs(out.waveform).max() < 0.25
    spectrum = np.abs(np.fft.rfft(out.waveform))
    assert abs(np.argmax(spectrum) * audio.SAMPLE_RATE / len(out.waveform) - 220) < 2


def test_decode_time_range(tmp_path):
    sf.write(tmp_path / "a.wav", tone(5.0, 16000), 16000)
    out = audio.decode(tmp_path / "a.wav", start=1.0, end=3.5)
    assert len(out.waveform) == 40000


@pytest.mark.parametrize(
    "make,error",
    [
        (lambda p: p.write_bytes(b""), audio.EmptyAudioError),
        (lambda p: p.write_bytes(b"RIFF....WAVEfmt garbage" * 20), audio.NotAudioError),
        (lambda p: p.write_text("id,path\n1,x.wav\n"), audio.NotAudioError),
        (lambda p: sf.write(p, tone(0.05, 16000), 16000), audio.TooShortError),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), audio.SilentAudioError),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), audio.EmptyAudioError),
    ],
)
def test_bad_files_raise_typed_errors(tmp_path, make, error):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(error) as info:
        audio.decode(path)
    assert str(path) in str(info.value) and info.value.reason


def test_missing_file_is_not_audio(tmp_path):
    with pytest.raises(audio.NotAudioError):
        audio.decode(tmp_path / "nope.wav")


def test_segments_cover_input_and_cut_in_pauses():
    sr = audio.SAMPLE_RATE
    x = tone(75.0, sr)
    pauses = [(22.0, 22.5), (47.0, 47.6)]
    for a, b in pauses:
        x[int(a * sr) : int(b * sr)] = 0.0
    segs = audio.segment(x, sr, max_seconds=30.0)
    assert len(segs) == 3
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(75.0)
    for prev, nxt in zip(segs, segs[1:], strict=False):
        assert prev.end == nxt.start
    assert all(s.duration <= 30.0 + 1e-9 for s in segs)
    assert np.array_equal(np.concatenate([s.waveform for s in segs]), x)
    for seg, (a, b) in zip(segs, pauses, strict=False):
        assert a <= seg.end <= b  # the cut falls inside the pause, not through the tone


def test_segments_without_pauses_still_respect_limit():
    segs = audio.segment(tone(65.0, audio.SAMPLE_RATE), max_seconds=30.0, offset=10.0)
    assert all(s.duration <= 30.0 + 1e-9 for s in segs)
    assert segs[0].start == 10.0 and segs[-1].end == pytest.approx(75.0)


def test_file_hash_depends_on_content_only(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "b").write_bytes(b"abc")
    (tmp_path / "c").write_bytes(b"abd")
    assert audio.file_hash(tmp_path / "a") == audio.file_hash(tmp_path / "b") != audio.file_hash(tmp_path / "c")


def test_to_mono_channels_first_or_last_and_known_axis():
    x = tone(0.5, 16000)
    last = np.stack([x, 0.5 * x], axis=1)  # [T, C], as soundfile returns
    assert np.array_equal(audio.to_mono(last), last.mean(axis=1, dtype=np.float32))
    assert np.array_equal(audio.to_mono(last.T), audio.to_mono(last))  # [C, T], as torch code passes
    assert np.array_equal(audio.to_mono(last, channel_axis=1), audio.to_mono(last))
    tiny = np.ones((2, 3), np.float32)  # 2 frames of 3 channels: only the caller knows the layout
    assert audio.to_mono(tiny, channel_axis=1).shape == (2,) and audio.to_mono(tiny).shape == (3,)
    assert audio.to_mono(x.astype(np.float64)).dtype == np.float32
    with pytest.raises(ValueError):
        audio.to_mono(np.zeros((2, 2, 2)))


def test_encoders_mix_down_with_the_same_to_mono():
    import torch

    from searchengine.model import audio as model_audio

    assert model_audio.to_mono is audio.to_mono
    x = np.stack([tone(0.5, 16000), tone(0.5, 16000, 440.0)])
    assert np.array_equal(audio.to_mono(torch.from_numpy(x)), x.mean(axis=0, dtype=np.float32))


def test_load_waveform_reads_a_range_without_the_quality_gate(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.float32), 32000)
    assert len(audio.load_waveform(tmp_path / "silent.wav")) == 16000  # decode() would refuse it
    sf.write(tmp_path / "a.wav", np.stack([tone(2.0, 8000)] * 2, axis=1), 8000)
    assert len(audio.load_waveform(tmp_path / "a.wav", 0.5, 1.25)) == 12000
    with pytest.raises(audio.NotAudioError):
        audio.load_waveform(tmp_path / "missing.wav")
