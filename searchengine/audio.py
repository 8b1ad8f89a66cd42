"""Audio in: decode any audio or video file into 16 kHz mono float32, cut into segments <= 30 s.

libsndfile reads wav, flac, ogg/vorbis, mp3 and aiff directly and can seek by sample; everything else
ffmpeg decodes (m4a/aac, opus, webm, mp4/mkv/mov audio tracks, amr, wma) goes through PyAV, whose
wheels carry ffmpeg, so no system codec is needed.

Everything downstream (the speech tower, the indexer, `similar` queries) assumes one sample rate and
one channel, so that conversion happens here and nowhere else. Long recordings are split at pauses,
not at fixed offsets, because a cut through a word produces an embedding of half a word; the energy
detector below is enough for that job and costs nothing next to the model.

Failures are typed (`AudioError` subclasses) so that the indexer can record *why* a file was
rejected and go on, while a user query gets a message it can act on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
"""The one sample rate the models consume."""

MAX_SEGMENT_SECONDS = 30.0
"""Longest segment handed to the speech tower (its training clips are far shorter)."""

MIN_SECONDS = 0.1
"""Shorter than this there is no voice to describe: such files are rejected as too short."""

SILENCE_DBFS = -60.0
"""Peak level below which a file is treated as silent (digital silence or noise floor only)."""


class AudioError(ValueError):
    """A file that cannot become model input. `reason` is a short stable code for the errors table."""

    reason = "audio"

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else str(path)
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{message}")


class NotAudioError(AudioError):
    """The bytes are not in any format libsndfile or ffmpeg understands, the file is corrupt, or it has no
    audio stream."""

    reason = "not_audio"


class EmptyAudioError(AudioError):
    """The file has zero bytes or zero frames."""

    reason = "empty"


class TooShortError(AudioError):
    """Fewer than `MIN_SECONDS` of audio."""

    reason = "too_short"


class SilentAudioError(AudioError):
    """Nothing above `SILENCE_DBFS`: embedding it would only add noise to the index."""

    reason = "silent"


@dataclass(frozen=True)
class Segment:
    """One piece of a recording: 16 kHz mono samples and where they sit in the source, in seconds."""

    start: float
    end: float
    waveform: np.ndarray

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DecodedAudio:
    """A whole decoded file at `SAMPLE_RATE`, plus the facts about the original the store keeps."""

    waveform: np.ndarray
    source_sample_rate: int
    source_channels: int

    @property
    def duration(self) -> float:
        return len(self.waveform) / SAMPLE_RATE


def to_mono(waveform: Any, channel_axis: int | None = None) -> np.ndarray:
    """Float32 mono from a 1-D waveform or a 2-D one whose channels are averaged.

    Averaging keeps level comparable across mono and multichannel sources. `channel_axis` says where
    the channels are when the caller knows (decoding reads [T, C] frames: 1); left out, they are taken
    to lie on the shorter axis, because encoder callers pass both [T, C] (as soundfile returns) and
    [C, T] (as torch code tends to use). Torch tensors are accepted and copied to the host.
    """
    array = np.asarray(waveform.detach().cpu().numpy() if hasattr(waveform, "detach") else waveform)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 1:
        return array
    if array.ndim == 2:
        if channel_axis is None:
            channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
        return array.mean(axis=channel_axis, dtype=np.float32)
    raise ValueError(f"a waveform must be 1-D or 2-D (samples, channels), got shape {array.shape}")


def resample(waveform: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr (HQ); a no-op when the rates already match."""
    if source_rate == target_rate:
        return np.ascontiguousarray(waveform, dtype=np.float32)
    out = soxr.resample(waveform.astype(np.float32, copy=False), source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def read_frames(
    path: str | os.PathLike, start: float | None = None, end: float | None = None
) -> tuple[np.ndarray, int, int]:
    """The float32 frames [T, C] of `path` in [start, end) seconds, its sample rate and channel count.

    libsndfile first (only [start, end) is read from disk, so a short segment of a long recording
    costs what the segment does); what it does not recognise goes to ffmpeg through PyAV. Unreadable
    input raises `NotAudioError`/`EmptyAudioError`, never a decoder's own error.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise NotAudioError(p, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise EmptyAudioError(p, "file is empty (0 bytes)")
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            channels = int(f.channels)
            first = 0 if start is None else max(0, int(round(start * sr)))
            last = f.frames if end is None else min(f.frames, int(round(end * sr)))
            if first > 0:
                f.seek(first)
            frames = f.read(max(0, last - first), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        frames, sr, channels = _read_with_ffmpeg(p, start, end, libsndfile_error=exc)
    if frames.shape[0] == 0:
        raise EmptyAudioError(p, "no audio frames")
    return frames, sr, channels


def _read_with_ffmpeg(p: Path, start: float | None, end: float | None,
                      libsndfile_error: Exception) -> tuple[np.ndarray, int, int]:
    """[start, end) seconds of the first audio stream of any container ffmpeg opens, as float32 [T, C].

    The container is sought to the keyframe before `start`, then decoded frames are trimmed to the
    exact samples by their timestamps, so a segment of a long podcast does not decode the whole file.
    """
    import av

    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise NotAudioError(p, f"no audio stream (streams: {', '.join(kinds)})")
            if start:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            resampler = av.AudioResampler(format="fltp")  # planar float32, the stream's own rate and layout
            pieces: list[np.ndarray] = []
            sr = channels = 0
            first_sample: int | None = None  # stream position of pieces[0][0], in samples
            taken = 0
            for packet_frame in container.decode(stream):
                for frame in resampler.resample(packet_frame):
                    sr, channels = frame.sample_rate, frame.layout.nb_channels
                    if first_sample is None:
                        first_sample = round(frame.time * sr) if frame.time is not None else 0
                    pieces.append(frame.to_ndarray().T)
                    taken += frame.samples
                if end is not None and first_sample is not None and first_sample + taken >= end * sr:
                    break
            for frame in resampler.resample(None):  # flush what the resampler holds
                pieces.append(frame.to_ndarray().T)
    except NotAudioError:
        raise
    except (av.FFmpegError, ValueError, OSError, IndexError) as exc:
        # The decoders' own messages name the file (a server's temporary path): keep their reasons only.
        raise _unreadable(p, libsndfile_error, getattr(exc, "strerror", None) or type(exc).__name__) from exc
    if not pieces:
        # ffmpeg picks some demuxers by extension alone (text named .flac opens as FLAC and yields
        # nothing): a non-empty file with nothing decodable is not audio, not an empty recording.
        raise _unreadable(p, libsndfile_error, "no decodable audio")
    frames = np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)
    offset = first_sample or 0
    lo = 0 if start is None else max(0, round(start * sr) - offset)
    hi = len(frames) if end is None else max(lo, min(len(frames), round(end * sr) - offset))
    return frames[lo:hi], int(sr), int(channels)


def _unreadable(p: Path, libsndfile_error: Exception, ffmpeg_reason: str) -> NotAudioError:
    """Both decoders' reasons without their messages, which name the file (a server's temporary path)."""
    sndfile_reason = getattr(libsndfile_error, "error_string", None) or type(libsndfile_error).__name__
    return NotAudioError(p, f"not a readable audio or video file (libsndfile: {sndfile_reason}; "
                            f"ffmpeg: {ffmpeg_reason})")


def audio_seconds(path: str | os.PathLike, at_most: float | None = None) -> float:
    """A file's duration in seconds from its header, without decoding it (libsndfile, then ffmpeg).

    Lets the server refuse a long upload before decoding it; raises `NotAudioError` for garbage. A
    stream whose header gives no duration (raw ADTS aac) is decoded to count, but only up to just past
    `at_most` seconds when given: a small compressed upload can hold hours of sound."""
    p = Path(path)
    try:
        info = sf.info(str(p))
        return float(info.frames) / float(info.samplerate or 1)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    import av

    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise NotAudioError(p, "no audio stream")
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000  # av.time_base: microseconds
    except NotAudioError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise NotAudioError(p, f"format not recognised ({type(exc).__name__})") from exc
    counted = load_waveform(p, None, None if at_most is None else at_most + 1.0)  # no duration in the header
    return float(len(counted)) / SAMPLE_RATE


def load_waveform(path: str | os.PathLike, start: float | None = None, end: float | None = None) -> np.ndarray:
    """[start, end) seconds of `path` as 16 kHz mono float32, without `decode`'s quality gate.

    For curated sets (training, evaluation) where every listed clip is wanted as it is, even one a
    search index would refuse as silent or too short.
    """
    frames, sr, _ = read_frames(path, start, end)
    return resample(to_mono(frames, channel_axis=1), sr)


def decode(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    min_seconds: float = MIN_SECONDS,
) -> DecodedAudio:
    """Read `path` (optionally only [start, end) seconds) as 16 kHz mono float32.

    Raises an `AudioError` subclass for every way a file can be unusable, never a bare libsndfile
    error, so callers can tell bad input from bugs.
    """
    p = Path(path)
    frames, sr, channels = read_frames(p, start, end)
    mono = to_mono(frames, channel_axis=1)
    if not np.all(np.isfinite(mono)):
        raise NotAudioError(p, "audio contains NaN or infinite samples")
    duration = len(mono) / sr
    if duration < min_seconds:
        raise TooShortError(p, f"{duration:.3f} s of audio, need at least {min_seconds:.2f} s")
    peak = float(np.max(np.abs(mono)))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        raise SilentAudioError(p, f"silent (peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS)")
    return DecodedAudio(resample(mono, sr), source_sample_rate=sr, source_channels=channels)


def frame_energy_db(waveform: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dB of consecutive non-overlapping frames (the last partial frame dropped)."""
    n = len(waveform) // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = waveform[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1) + 1e-20)
    return (20 * np.log10(rms)).astype(np.float32)


