"""Data augmentation shared by the training recipes: mixup, SpecAugment, time reversal, random
circular time shifts, random spectral colouring and speed perturbation.

All functions act on batches of log-Mel inputs ``(B, T, F)`` (torch tensors) and take an explicit
``torch.Generator`` so that training is reproducible from a seed.
"""

from __future__ import annotations

import torch

__all__ = [
    "change_speed",
    "mixup",
    "random_colouring",
    "random_freq_warp",
    "random_speed",
    "random_time_stretch",
    "random_time_shift",
    "spec_augment",
    "time_reverse",
]


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


def random_time_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll every clip ``(B, T, F)`` circularly along time by its own uniform random offset.

    For clips of (quasi-)periodic sounds such as alarms this is a random start point of the
    cycle; it keeps a clip-level network from memorising where in the clip a shot's events sit
    (the few-shot open-set classifier, :mod:`kwsos.openset`).
    """
    b, t_len, f_len = x.shape
    shift = torch.randint(0, t_len, (b,), generator=generator).to(x.device)
    idx = (torch.arange(t_len, device=x.device)[None, :] - shift[:, None]) % t_len
    return torch.gather(x, 1, idx[:, :, None].expand(b, t_len, f_len))


def random_colouring(
    x: torch.Tensor, generator: torch.Generator, *, max_gain: float = 0.4, n_terms: int = 3
) -> torch.Tensor:
    """Add a random smooth gain curve over frequency to log spectra ``(B, T, F)``.

    The curve ``sum_k a_k cos(pi k f / (F - 1))``, ``k = 1..n_terms``, ``a_k ~ U(-max_gain,
    max_gain)`` per clip, imitates the colouring of another loudspeaker or microphone
    (``max_gain`` is in the units of ``x``: 0.4 in natural-log magnitude is about 3.5 dB per
    term).
    """
    b, _, f_len = x.shape
    a = (torch.rand(b, n_terms, generator=generator) * 2 - 1) * max_gain
    f = torch.linspace(0.0, 1.0, f_len)
    basis = torch.stack([torch.cos(torch.pi * k * f) for k in range(1, n_terms + 1)])
    return x + (a @ basis).to(x.device, x.dtype)[:, None, :]


def random_speed(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    bin_hz: torch.Tensor,
    max_change: float = 0.1,
) -> torch.Tensor:
    """Speed perturbation of log-Mel clips ``(B, T, F)``, done on the spectrogram.

    Every clip gets a factor ``r ~ U(1 - max_change, 1 + max_change)`` and is played ``r`` times
    faster: the output frame ``t`` is read at input frame ``r * t`` (circularly, as the clips are
    rolled anyway) and the output bin with centre frequency ``f`` at the input frequency ``f / r``
    (linear interpolation between the bins, whose centre frequencies ``bin_hz`` (F,) are given
    in increasing order; frequencies outside them take the edge bins). This is the waveform
    speed perturbation of speech recipes (Ko et al. 2015) without recomputing the features: a
    device that plays its alarm a little higher and faster.
    """
    r = 1.0 + (torch.rand(x.shape[0], generator=generator) * 2.0 - 1.0) * max_change
    return change_speed(x, r, bin_hz=bin_hz)


def change_speed(x: torch.Tensor, r: torch.Tensor, *, bin_hz: torch.Tensor) -> torch.Tensor:
    """Play log-Mel clips ``(B, T, F)`` ``r`` (B,) times faster, on the spectrogram.

    The deterministic part of :func:`random_speed`: output frame ``t`` is read at input frame
    ``r * t`` (circularly) and the output bin with centre frequency ``f`` at ``f / r``, both by
    linear interpolation (``bin_hz`` (F,): the bins' centre frequencies, increasing).
    """
    r = torch.as_tensor(r, dtype=torch.float32).reshape(-1).expand(x.shape[0])
    return _warp_frequency(_warp_time(x, r), bin_hz, r)


def _warp_time(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Output frame ``t`` of clip ``i`` read at input frame ``r[i] * t`` (circularly, linear
    interpolation): clip ``i`` played ``r[i]`` times faster, its pitch unchanged."""
    b, t_len, _ = x.shape
    src_t = (torch.arange(t_len, dtype=torch.float32)[None, :] * r[:, None]) % t_len
    t0 = src_t.floor().long()
    wt = (src_t - t0).to(x.dtype)
    t1 = (t0 + 1) % t_len
    idx = torch.arange(b)[:, None].to(x.device)
    t0, t1, wt = t0.to(x.device), t1.to(x.device), wt.to(x.device)
    return (1 - wt)[..., None] * x[idx, t0] + wt[..., None] * x[idx, t1]


def random_time_stretch(
    x: torch.Tensor, generator: torch.Generator, *, max_change: float = 0.2
) -> torch.Tensor:
    """Tempo perturbation of log-Mel clips ``(B, T, F)``, pitch unchanged.

    Every clip gets ``r ~ U(1 - max_change, 1 + max_change)`` and its frames are read at ``r``
    times the rate (circularly, linear interpolation): an alarm whose beeps come a little
    faster or slower. With :func:`random_freq_warp` it varies pitch and tempo independently,
    as devices of one alarm type do (:func:`random_speed` changes both together).
    """
    r = 1.0 + (torch.rand(x.shape[0], generator=generator) * 2.0 - 1.0) * max_change
    return _warp_time(x, r)


def _warp_frequency(x: torch.Tensor, bin_hz: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Read the output bin with centre frequency ``f`` of clip ``i`` at the input frequency
    ``f / r[i]`` (linear interpolation between the bins, whose centre frequencies ``bin_hz`` are
    increasing; frequencies outside them take the edge bins)."""
    b, t_len, f_len = x.shape
    hz = bin_hz.to(torch.float64)
    src_hz = hz[None, :] / r[:, None].to(torch.float64)
    pos = torch.searchsorted(hz, src_hz.contiguous()).clamp(1, f_len - 1)
    lo_hz, hi_hz = hz[pos - 1], hz[pos]
    frac = ((src_hz - lo_hz) / (hi_hz - lo_hz)).clamp(0.0, 1.0)
    src_f = (pos - 1).to(torch.float64) + frac
    f0 = src_f.floor().long().clamp(0, f_len - 1)
    f1 = (f0 + 1).clamp(max=f_len - 1)
    wf = (src_f - f0).to(x.device, x.dtype)[:, None, :]
    f0, f1 = f0.to(x.device), f1.to(x.device)
    g0 = torch.gather(x, 2, f0[:, None, :].expand(b, t_len, f_len))
    g1 = torch.gather(x, 2, f1[:, None, :].expand(b, t_len, f_len))
    return (1 - wf) * g0 + wf * g1


def random_freq_warp(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    bin_hz: torch.Tensor,
    max_change: float = 0.1,
) -> torch.Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton 2013) of log-Mel segments ``(B, T, F)``.

    Every segment gets a factor ``r ~ U(1 - max_change, 1 + max_change)`` and its spectrum is
    scaled in frequency by ``r`` (the bin at ``f`` reads the input at ``f / r``; time is left
    alone): the formants of a shorter or longer vocal tract, so that a keyword network trained on
    a few shots of one voice sees more voices (the enrollment and test speakers of the KWS
    benchmarks differ).
    """
    r = 1.0 + (torch.rand(x.shape[0], generator=generator) * 2.0 - 1.0) * max_change
    return _warp_frequency(x, bin_hz, r)


def random_gain(
    x: torch.Tensor, generator: torch.Generator, *, max_db: float = 10.0
) -> torch.Tensor:
    """Scale each log-Mel segment ``(B, T, F)`` by a random gain in ``[-max_db, +max_db]`` dB
    (an additive constant in the log domain): shots are peak-normalised one by one, keywords in a
    recording are not, so the model must not depend on the absolute level."""
    gain_db = (torch.rand(x.shape[0], generator=generator) * 2 - 1) * max_db
    return x + (gain_db * (torch.log(torch.tensor(10.0)) / 20)).to(x.device, x.dtype)[:, None, None]


def add_noise(
    x: torch.Tensor,
    noise: torch.Tensor,
    generator: torch.Generator,
    *,
    snr_db: tuple[float, float] = (0.0, 25.0),
    p: float = 0.5,
    floor: float = 1e-8,
) -> torch.Tensor:
    """Mix random background segments into log-Mel segments at a random SNR.

    ``x`` ``(B, T, F)`` and ``noise`` ``(N, T, F)`` are ``log(magnitude + floor)``; magnitudes
    are added (phases ignored), the noise scaled so that the mean magnitude ratio of segment to
    noise is ``snr_db``. Each segment is mixed with probability ``p``. Isolated shots are clean
    and padded with digital silence; keywords in recordings are not (Diss. 6.3.4 trains on clean
    studio speech and does not need this; kwsos' TTS benchmarks and real rooms do).
    """
    b = x.shape[0]
    pick = torch.randint(0, noise.shape[0], (b,), generator=generator)
    snr = snr_db[0] + torch.rand(b, generator=generator) * (snr_db[1] - snr_db[0])
    use = torch.rand(b, generator=generator) < p
    mx = torch.exp(x) - floor
    mn = torch.exp(noise[pick].to(x.device, x.dtype)) - floor
    ratio = mx.mean(dim=(1, 2)) / mn.mean(dim=(1, 2)).clamp_min(1e-12)
    gain = ratio / (10 ** (snr / 20)).to(x.device, x.dtype)
    mixed = torch.log((mx + gain[:, None, None] * mn).clamp_min(0) + floor)
    return torch.where(use.to(x.device)[:, None, None], mixed, x)
