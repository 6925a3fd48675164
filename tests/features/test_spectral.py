import numpy as np
import pytest
import torchaudio.functional as AF

from kwsos.features import (
    HFCC,
    MFCC,
    LogMel,
    deltas,
    erb_hz,
    extractor_from_dict,
    get_extractor,
    hfcc_filterbank,
    hz_to_mel,
    mel_filterbank,
    sliding_cmvn,
)


def test_erb_hand_values():
    # Moore & Glasberg 1983: 6.23 f^2 + 93.39 f + 28.52 with f in kHz
    assert erb_hz(1000.0) == pytest.approx(6.23 + 93.39 + 28.52)
    assert erb_hz(0.0) == pytest.approx(28.52)


def test_hfcc_filterbank_geometry():
    fb = hfcc_filterbank(4096, 16000, n_filters=20, f_min_hz=200, f_max_hz=6000, e_factor=1.0)
    freqs = np.fft.rfftfreq(4096, 1 / 16000)
    assert fb.shape == (20, 2049)
    centres = freqs[fb.argmax(axis=1)]
    mels = hz_to_mel(centres)
    # centres uniformly spaced on the Mel scale (to within a bin)
    assert np.allclose(np.diff(mels), np.diff(mels).mean(), atol=4.0)
    for i in (5, 12, 19):
        nz = freqs[fb[i] > 0]
        lo, hi = nz.min(), nz.max()
        # bandwidth = ERB(centre), centre = Mel midpoint of the edges
        assert hi - lo == pytest.approx(erb_hz(centres[i]), abs=2 * 16000 / 4096)
        assert hz_to_mel(centres[i]) == pytest.approx((hz_to_mel(lo) + hz_to_mel(hi)) / 2, abs=5)
    # HFCC filters overlap less than MFCC filters of the same count
    mfb = mel_filterbank(4096, 16000, n_filters=20, f_min_hz=200, f_max_hz=6000)
    assert ((fb[:-1] > 0) & (fb[1:] > 0)).sum() < ((mfb[:-1] > 0) & (mfb[1:] > 0)).sum()


def test_mel_filterbank_matches_torchaudio():
    ours = mel_filterbank(1024, 16000, n_filters=40)
    ref = AF.melscale_fbanks(513, 0.0, 8000.0, 40, 16000, norm=None, mel_scale="htk").numpy().T
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_deltas_hand_worked():
    x = np.array([[0.0], [1.0], [4.0], [9.0], [16.0]])
    # t=2: (1*(9-1) + 2*(16-0)) / 10 = 4.0 ; t=0: (1*(1-0) + 2*(4-0)) / 10 = 0.9 (edges replicated)
    d = deltas(x)
    assert d[2, 0] == pytest.approx(4.0)
    assert d[0, 0] == pytest.approx(0.9)
    assert d[4, 0] == pytest.approx((1 * (16 - 9) + 2 * (16 - 4)) / 10)


@pytest.mark.parametrize(
    "ex", [HFCC(), MFCC(), LogMel(), HFCC(use_deltas=False)], ids=lambda e: e.name
)
@pytest.mark.parametrize("block", [1, 333, 1600, 16000])
def test_stream_equals_whole(rng, ex, block):
    x = (0.1 * rng.standard_normal(16000 * 2 + 123)).astype(np.float32)
    whole = ex(x)
    parts = list(ex.stream(x[i : i + block] for i in range(0, len(x), block)))
    got = np.concatenate(parts)
    assert got.shape == whole.shape == (ex.n_frames(len(x)), ex.dim)
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-4)


def test_shapes_and_frame_times():
    h = HFCC()
    assert (h.win_samples, h.hop_samples, h.frame_rate) == (640, 160, 100.0)  # 40 ms / 10 ms
    assert h.dim == 39  # c0..c12 + deltas + delta-deltas
    assert HFCC(drop_c0=True).dim == 36
    assert LogMel().dim == 64
    on, off = h.frame_bounds_s(0, 9)
    assert on == pytest.approx((640 - 160) / 2 / 16000)
    assert off - on == pytest.approx(0.1)
    assert h.n_frames(639) == 0 and h.n_frames(640) == 1 and h.n_frames(800) == 2


def test_hfcc_tells_tones_apart(rng):
    t = np.arange(8000) / 16000
    a = np.sin(2 * np.pi * 300 * t).astype(np.float32)
    b = np.sin(2 * np.pi * 2000 * t).astype(np.float32)
    raw = HFCC(drop_c0=True, cmvn_frames=0)
    fa, fa2, fb = raw(a), raw(a * 0.5), raw(b)
    cos = lambda u, v: (u * v).sum() / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    assert cos(fa[20], fa2[20]) > 0.999  # c0 dropped: gain-invariant
    assert cos(fa[20], fb[20]) < 0.5


def test_round_trip_and_errors():
    h = HFCC(n_filters=24, e_factor=2.0)
    assert extractor_from_dict(h.to_dict()) == h
    assert get_extractor("mfcc").name == "mfcc"
    with pytest.raises(ValueError, match="unknown features"):
        get_extractor("nope")


def test_sliding_cmvn_against_naive(rng):
    x = rng.standard_normal((50, 3)) * [1.0, 5.0, 0.1] + [3.0, -2.0, 7.0]
    got = sliding_cmvn(x, 4)
    for t in (0, 3, 25, 49):
        w = x[max(0, t - 4) : t + 5]
        np.testing.assert_allclose(
            got[t], (x[t] - w.mean(0)) / np.sqrt(w.var(0) + 1e-8), rtol=1e-10
        )
    np.testing.assert_allclose(sliding_cmvn(x, 4, 10, 20), got[10:20])


def test_cmvn_removes_channel_gain(rng):
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    tilt = np.convolve(x, [1.0, 0.9], mode="same").astype(np.float32)  # a different "microphone"
    h = HFCC()
    plain = HFCC(cmvn_frames=0)
    gap_norm = np.abs(h(x) - h(tilt)).mean()
    gap_raw = np.abs(plain(x) - plain(tilt)).mean() / plain(x).std()
    assert gap_norm < 0.5 * gap_raw


@pytest.mark.parametrize(
    "ex",
    [
        HFCC(),
        HFCC(use_deltas=False),
        HFCC(drop_c0=True, n_ceps=20),
        MFCC(),
        MFCC(use_deltas=False, drop_c0=True),
        LogMel(),
        LogMel(n_mels=40),
    ],
)
def test_dim_is_the_width_of_the_output(ex):
    """``dim`` is computed from the settings (a bank loads without running the extractor);
    it must be the width the extractor really produces."""
    out = ex(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    assert out.shape[1] == ex.dim