def split_points(
    waveform: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SEGMENT_SECONDS,
    frame_seconds: float = 0.02,
    search_seconds: float = 10.0,
) -> list[tuple[int, int]]:
    """Sample ranges covering `waveform`, each at most `max_seconds`, cut at the quietest moment.

    For each cut we look at the last `search_seconds` before the limit and pick the frame with the
    lowest energy there (a pause, when the speaker made one); with no pause we still cut at the limit,
    so no segment ever exceeds it. The ranges tile the input exactly, keeping offsets honest.
    """
    total = len(waveform)
    limit = int(max_seconds * sample_rate)
    if total <= limit:
        return [(0, total)]
    frame = max(1, int(frame_seconds * sample_rate))
    energy = frame_energy_db(waveform, frame)
    ranges: list[tuple[int, int]] = []
    pos = 0
    while total - pos > limit:
        lo = pos + max(frame, limit - int(search_seconds * sample_rate))
        hi = pos + limit
        f_lo, f_hi = lo // frame, hi // frame
        window = energy[f_lo:f_hi]
        if len(window):
            # Prefer the latest of the quietest frames (within 1 dB) to keep segments long.
            quiet = np.flatnonzero(window <= window.min() + 1.0)
            cut = (f_lo + int(quiet[-1])) * frame + frame // 2
        else:
            cut = hi
        cut = min(max(cut, pos + frame), hi)
        ranges.append((pos, cut))
        pos = cut
    ranges.append((pos, total))
    return ranges


def segment(
    waveform: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SEGMENT_SECONDS,
    offset: float = 0.0,
) -> list[Segment]:
    """Cut a waveform into `Segment`s of at most `max_seconds`, with times relative to the source."""
    return [
        Segment(offset + a / sample_rate, offset + b / sample_rate, waveform[a:b])
        for a, b in split_points(waveform, sample_rate, max_seconds)
    ]


def load_segments(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float = MAX_SEGMENT_SECONDS,
) -> tuple[DecodedAudio, list[Segment]]:
    """Decode and segment in one call: what an indexing worker does with each file."""
    audio = decode(path, start, end)
    return audio, segment(audio.waveform, SAMPLE_RATE, max_seconds, offset=start or 0.0)


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """BLAKE2b-128 of the file bytes: identifies content, so a renamed-but-same file is not 'changed'."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
