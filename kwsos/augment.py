"""Data augmentation shared by the training recipes: mixup, SpecAugment, time reversal.

All functions act on batches of log-Mel inputs ``(B, T, F)`` (torch tensors) and take an explicit
``torch.Generator`` so that training is reproducible from a seed.
"""

from __future__ import annotations

import torch

__all__ = ["mixup", "spec_augment", "time_reverse"]


def mixup(
    x: torch.Tensor,
    targets: tuple[torch.Tensor, ...],
    generator: torch.Generator,
    *,
    alpha: float | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """Mixup (Zhang et al. 2018) with one coefficient per sample.

    Every sample ``i`` is mixed with sample ``perm[i]`` of the same batch:
    ``lam * x_i + (1 - lam) * x_perm[i]``, and every soft-target matrix the same way (labels are
    summed with the same weights). ``lam ~ U(0, 1)`` as in the dissertation (Sec. 3.4, 6.3.4), or
    ``Beta(alpha, alpha)`` when ``alpha`` is given.

    Returns
    -------
    x_mixed, targets_mixed, lam
        ``lam`` has shape ``(B,)``.
    """
    b = x.shape[0]
    if alpha is None:
        lam = torch.rand(b, generator=generator)
    else:
        dist = torch.distributions.Beta(alpha, alpha)
        lam = dist.sample((b,))  # Beta has no generator argument; seeded via torch.manual_seed
    lam = lam.to(x.device, x.dtype)
    perm = torch.randperm(b, generator=generator).to(x.device)
    shape = (b,) + (1,) * (x.ndim - 1)
    xm = lam.view(shape) * x + (1 - lam.view(shape)) * x[perm]
    tm = tuple(lam[:, None] * t + (1 - lam[:, None]) * t[perm] for t in targets)
    return xm, tm, lam


def spec_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    freq_masks: int = 2,
    freq_width: int = 8,
    time_masks: int = 1,
    time_width: int = 2,
    warp_frames: int = 2,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) on ``(B, T, F)``: time warp, frequency and time masks.

    Time warp moves a random interior frame by up to ``warp_frames`` and stretches the two sides
    linearly (interpolating between frames); masks are filled with each sample's mean value. The
    widths are drawn uniformly in ``[0, width]`` per mask and sample. Defaults suit 16-frame,
    64-bin segments.
    """
    b, t_len, f_len = x.shape
    out = x.clone()
    if warp_frames > 0 and t_len > 2 * warp_frames + 2:
        centre = torch.randint(warp_frames + 1, t_len - warp_frames - 1, (b,), generator=generator)
        shift = torch.randint(-warp_frames, warp_frames + 1, (b,), generator=generator)
        dest = (centre + shift).float()
        grid = torch.arange(t_len, dtype=torch.float32)[None, :].expand(b, t_len)
        c, d = centre.float()[:, None], dest[:, None]
        # source position for every output frame: [0, d] <- [0, c], [d, T-1] <- [c, T-1]
        src = torch.where(
            grid <= d, grid * c / d, c + (grid - d) * (t_len - 1 - c) / (t_len - 1 - d)
        ).to(x.device)
        lo = src.floor().long().clamp(0, t_len - 1)
        hi = (lo + 1).clamp(max=t_len - 1)
        w = (src - lo.float()).unsqueeze(-1).to(x.dtype)
        idx = torch.arange(b, device=x.device)[:, None]
        out = (1 - w) * out[idx, lo] + w * out[idx, hi]
    fill = out.mean(dim=(1, 2), keepdim=True)
    for n_masks, width, axis_len, axis in (
        (freq_masks, freq_width, f_len, 2),
        (time_masks, time_width, t_len, 1),
    ):
        for _ in range(n_masks):
            w = torch.randint(0, width + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (axis_len - w + 1).float()).long()
            pos = torch.arange(axis_len)[None, :]
            m = ((pos >= start[:, None]) & (pos < (start + w)[:, None])).to(x.device)
            m = m[:, None, :] if axis == 2 else m[:, :, None]
            out = torch.where(m, fill, out)
    return out


def time_reverse(x: torch.Tensor) -> torch.Tensor:
    """Reverse segments ``(B, T, F)`` along time (the TACos "reversed keyword" classes, Diss. 6.3.5)."""
    return torch.flip(x, dims=(1,))
