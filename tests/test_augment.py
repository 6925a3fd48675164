import torch

from kwsos.augment import mixup, spec_augment, time_reverse


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
