import numpy as np
import pytest
import torch

from kwsos.augment import (
    mixup,
    random_colouring,
    random_freq_warp,
    random_speed,
    random_time_shift,
    spec_augment,
    time_reverse,
)


def test_mixup_mixes_inputs_and_targets_with_the_same_weights():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 3)
    t = torch.eye(6)
    xm, (tm,), lam = mixup(x, (t,), g)
    assert torch.all((lam >= 0) & (lam <= 1))
    torch.testing.assert_close(tm.sum(1), torch.ones(6))
    for i in range(6):
        j = int(torch.argmax(tm[i] - lam[i] * t[i]))  # the partner's column
        w = lam[i] if j != i else torch.tensor(1.0)
        torch.testing.assert_close(xm[i], w * x[i] + (1 - w) * x[j])


def test_spec_augment_masks_and_keeps_shape():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 16, 64)
    y = spec_augment(x, g, warp_frames=0, freq_masks=1, freq_width=8, time_masks=0)
    assert y.shape == x.shape
    changed_bins = (y != x).any(dim=1)  # (B, F)
    assert changed_bins.sum(dim=1).max() <= 8
    # a masked bin is constant (the fill value) over all frames
    for b in range(8):
        for f in torch.nonzero(changed_bins[b]).flatten():
            assert torch.unique(y[b, :, f]).numel() == 1


def test_time_warp_is_monotone_resampling():
    g = torch.Generator().manual_seed(2)
    ramp = torch.arange(16.0)[None, :, None].expand(4, 16, 2).contiguous()
    y = spec_augment(ramp, g, freq_masks=0, time_masks=0, warp_frames=3)
    assert torch.all(y[:, 1:] >= y[:, :-1])
    torch.testing.assert_close(y[:, 0], ramp[:, 0])
    torch.testing.assert_close(y[:, -1], ramp[:, -1])


def test_time_reverse():
    x = torch.arange(6.0).reshape(1, 3, 2)
    torch.testing.assert_close(time_reverse(x)[0, 0], x[0, 2])


def test_add_noise_at_snr_and_gain():
    from kwsos.augment import add_noise, random_gain

    g = torch.Generator().manual_seed(0)
    floor = 1e-8
    x = torch.log(torch.full((4, 16, 8), 1.0) + floor)
    noise = torch.log(torch.full((3, 16, 8), 0.5) + floor)
    y = add_noise(x, noise, g, snr_db=(20.0, 20.0), p=1.0)
    # magnitude 1 + 0.1 (noise scaled to 20 dB below the segment's mean magnitude)
    torch.testing.assert_close(torch.exp(y) - floor, torch.full_like(x, 1.1), rtol=1e-4, atol=1e-6)
    assert torch.equal(add_noise(x, noise, g, p=0.0), x)
    z = random_gain(x, g, max_db=6.0)
    shift = (z - x)[:, 0, 0]
    assert torch.all(shift.abs() <= 6.0 * torch.log(torch.tensor(10.0)) / 20 + 1e-6)
    assert torch.all((z - x) == shift[:, None, None])


def test_random_time_shift_is_a_circular_roll_per_clip():
    x = torch.randn(5, 20, 3)
    y = random_time_shift(x, torch.Generator().manual_seed(0))
    for i in range(5):
        assert any(torch.equal(y[i], torch.roll(x[i], k, dims=0)) for k in range(20))
    assert not torch.equal(x, y)


def test_random_colouring_adds_one_smooth_curve_per_clip():
    x = torch.randn(4, 10, 16)
    d = random_colouring(x, torch.Generator().manual_seed(1), max_gain=0.5) - x
    torch.testing.assert_close(d, d[:, :1].expand_as(d))  # the same at every frame
    assert d.abs().max() <= 3 * 0.5 + 1e-6 and d.abs().max() > 0


def test_random_speed_moves_a_tone_and_an_onset():
    from kwsos.tasks.openset import OpenSetClassifier

    hz = OpenSetClassifier().frontend.bin_hz()  # centres of the 64 LogMel bins
    x = torch.zeros(1, 100, 64)
    x[0, :, 40] = 1.0  # a steady tone in bin 40
    x[0, 50, :] += 1.0  # an onset at frame 50
    y = random_speed(x, torch.Generator().manual_seed(0), bin_hz=hz, max_change=0.0)
    torch.testing.assert_close(y, x)  # factor 1: unchanged
    g = torch.Generator().manual_seed(3)
    r = 1.0 + (torch.rand(1, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.1
    y = random_speed(x, g, bin_hz=hz, max_change=0.1)
    tone_hz = float((y[0, 10] * hz.float()).sum() / y[0, 10].sum())  # interpolated tone frequency
    assert tone_hz == pytest.approx(float(hz[40]) * float(r), rel=0.02)
    onset = float(y[0].sum(dim=1).argmax())
    assert abs(onset - 50 / float(r)) <= 1.0


def test_random_freq_warp_matches_interpolation_on_the_bin_axis_and_leaves_time_alone():
    from kwsos.features import LogMel

    hz = torch.from_numpy(LogMel().centre_hz())
    x = torch.randn(5, 16, 64, dtype=torch.float64)
    torch.testing.assert_close(
        random_freq_warp(x, torch.Generator().manual_seed(0), bin_hz=hz, max_change=0.0), x
    )
    y = random_freq_warp(x, torch.Generator().manual_seed(7), bin_hz=hz, max_change=0.2)
    r = 1.0 + (torch.rand(5, generator=torch.Generator().manual_seed(7)) * 2 - 1) * 0.2
    h = hz.numpy()
    for b in range(5):
        # reference: every frame's spectrum read at f / r (np.interp holds the edge values)
        ref = np.stack([np.interp(h / float(r[b]), h, x[b, t].numpy()) for t in range(16)])
        np.testing.assert_allclose(y[b].numpy(), ref, atol=1e-9)


def test_change_speed_is_random_speed_with_a_given_factor_and_time_stretch_keeps_pitch():
    from kwsos.augment import change_speed, random_time_stretch
    from kwsos.tasks.openset import OpenSetClassifier

    hz = OpenSetClassifier().frontend.bin_hz()
    x = torch.randn(3, 50, 64)
    g = torch.Generator().manual_seed(5)
    r = 1.0 + (torch.rand(3, generator=torch.Generator().manual_seed(5)) * 2 - 1) * 0.2
    torch.testing.assert_close(random_speed(x, g, bin_hz=hz, max_change=0.2),
                               change_speed(x, r, bin_hz=hz))  # fmt: skip
    torch.testing.assert_close(change_speed(x, torch.tensor([1.0]), bin_hz=hz), x)
    # tempo only: a steady tone stays in its bin, an onset at frame 30 moves to 30 / r
    y = torch.zeros(1, 100, 64)
    y[0, :, 20] = 1.0
    y[0, 30, :] += 1.0
    r = 1.0 + (torch.rand(1, generator=torch.Generator().manual_seed(2)) * 2 - 1) * 0.2
    z = random_time_stretch(y, torch.Generator().manual_seed(2), max_change=0.2)
    assert int(z[0, 5].argmax()) == 20 and torch.allclose(z[0, 5].sum(), torch.tensor(1.0))
    assert abs(float(z[0].sum(dim=1).argmax()) - 30 / float(r)) <= 1.0
