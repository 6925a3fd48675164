"""Segmenting and overlap-averaging (Diss. 6.3.4, Fig. 28)."""

import numpy as np
import pytest

from kwsos.features import (
    SILENCE_LOGMEL,
    gather_segments,
    inference_starts,
    overlap_average,
    training_segments,
)


def test_training_segments_hop_and_padding():
    x = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    s = training_segments(x, segment_frames=16, hop_frames=3)
    # 16 + 3 * 2 = 22 >= 20: three segments starting at 0, 3, 6
    assert s.shape == (3, 16, 3)
    assert s[1, 0, 0] == 3 and s[2, 0, 0] == 6
    assert s[2, 13, 0] == 19 and np.all(s[2, 14:] == SILENCE_LOGMEL)


def test_short_shot_is_one_zero_padded_segment():
    x = np.ones((5, 2), np.float32)
    s = training_segments(x)
    assert s.shape == (1, 16, 2)
    assert np.all(s[0, :5] == 1) and np.all(s[0, 5:] == SILENCE_LOGMEL)


def test_inference_segments_are_centred_on_frames():
    starts = inference_starts(10)
    assert list(starts) == list(range(-8, 2))  # one segment per frame, half a segment of padding
    x = np.arange(10, dtype=np.float32)[:, None]
    segs = gather_segments(x, starts)
    # segment j covers frames j-8 .. j+7; frame j sits at position 8
    assert all(segs[j, 8, 0] == j for j in range(10))
    assert np.all(segs[0, :8] == SILENCE_LOGMEL)


@pytest.mark.parametrize("n", [1, 7, 16, 40])
@pytest.mark.parametrize("hop", [1, 4, 16])
def test_every_frame_is_covered(n, hop):
    starts = inference_starts(n, hop_frames=hop)
    covered = np.zeros(n, int)
    for s in starts:
        covered[max(s, 0) : min(s + 16, n)] += 1
    assert covered.min() >= 1
    if hop == 1 and n > 16:
        assert covered[8 : n - 8].min() == 16


def test_constant_embedding_stays_constant():
    starts = inference_starts(30)
    emb = np.tile(np.array([1.0, -2.0, 0.5], np.float32), (len(starts), 16, 1))
    out = overlap_average(emb, starts, 30)
    np.testing.assert_allclose(out, np.tile([1.0, -2.0, 0.5], (30, 1)))


def test_impulse_lands_in_its_frame():
    """An embedding that marks input frame t (through gather) is averaged back onto frame t."""
    n, t = 40, 23
    x = np.zeros((n, 1), np.float32)
    x[t] = 1.0
    starts = inference_starts(n)
    segs = gather_segments(x, starts, pad_value=0.0)  # "embedding" = the input itself
    out = overlap_average(segs, starts, n)
    expected = np.zeros((n, 1))
    expected[t] = 1.0
    np.testing.assert_allclose(out, expected)


def test_overlap_average_matches_loop_reference():
    rng = np.random.default_rng(0)
    n = 25
    starts = inference_starts(n, hop_frames=4)
    emb = rng.standard_normal((len(starts), 16, 2)).astype(np.float32)
    out = overlap_average(emb, starts, n)
    for i in range(n):
        vals = [emb[j, i - s] for j, s in enumerate(starts) if s <= i < s + 16]
        np.testing.assert_allclose(out[i], np.mean(vals, axis=0), rtol=1e-5, atol=1e-6)
