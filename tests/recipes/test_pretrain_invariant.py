"""recipes/alarm_osc/local/pretrain_invariant.py: the log-Mel mixing at a given SNR against
hand-worked powers, and the colourings' bounds."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "alarm_osc" / "local"))
import pretrain_invariant as P  # noqa: E402


def log_mag(power: torch.Tensor) -> torch.Tensor:
    """Log magnitude (the features' scale) of a Mel power."""
    return 0.5 * torch.log(power)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.0])
def test_add_at_snr_sets_the_power_ratio(snr_db):
    # sound: 2 loud frames (power 4 per bin) and 2 silent ones (1e-6, > 20 dB down: inactive);
    # background: power 0.5 per bin everywhere; 3 bins
    sound = torch.tensor([4.0, 4.0, 1e-6, 1e-6])[None, :, None].expand(1, 4, 3)
    bg = torch.full((1, 4, 3), 0.5)
    mixed = P.add_at_snr(log_mag(sound), log_mag(bg), torch.tensor([snr_db]))
    # active power of the sound: 12 per frame; the background is scaled to 12 / 10^(snr/10)
    scale = 12.0 / 10 ** (snr_db / 10) / 1.5
    want = sound + 0.5 * scale
    assert torch.allclose(torch.exp(2 * mixed), want, rtol=1e-4)


def test_colourings_stay_within_their_bounds():
    gen = torch.Generator().manual_seed(0)
    bin_hz = torch.linspace(30.0, 7900.0, 64)
    mic = P.mic_gain(256, bin_hz, gen) / P.LN10_20  # in dB
    assert mic.shape == (256, 64) and mic.max() <= 4.0 + 1e-4
    dev = P.device_gain(256, bin_hz, gen) / P.LN10_20
    assert dev.shape == (256, 64) and dev.max() <= 6.0 + 1e-4
    # a loudspeaker rolls off below its corner (80-800 Hz): the lowest bin is never boosted
    assert (dev[:, 0] <= dev.max(1).values).all() and (dev[:, 0] < 0).float().mean() > 0.9
    assert math.isclose(P.LN10_20, math.log(10) / 20)
