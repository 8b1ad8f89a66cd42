"""Real corpora come as m4a, opus, webm and video files: every format ffmpeg decodes reaches the models.

The files are encoded here with PyAV (the same ffmpeg the decoder uses), from a known signal: a 440 Hz
tone in the left channel and 660 Hz in the right, so decoding is checked for duration, channel mixing,
resampling to 16 kHz and segment cuts, not only for "it did not raise".
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from searchengine.audio import EmptyAudioError, NotAudioError, audio_seconds, decode, load_waveform

SECONDS = 3.0

#: (suffix, container format, audio codec, sample rate, with a video track)
FORMATS = [
    (".m4a", "mp4", "aac", 44100, False),
    (".opus", "ogg", "libopus", 48000, False),
    (".webm", "webm", "libopus", 48000, False),
    (".mp4", "mp4", "aac", 22050, True),
    (".mkv", "matroska", "aac", 16000, True),
    (".wma", "asf", "wmav2", 22050, False),
]


def stereo_tone(rate: int, seconds: float = SECONDS) -> np.ndarray:
    """Planar float32 [2, T]: 440 Hz left, 660 Hz right, at 0.3."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def encode(path: Path, container_format: str, codec: str, rate: int, video: bool,
           samples: np.ndarray | None = None) -> Path:
    import av

    samples = stereo_tone(rate) if samples is None else samples
    with av.open(str(path), "w", format=container_format) as out:
        audio = out.add_stream(codec, rate=rate, layout="stereo")
        audio.bit_rate = 128_000
        if video:
            picture = out.add_stream("mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
            for i in range(int(SECONDS * 10)):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8 % 255, np.uint8), format="rgb24")
                out.mux(picture.encode(frame))
            out.mux(picture.encode(None))
        size = 1024
        for i in range(0, samples.shape[1], size):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + size]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def dominant_hz(wave: np.ndarray, rate: int = 16000) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    top = freqs[np.argsort(spectrum)[-2:]]
    return np.sort(top)


@pytest.mark.parametrize(("suffix", "container_format", "codec", "rate", "video"), FORMATS,
                         ids=[f[0] for f in FORMATS])
def test_ffmpeg_formats_decode_to_16k_mono_with_both_channels(tmp_path, suffix, container_format, codec, rate, video):
    path = encode(tmp_path / f"clip{suffix}", container_format, codec, rate, video)
    audio = decode(path)
    assert audio.source_sample_rate == rate and audio.source_channels == 2
    assert abs(audio.duration - SECONDS) < 0.1  # encoder priming and padding: a few ms, not more
    middle = audio.waveform[8000:-8000]
    low, high = dominant_hz(middle)
    assert abs(low - 440) < 5 and abs(high - 660) < 5  # both channels mixed, resampled to 16 kHz
    assert abs(audio_seconds(path) - SECONDS) < 0.1


def test_a_segment_of_an_ffmpeg_file_is_cut_where_asked(tmp_path):
    rng = np.random.default_rng(0)  # noise, not a tone: a periodic signal would match at many offsets
    noise = np.repeat(rng.uniform(-0.3, 0.3, size=(1, int(44100 * SECONDS))), 2, axis=0).astype(np.float32)
    path = encode(tmp_path / "long.m4a", "mp4", "aac", 44100, False, samples=noise)
    whole = load_waveform(path)
    part = load_waveform(path, 1.0, 2.0)
    assert abs(len(part) - 16000) <= 16
    offset = int(np.argmax(np.correlate(whole[12000:36000], part[:4000], mode="valid"))) + 12000
    assert abs(offset - 16000) <= 32  # the segment starts 1.0 s in, to within 2 ms


def test_files_ffmpeg_cannot_read_are_one_clear_error(tmp_path):
    garbage = tmp_path / "broken.m4a"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 8)
    with pytest.raises(NotAudioError, match="not a readable audio or video file"):
        decode(garbage)
    text_named_flac = tmp_path / "notes.flac"  # ffmpeg's FLAC demuxer opens it by extension, decodes nothing
    text_named_flac.write_text("this is not audio")
    with pytest.raises(NotAudioError, match="no decodable audio"):
        decode(text_named_flac)
    (tmp_path / "empty.opus").write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        decode(tmp_path / "empty.opus")


