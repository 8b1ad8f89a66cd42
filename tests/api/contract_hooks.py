"""Schemathesis hooks for the HTTP API's contract tests: real recordings for the upload fields.

The document declares every recording part as `audio/*` (`api.bodies`); schemathesis has no audio
files of its own, and random bytes are rightly refused (415), so this registers a strategy that
makes small valid WAV files: mono or stereo, 8-48 kHz, 16-bit, 0.2-2 s of a tone in noise. Loaded by
`schemathesis.toml` for command-line runs and imported by tests/api/test_contract.py.
"""

from __future__ import annotations

import io
import math
import os
import random
import struct
import wave

import schemathesis
from hypothesis import strategies as st


def wav_bytes(seconds: float, rate: int, channels: int, freq: float, noise: float, seed: int) -> bytes:
    rng = random.Random(seed)
    frames = max(1, int(seconds * rate))
    samples = []
    for i in range(frames):
        value = 0.4 * math.sin(2 * math.pi * freq * i / rate) + noise * (rng.random() * 2 - 1)
        samples.extend([int(max(-1.0, min(1.0, value)) * 32767)] * channels)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


RECORDINGS = st.builds(
    wav_bytes,
    seconds=st.floats(0.2, 2.0),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    channels=st.sampled_from([1, 2]),
    freq=st.floats(80.0, 400.0),
    noise=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**16),
)

schemathesis.openapi.media_type("audio/wav", RECORDINGS, aliases=["audio/x-wav"])


COVERAGE_EVERY = int(os.environ.get("CLSP_CONTRACT_COVERAGE_EVERY", "1"))
"""Keep every Nth case of the coverage phase per operation (1: all of them). The coverage phase
enumerates every column name of the filter in every place a condition may stand, some 4,000 cases
per searching operation; a full run takes minutes, so the test suite samples it (a fixed stride,
the same cases every run) and a release check runs it whole."""
_seen: dict[str, int] = {}


@schemathesis.hook
def filter_case(ctx: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    meta = case.meta
    if COVERAGE_EVERY > 1 and meta is not None and str(meta.phase.name) == "coverage":
        n = _seen[case.operation.label] = _seen.get(case.operation.label, -1) + 1
        if n % COVERAGE_EVERY:
            return False
    return not _invalid_positive_form(case)


def _invalid_positive_form(case: schemathesis.Case) -> bool:
    """The one kind of "valid" case schemathesis 4.32 makes that its schema says is not: with a
    media-type strategy for some multipart field (the audio above), its coverage phase fills every
    other required field with "" whatever its schema, so `labels` (an array of non-blank strings)
    arrives as one empty part, is refused, and is reported as a valid request rejected."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return False
    if not (case.media_type or "").startswith("multipart/"):
        return False
    body = case.operation.get_body_for_media_type(case.media_type)
    properties = ((body.resolved_schema if body is not None else None) or {}).get("properties", {})
    return any(properties.get(name, {}).get("type") == "array" and not isinstance(value, list)
               for name, value in case.body.items())
