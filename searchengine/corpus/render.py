"""Text + voice + factors -> a 16 kHz mono float32 waveform whose measured style matches the factors.

Order matters for the ground truth to hold:
  synthesizer (pitch, rate, pitch range where the engine has them)
  -> sox, only when needed (pitch shift and tempo for engines without those controls; reverb)
  -> telephone channel, applied to speech and noise separately (both are linear, so this equals
     filtering the mixture, and lets the SNR be set on what actually reaches the listener)
  -> noise scaled to the exact SNR against the speech's active level
  -> one gain so the mixture's active level is the loudness target.
The last gain scales speech and noise together, so it keeps the SNR. At most two processes are
started per clip (synthesizer, sox), and sox is skipped for most espeak-ng clips.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from searchengine.corpus.factors import (
    DEFAULT_RANGE_PERCENT,
    Factors,
    espeak_rate_arg,
    espeak_settings,
)
from searchengine.corpus.voices import Voice

SAMPLE_RATE = 16000
TIMEOUT_S = 60.0
LEAD_S, TAIL_S = 0.25, 0.35  # silence around the speech: room for noise-only gaps and reverb tails
FRAME_S = 0.02
ACTIVE_FLOOR_DB = 35.0  # frames within this many dB of the loudest frame count as speech
PEAK_LIMIT = 0.98


class RenderError(RuntimeError):
    """A synthesizer or sox failed; the message names the command and its error output."""


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise RenderError(f"{cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{cmd[0]} took longer than {TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no error output"]
        raise RenderError(f"{cmd[0]} failed (exit {done.returncode}): {tail[0]}")
    return done.stdout


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def synthesize(text: str, voice: Voice, factors: Factors) -> np.ndarray:
    """Raw synthesizer output at 16 kHz, with the controls the engine itself offers applied."""
    if voice.engine == "espeak-ng":
        pitch, range_pct, _, _ = espeak_settings(factors.pitch_semitones or 0.0,
                                                 factors.pitch_spread_semitones)
        body = escape(text)
        if range_pct != DEFAULT_RANGE_PERCENT:
            body = f'<prosody range="{range_pct}%">{body}</prosody>'
        cmd = ["espeak-ng", "--stdout", "-m", "-v", voice.params["voice"],
               "-p", str(pitch), "-s", str(espeak_rate_arg(factors.rate_factor)),
               f"<speak>{body}</speak>"]
        x, sr = _read_wav(_run(cmd))
    else:
        with tempfile.TemporaryDirectory(prefix="clsp-synth-") as tmp:
            out = Path(tmp) / "out.wav"
            if voice.engine == "flite":
                _run(["flite", "-voice", voice.params["voice"], "-t", text, "-o", str(out)])
            elif voice.engine == "festival":
                src = Path(tmp) / "text.txt"
                src.write_text(text + "\n", encoding="utf-8")
                _run(["text2wave", "-eval", f"({voice.params['voice']})", "-o", str(out), str(src)])
            else:
                raise RenderError(f"unknown engine {voice.engine!r}")
            x, sr = sf.read(str(out), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
    if x.size == 0:
        raise RenderError(f"{voice.engine} produced no audio for voice {voice.id}")
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


def sox_effects(voice: Voice, factors: Factors) -> list[str]:
    """The sox chain this clip needs (empty when the synthesizer did everything)."""
    fx: list[str] = []
    if voice.engine != "espeak-ng":
        if factors.pitch_semitones:
            fx += ["pitch", f"{factors.pitch_semitones * 100:.0f}"]
        if abs(factors.rate_factor - 1.0) > 1e-3:
            fx += ["tempo", "-s", f"{factors.rate_factor:.4f}"]
    if factors.reverberance > 0:
        r = factors.reverberance
        # a bigger, more reverberant room with a later onset reads as a more distant talker
        fx += ["reverb", f"{r:.0f}", "50", f"{min(100.0, 30 + 0.7 * r):.0f}", "100", f"{0.2 * r:.0f}"]
    return fx


def apply_sox(x: np.ndarray, effects: list[str]) -> np.ndarray:
    if not effects:
        return x
    fmt = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]
    cmd = ["sox", "-q", "-V1", *fmt, "-", *fmt, "-", *effects, "channels", "1"]
    y = np.frombuffer(_run(cmd, stdin=x.astype("<f4").tobytes()), dtype="<f4")
    return y.astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """A narrow-band telephone line: 300-3400 Hz band-pass and an 8 kHz round trip."""
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    y = signal.sosfilt(sos, x).astype(np.float32)
    y = soxr.resample(y, SAMPLE_RATE, 8000, quality="HQ")
    return soxr.resample(y, 8000, SAMPLE_RATE, quality="HQ")[: len(x)].astype(np.float32)


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f^a power spectrum: white a=0, pink a=1, brown a=2 (unit RMS)."""
    alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    shape = np.ones_like(freqs)
    nz = freqs > 0
    shape[nz] = np.maximum(freqs[nz], 20.0) ** (-alpha / 2.0)  # no rumble below 20 Hz
    shape[~nz] = 0.0
    y = np.fft.irfft(spec * shape, n)
    return (y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


def active_mask(x: np.ndarray, floor_db: float = ACTIVE_FLOOR_DB) -> np.ndarray:
    """Per-sample mask of the 20 ms frames within `floor_db` of the loudest frame."""
    hop = int(FRAME_S * SAMPLE_RATE)
    n = len(x) // hop
    if n == 0:
        return np.ones(len(x), dtype=bool)
    power = np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    keep = power >= power.max() * 10 ** (-floor_db / 10.0)
    mask = np.repeat(keep, hop)
    return np.concatenate([mask, np.full(len(x) - len(mask), keep[-1])])


def _power(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    sel = x if mask is None else x[mask]
    return float(np.mean(sel.astype(np.float64) ** 2)) + 1e-20


def render(text: str, voice: Voice, factors: Factors, rng: np.random.Generator) -> np.ndarray:
    """The finished clip: float32, 16 kHz, mono, peak below 1."""
    speech = synthesize(text, voice, factors)
    speech = np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32), speech,
                             np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
    speech = apply_sox(speech, sox_effects(voice, factors))
    if factors.telephone:
        speech = telephone(speech)
    mask = active_mask(speech)
    speech_power = _power(speech, mask)
    mix = speech
    if factors.snr_db is not None:
        noise = colored_noise(len(speech), factors.noise_color or "white", rng)
        if factors.telephone:
            noise = telephone(noise)
        noise *= np.sqrt(speech_power / (_power(noise) * 10 ** (factors.snr_db / 10.0)))
        mix = speech + noise
    gain = np.sqrt(10 ** (factors.loudness_dbfs / 10.0) / _power(mix, mask))
    out = (mix * gain).astype(np.float32)
    return _soft_limit(out)


def _soft_limit(x: np.ndarray) -> np.ndarray:
    """Bend the rare peaks above PEAK_LIMIT instead of clipping; the level moves by a hair at most."""
    over = np.abs(x) > PEAK_LIMIT * 0.9
    if not over.any():
        return x
    knee = PEAK_LIMIT * 0.9
    headroom = PEAK_LIMIT - knee
    y = x.copy()
    mag = np.abs(x[over]) - knee
    y[over] = np.sign(x[over]) * (knee + headroom * np.tanh(mag / headroom))
    return y
