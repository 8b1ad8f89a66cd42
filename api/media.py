"""Audio in and out of the server: uploads become 16 kHz waveforms (within limits), stored clips become
WAV bytes of exactly their segment, served with HTTP Range so a browser's <audio> can seek."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import numpy as np
import soundfile as sf
from starlette.datastructures import UploadFile

from api.errors import ApiError
from api.settings import Limits


@dataclass(frozen=True)
class Upload:
    """A decoded upload: 16 kHz mono samples and the hash that recognises a file of the collection."""

    waveform: np.ndarray
    content_hash: str
    seconds: float


async def read_upload(upload: UploadFile, limits: Limits) -> Upload:
    """Copy an uploaded file to a temporary file, check size and duration, decode it.

    Duration is read from the header before decoding, so five hours of audio are refused without
    being decoded. Decoding failures surface as `AudioError`s (415 / 400, see api.errors)."""
    from starlette.concurrency import run_in_threadpool

    data = await upload.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise ApiError(413, f"upload is larger than {limits.max_upload_bytes / 2**20:g} MB")
    if not data:
        raise ApiError(400, "the uploaded file is empty", "empty")
    return await run_in_threadpool(_decode_bytes, data, upload.filename or "upload", limits)


def _decode_bytes(data: bytes, filename: str, limits: Limits) -> Upload:
    from searchengine.audio import audio_seconds, decode

    digest = hashlib.blake2b(data, digest_size=16).hexdigest()  # the same hash the indexer stores
    suffix = Path(filename).suffix[:10] if re.fullmatch(r"\.[A-Za-z0-9]{1,9}", Path(filename).suffix or "") else ""
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        seconds = audio_seconds(tmp.name, at_most=limits.max_audio_seconds)  # from the header: a long upload is refused before it is decoded
        if seconds > limits.max_audio_seconds:
            raise ApiError(413, f"upload is {seconds:.1f} s long; the limit is {limits.max_audio_seconds:g} s")
        audio = decode(tmp.name)
    return Upload(audio.waveform, digest, audio.duration)


# ------------------------------------------------------------------------------------ serving clips
def is_under(path: str | os.PathLike, roots: tuple[Path, ...]) -> bool:
    """True when the real path (symlinks resolved) lies inside one of the real roots."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(Path(os.path.realpath(r))) for r in roots)


_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = Lock()
_CACHE_ITEMS = 64


def segment_wav(path: str, start: float | None, end: float | None) -> bytes:
    """WAV bytes (16-bit PCM, the source's rate and channels) of [start, end) of `path`.

    A clip that is a segment of a longer recording is served as that segment only. Results are kept
    in a small LRU because a seeking browser asks for the same clip many times in a row."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size, start, end)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    from searchengine.audio import read_frames

    frames, sr, _ = read_frames(path, start, end)  # any format the indexer read, m4a and video included
    buf = io.BytesIO()
    sf.write(buf, frames, sr, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > _CACHE_ITEMS:
            _cache.popitem(last=False)
    return data


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single-range `Range` header; None to send the whole body.

    Multi-range and malformed headers are ignored (RFC 9110 allows it); a range starting past the end
    raises a 416 with `Content-Range: bytes */size`."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        first = int(m.group(1))
        if first >= size:
            raise ApiError(416, f"range starts at byte {first}, the clip has {size} bytes",
                           headers={"Content-Range": f"bytes */{size}"})
        last = int(m.group(2)) if m.group(2) else size - 1
        if last < first:
            return None
    else:  # suffix range: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise ApiError(416, "empty suffix range", headers={"Content-Range": f"bytes */{size}"})
        first, last = max(0, size - n), size - 1
    if first >= size:
        raise ApiError(416, f"range starts at {first}, the clip has {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return first, min(last, size - 1)
