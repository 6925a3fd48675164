import numpy as np

from kwsos.backends.sliding import SlidingWindowDetector


def _det():
    return SlidingWindowDetector(0.5, segment_frames=16).fit(
        [np.array([1.0, 0.0]), np.array([0.0, 1.0])], ["a", "b"], [4.4, 3]
    )


def test_median_filter_length_is_nearest_odd():
    assert list(_det().median_frames_) == [5, 3]


def test_positive_run_becomes_a_box_extended_by_half_a_segment():
    det = _det()
    f = np.tile([0.0, 1.0], (60, 1))  # all "b"-like ...
    f[20:31] = [1.0, 0.0]  # ... except 11 frames of "a"
    f[40] = [1.0, 0.0]  # an isolated "a" frame: removed by the 5-frame median filter
    d = det.detect([f[:25], f[25:]])
    a = d[d["keyword"] == 0]
    assert len(a) == 1
    assert (a["start"][0], a["end"][0]) == (20 - 8, 30 + 7)
    assert a["cost"][0] == 0.0


def test_candidates_are_all_frames_below_max_cost():
    det = _det()
    f = np.array([[1.0, 0.0], [0.6, 0.8]])
    c = det.candidates([f], max_cost=0.45)
    got = sorted(zip(c["start"], c["keyword"], np.round(c["cost"], 3), strict=True))
    assert got == [(0, 0, 0.0), (1, 0, 0.4), (1, 1, 0.2)]


def test_per_keyword_thresholds_equal_separate_runs():
    det = _det()
    f = np.tile([0.0, 1.0], (60, 1))
    f[20:31] = [0.8, 0.6]  # "a" at cost 0.2 (and "b" at cost 0.4) for 11 frames
    cand = det.candidates([f])
    both = det.postprocess(cand, np.array([0.1, 0.5]))
    a_only = det.postprocess(cand, 0.1)
    b_only = det.postprocess(cand, 0.5)
    assert len(a_only[a_only["keyword"] == 0]) == 0
    np.testing.assert_array_equal(both, b_only[b_only["keyword"] == 1])
