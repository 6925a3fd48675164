import numpy as np

from kwsos.backends.sliding import SlidingWindowDetector


def _templates():
    # shots of "a": 4 and 5 frames (mean 4.5 -> 4 -> odd 5); of "b": 3 frames
    a1, a2, b = np.ones((4, 2)), np.ones((5, 2)), np.ones((3, 2))
    return [a1, a2, b], ["a", "a", "b"]


def _det():
    centres = {"a": [1.0, 0.0], "b": [0.0, 1.0]}
    return SlidingWindowDetector(0.5, segment_frames=16, centres=centres).fit(*_templates())


def test_median_filter_length_is_nearest_odd():
    assert list(_det().median_frames_) == [5, 3]


def test_without_given_centres_a_keyword_centre_is_its_mean_template_direction():
    a = np.array([[2.0, 0.0], [1.0, 1.0]])  # unit rows (1, 0) and (0.707, 0.707)
    b = np.array([[0.0, 3.0]])
    det = SlidingWindowDetector(0.5).fit([a, b], ["a", "b"])
    mean_a = np.array([1 + 0.5**0.5, 0.5**0.5]) / 2
    np.testing.assert_allclose(det.centres_[0], mean_a / np.linalg.norm(mean_a))
    np.testing.assert_allclose(det.centres_[1], [0.0, 1.0])
    np.testing.assert_allclose(
        det.cost_curves(np.array([[0.0, 1.0]]))[:, 0], [1 - det.centres_[0][1], 0.0]
    )


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
