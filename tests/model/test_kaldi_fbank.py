"""The pure-torch Kaldi fbank against stored reference values (tests/fixtures/fbank/reference.npz).

References: kaldi-native-fbank (Kaldi's own feature code) for three settings, including the released
CLSP's framing and frequency range at 80 bins; lhotse's torch fbank, which lhotse tests against
torchaudio, for the release's 128 bins (Kaldi refuses 128 bins at a 512-point FFT). Why it matters: the
released CLSP's remote code calls `torchaudio.compliance.kaldi.fbank`, which this replaces.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searchengine.model.kaldi_fbank import fbank

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fbank"
sys.path.insert(0, str(FIXTURE))
SETTINGS = importlib.import_module("make_reference").SETTINGS + importlib.import_module("make_reference").LHOTSE_SETTINGS
sys.path.remove(str(FIXTURE))
REFERENCE = np.load(FIXTURE / "reference.npz")
SIGNALS = ("chirp", "noise", "short")


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("setting", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_fbank_matches_the_reference(signal, setting):
    name, bins, low, high, snip = setting
    reference = REFERENCE[f"fbank/{signal}/{name}"]
    ours = fbank(torch.from_numpy(REFERENCE[f"signal/{signal}"])[None], num_mel_bins=bins, low_freq=low,
                 high_freq=high, snip_edges=snip, dither=0.0).numpy()
    assert ours.shape == reference.shape
    difference = np.abs(ours - reference)
    # A wrong window, pre-emphasis, framing or mel bin moves the loud bins by 0.1 and more. Float32
    # rounding moves them by 1e-3 at most, but bins 20 nats (90 dB) and more below their frame's
    # loudest carry the FFT's rounding noise: 1.3e-2 in the chirp's emptiest bins on an AVX-512 Xeon,
    # 4.4e-3 on an AVX2 EPYC, so those bins get a looser bound.
    depth = reference.max(axis=1, keepdims=True) - reference
    loud = depth < 15.0
    worst = np.unravel_index(difference.argmax(), difference.shape)
    assert difference[loud].max() < 5e-3, difference[loud].max()
    assert difference.max() < 5e-2, (difference.max(), worst, depth[worst])
    assert difference.mean() < 5e-4


def test_fbank_refuses_what_it_does_not_implement():
    with pytest.raises(NotImplementedError, match="VTLN"):
        fbank(torch.zeros(1, 1600), vtln_warp=0.9)
    with pytest.raises(ValueError, match="shorter than one"):
        fbank(torch.zeros(1, 100), snip_edges=True)
    assert fbank(torch.zeros(1, 100), snip_edges=False, num_mel_bins=128, high_freq=-400).shape == (1, 128)


def test_the_shim_serves_remote_code_that_imports_torchaudio():
    """Without torchaudio installed (as here), `from torchaudio.compliance import kaldi` works inside the
    shim, keeps working for code that bound it, and torchaudio is absent again afterwards."""
    from searchengine.model.kaldi_fbank import torchaudio_shim

    assert importlib.util.find_spec("torchaudio") is None, "torchaudio is installed: this test needs it absent"
    with torchaudio_shim() as shimmed:
        assert shimmed
        import torchaudio
        from torchaudio.compliance import kaldi

        assert kaldi.fbank is fbank and torchaudio.compliance.kaldi is kaldi
        with pytest.raises(AttributeError, match="not installed"):
            torchaudio.load  # noqa: B018
    assert "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None
    assert torchaudio.compliance.kaldi.fbank is fbank