def test_a_video_without_sound_says_so(tmp_path):
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        picture = out.add_stream("mpeg4", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            out.mux(picture.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        out.mux(picture.encode(None))
    with pytest.raises(NotAudioError, match="no audio stream"):
        decode(path)


def test_decoder_messages_do_not_leak_the_path(tmp_path):
    garbage = tmp_path / "secret-dir" / "x.wav"
    garbage.parent.mkdir()
    garbage.write_bytes(b"RIFF not really a wav" * 50)
    with pytest.raises(NotAudioError) as caught:
        decode(garbage)
    reason = str(caught.value).removeprefix(f"{garbage}: ")
    assert "secret-dir" not in reason and "libsndfile" in reason and "ffmpeg" in reason


def test_a_folder_of_mixed_formats_is_indexed_whole_and_other_files_are_reported(tmp_path, encoder, model_spec):
    """The case a new user met: a.m4a, b.opus and c.wav in one folder indexed one file and said nothing."""
    import soundfile

    from indexer.pipeline import run_index
    from searchengine.manifest import read_source

    folder = tmp_path / "corpus"
    folder.mkdir()
    encode(folder / "a.m4a", "mp4", "aac", 44100, False)
    encode(folder / "b.opus", "ogg", "libopus", 48000, False)
    soundfile.write(folder / "c.wav", stereo_tone(16000).T, 16000)
    (folder / "notes.txt").write_text("recorded in the kitchen")
    (folder / ".DS_Store").write_bytes(b"\0")
    source = read_source(folder)
    assert sorted(Path(i.path).name for i in source.items) == ["a.m4a", "b.opus", "c.wav"]
    assert [(Path(p).name, why) for p, why in source.skipped] == [
        ("notes.txt", "not an audio or video file by its extension (.txt)")]
    summary = run_index(folder, tmp_path / "collection", encoder, workers=0, progress=False, attributes=False,
                        model_spec=model_spec, args={"model": model_spec})
    assert summary.files_added == 3 and summary.files_failed == 0
    assert any("skipped: 1 (.txt 1; e.g. notes.txt)" in line for line in summary.lines())


@pytest.fixture
def speech_corpus(make_corpus) -> Path:
    return make_corpus(40, 3)  # shared with the API and CLI tests: generated once per session


def test_done_when_a_folder_of_m4a_opus_webm_and_mp4_speech_indexes_and_exports_for_nemo(tmp_path, speech_corpus,
                                                                                        encoder, model_spec):
    """Issue 36's first "done when", from the command line: speech (the generated corpus's, the same the
    demo's sample corpus is made of) in m4a, opus, webm and mp4 with a video track, two files each,
    indexes with no failure, and `clsp-search export --format nemo` writes lines with audio_filepath,
    duration and offset pointing at those files, durations those of the speech encoded."""
    import json

    import soundfile
    from typer.testing import CliRunner

    from cli.main import app
    from indexer.pipeline import run_index

    corpus = speech_corpus
    clips = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()][:8]
    folder = tmp_path / "corpus"
    folder.mkdir()
    kinds = [(".m4a", "mp4", "aac", False), (".opus", "ogg", "libopus", False), (".webm", "webm", "libopus", False),
             (".mp4", "mp4", "aac", True)]
    for i, clip in enumerate(clips):
        suffix, container_format, codec, video = kinds[i % 4]
        wave, rate = soundfile.read(corpus / clip["path"], dtype="float32", always_2d=True)
        rate_out = 48000 if codec == "libopus" else rate
        stereo = np.repeat(wave[:, :1].T, 2, axis=0)
        if rate_out != rate:
            from searchengine.audio import resample

            stereo = np.stack([resample(ch, rate, rate_out) for ch in stereo]).astype(np.float32)
        encode(folder / f"{clip['id']}{suffix}", container_format, codec, rate_out, video, samples=stereo)
    collection = tmp_path / "collection"
    # Indexed in-process with the session's model (the CLI's `index` is this call, plus loading the model).
    summary = run_index(folder, collection, encoder, workers=0, progress=False, attributes=False,
                        model_spec=model_spec, args={"model": model_spec})
    assert (summary.files_total, summary.files_added, summary.files_failed) == (8, 8, 0), summary.lines()
    out = tmp_path / "out.json"
    exported = CliRunner().invoke(app, ["export", str(collection), "a man speaking", "-n", "10", "--format", "nemo",
                                   "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    assert sorted(Path(line["audio_filepath"]).name for line in lines) == sorted(p.name for p in folder.iterdir())
    spoken = {clip["id"]: clip["duration"] for clip in clips}  # the WAV each file was encoded from
    for line in lines:
        assert line["offset"] == 0.0 and abs(line["duration"] - spoken[Path(line["audio_filepath"]).stem]) < 0.1
