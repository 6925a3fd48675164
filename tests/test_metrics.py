import math

import numpy as np
import pytest

from kwsos.events import Event
from kwsos.metrics import (
    bounded_f1_ev,
    eer,
    event_based_scores,
    f1_ev,
    file_key,
    openness,
    roc_auc,
    top1_auc,
    top1_eer,
    weighted_accuracy,
)


def E(f, on, off, lab):
    return Event(f, on, off, lab)


def test_hand_worked_micro_f1():
    ref = [E("a.wav", 1.0, 2.0, "x"), E("a.wav", 3.0, 4.0, "y"), E("b.wav", 0.5, 1.0, "x")]
    est = [
        E("dir/a.wav", 1.15, 2.1, "x"),  # hit: onset within 0.2 s, offset within max(0.2, 0.5*1 s)
        E("dir/a.wav", 3.3, 4.0, "y"),  # miss: onset 0.3 s late
        E("b.wav", 0.5, 1.0, "y"),  # wrong label
    ]
    s = event_based_scores(ref, est)
    # TP = 1, n_est = 3, n_ref = 3 -> P = R = F1 = 1/3
    assert (s.precision, s.recall, s.f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert s.n_ref == 3 and s.n_est == 3
    assert s.per_label["x"].f1 == pytest.approx(2 / 3)  # 1 TP, 1 est, 2 ref
    assert s.per_label["y"].recall == 0.0


def test_offset_collar_is_half_the_length():
    ref = [E("a.wav", 0.0, 2.0, "x")]
    assert event_based_scores(ref, [E("a.wav", 0.0, 2.9, "x")]).f1 == 1.0  # within 1.0 s
    assert event_based_scores(ref, [E("a.wav", 0.0, 3.1, "x")]).f1 == 0.0


def test_false_alarms_in_files_without_reference_count():
    ref = [E("a.wav", 0.0, 1.0, "x")]
    est = [E("a.wav", 0.0, 1.0, "x"), E("c.wav", 0.0, 1.0, "x")]
    assert event_based_scores(ref, est).precision == pytest.approx(0.5)
    assert event_based_scores(ref, est, files=["a.wav"]).precision == 1.0


def test_file_key_windows_paths():
    assert file_key("audio\\sub\\x.wav") == "x.wav" == file_key("audio/sub/x.wav")


# --- anomaly detection and open-set metrics -------------------------------------------------


def brute_roc(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points by counting at every threshold (all scores and +-inf), FPR ascending."""
    ths = np.concatenate(
        [[np.inf], np.sort(np.unique(np.concatenate([neg, pos])))[::-1], [-np.inf]]
    )
    fpr = np.array([np.mean(neg > t) for t in ths])
    tpr = np.array([np.mean(pos > t) for t in ths])
    return fpr, tpr


def brute_auc(neg, pos) -> float:
    """Theorem 2.10: P(score_anomalous > score_normal), ties count one half."""
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def brute_eer(fpr, tpr) -> float:
    """Intersect each segment of the ROC polyline with FPR = 1 - TPR."""
    for k in range(len(fpr) - 1):
        (x0, y0), (x1, y1) = (fpr[k], tpr[k]), (fpr[k + 1], tpr[k + 1])
        g0, g1 = x0 + y0 - 1, x1 + y1 - 1
        if g0 == 0:
            return x0
        if g0 < 0 < g1 or g1 == 0:
            t = -g0 / (g1 - g0)
            return x0 + t * (x1 - x0)
    raise AssertionError("no crossing")


def test_roc_auc_and_eer_hand_worked():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # pairs (anomalous > normal): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert roc_auc(y, s) == pytest.approx(0.75)
    # a threshold between 0.35 and 0.4: FPR = 1/2 (0.4), FNR = 1/2 (0.35)
    assert eer(y, s) == pytest.approx(0.5)
    assert eer([0, 0, 1, 1], [1, 2, 3, 4]) == 0.0
    assert eer([0, 0, 1, 1], [3, 4, 1, 2]) == 1.0
    # no threshold with FPR = FNR: the ROC segment (0, 1/2) -> (1, 1/2) crosses at FPR = 1/2
    assert eer([0, 1, 1], [0.5, 0.2, 0.9]) == pytest.approx(0.5)


def test_roc_auc_eer_match_brute_force(rng):
    for _ in range(20):
        n_neg, n_pos = rng.integers(1, 15, size=2)
        # coarse rounding creates ties, also across the two classes
        neg = np.round(rng.normal(0, 1, n_neg), 1)
        pos = np.round(rng.normal(0.8, 1, n_pos), 1)
        y = np.r_[np.zeros(n_neg), np.ones(n_pos)]
        s = np.r_[neg, pos]
        fpr, tpr = brute_roc(neg, pos)
        assert roc_auc(y, s) == pytest.approx(brute_auc(neg, pos))
        assert roc_auc(y, s) == pytest.approx(np.trapezoid(tpr, fpr))
        assert eer(y, s) == pytest.approx(brute_eer(fpr, tpr))


def test_pauc_is_mcclish_standardised(rng):
    neg, pos = rng.normal(0, 1, 40), rng.normal(1, 1, 30)
    y, s = np.r_[np.zeros(40), np.ones(30)], np.r_[neg, pos]
    fpr, tpr = brute_roc(neg, pos)
    p = 0.1
    # exact area of the ROC polyline left of FPR = p (cut the segment that crosses p)
    partial = 0.0
    for k in range(len(fpr) - 1):
        x0, x1, y0, y1 = fpr[k], fpr[k + 1], tpr[k], tpr[k + 1]
        if x0 >= p:
            break
        if x1 > p:
            y1, x1 = y0 + (y1 - y0) * (p - x0) / (x1 - x0), p
        partial += 0.5 * (y0 + y1) * (x1 - x0)
    expected = 0.5 * (1 + (partial - p * p / 2) / (p - p * p / 2))
    assert roc_auc(y, s, max_fpr=p) == pytest.approx(expected, abs=1e-12)


def test_anomaly_metric_input_errors():
    with pytest.raises(ValueError, match="both normal"):
        roc_auc([0, 0], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        eer([0, 1], [0.0, np.nan])
    with pytest.raises(ValueError, match="entries"):
        eer([0, 1, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        roc_auc([0, 2], [0.0, 1.0])
    with pytest.raises(ValueError, match="max_fpr"):
        roc_auc([0, 1], [0.0, 1.0], max_fpr=0.0)
    with pytest.raises(ValueError, match="distinct"):
        f1_ev([0, 1], [1.0, 1.0])


def test_f1_ev_hand_worked():
    y, s = [0, 0, 1, 1], [0.0, 1.0, 2.0, 3.0]
    # F1(score > t): t=0 -> 2*2/(3+2) = 0.8, t=1 -> 1, t=2 -> 2/(1+2), each over 1/3 of the range
    assert f1_ev(y, s) == pytest.approx((0.8 + 1.0 + 2 / 3) / 3)
    # unequal spacing: thresholds 0, 1, 3, 4 with weights 1/4, 2/4, 1/4
    assert f1_ev(y, [0.0, 1.0, 3.0, 4.0]) == pytest.approx(0.8 / 4 + 1.0 * 2 / 4 + 2 / 3 / 4)


def test_bounded_f1_ev_hand_worked():
    y, s = [0, 0, 1, 1], [0.0, 1.0, 2.0, 3.0]
    # normal scores 0, 1: mean 0.5, std 0.5 -> theta_min = 0.5 - 0.2 * 0.5 = 0.4
    # best F1 (= 1) only for t in [1, 2): theta_opt = 1.5 -> theta_max = 1.6
    # thresholds 0.4, 1, 1.6: F1 0.8 on [0.4, 1), 1 on [1, 1.6)
    assert bounded_f1_ev(y, s) == pytest.approx(0.8 * 0.5 + 1.0 * 0.5)
    # reference-code choice of theta_opt (the lowest optimal score, 1): range [0.4, 1.1]
    assert bounded_f1_ev(y, s, theta_opt=1.0) == pytest.approx((0.8 * 0.6 + 1.0 * 0.1) / 0.7)
    # beta = 0 on a separable set: range [mean, theta_opt] = [0.5, 1.5]
    assert bounded_f1_ev(y, s, beta=0.0) == pytest.approx(0.8 * 0.5 + 1.0 * 0.5)


def brute_f1_ev(y, s, lo, hi) -> float:
    """Midpoint rule on a fine grid of the piecewise-constant F1 over [lo, hi]."""
    y, s = np.asarray(y, bool), np.asarray(s, float)
    grid = np.linspace(lo, hi, 200001)
    mids = 0.5 * (grid[1:] + grid[:-1])
    f1 = [2 * np.sum(y & (s > t)) / (np.sum(s > t) + y.sum()) for t in mids[::50]]
    return float(np.mean(f1))


def test_f1_ev_matches_fine_grid(rng):
    neg, pos = rng.normal(0, 1, 12), rng.normal(1.5, 1, 8)
    y, s = np.r_[np.zeros(12), np.ones(8)], np.r_[neg, pos]
    assert f1_ev(y, s) == pytest.approx(brute_f1_ev(y, s, s.min(), s.max()), abs=2e-3)
    lo = neg.mean() - 0.2 * neg.std()
    hi = 1.0 + 0.2 * neg.std()
    assert bounded_f1_ev(y, s, theta_opt=1.0) == pytest.approx(brute_f1_ev(y, s, lo, hi), abs=2e-3)


def test_openness_table_28():
    assert openness(34, 34) == 0.0
    assert openness(29, 34) == pytest.approx(1 - math.sqrt(58 / 63))
    assert round(openness(29, 34), 2) == 0.04
    assert round(openness(24, 34), 2) == 0.09
    with pytest.raises(ValueError, match="n_test_classes"):
        openness(5, 4)
    with pytest.raises(ValueError, match="positive integer"):
        openness(0, 4)


Y_TRUE = ["a", "a", "b", "b", "u", "u"]


def test_weighted_accuracy_hand_worked():
    y_pred = ["a", "u", "b", "a", "u", "b"]
    # known term: a 1/2, b 1/2 -> 0.5; binary term: right at 0, 2, 3, 4 -> 4/6
    assert weighted_accuracy(Y_TRUE, y_pred, unknown_label="u") == pytest.approx(
        0.5 * 0.5 + 0.5 * 4 / 6
    )
    # Table 29 protocol: unknown term = rejected unknown clips 1/2
    assert weighted_accuracy(
        Y_TRUE, y_pred, unknown_label="u", rejection_term="unknown"
    ) == pytest.approx(0.5)
    # Eq. 27 with the closed-set prediction: clip 1 was rejected but its top-1 class is right
    closed = ["a", "a", "b", "a", "a", "b"]
    assert weighted_accuracy(
        Y_TRUE, y_pred, unknown_label="u", closed_set_pred=closed
    ) == pytest.approx(0.5 * 0.75 + 0.5 * 4 / 6)
    assert weighted_accuracy(Y_TRUE, y_pred, unknown_label="u", beta=1.0) == pytest.approx(0.5)
    assert weighted_accuracy(Y_TRUE, Y_TRUE, unknown_label="u") == 1.0
    # integer labels, unknown = -1, per-class mean (not per-clip): class 0 has 3 clips
    assert weighted_accuracy([0, 0, 0, 1, -1], [0, 0, 1, 0, -1], unknown_label=-1) == pytest.approx(
        0.5 * (2 / 3 + 0) / 2 + 0.5 * 1.0
    )


def test_weighted_accuracy_errors():
    with pytest.raises(ValueError, match="no known-class clip"):
        weighted_accuracy(["u"], ["u"], unknown_label="u")
    with pytest.raises(ValueError, match="needs unknown clips"):
        weighted_accuracy(["a"], ["a"], unknown_label="u", rejection_term="unknown")
    with pytest.raises(ValueError, match="beta"):
        weighted_accuracy(["a"], ["a"], unknown_label="u", beta=1.5)
    with pytest.raises(ValueError, match="entries"):
        weighted_accuracy(["a"], ["a", "u"], unknown_label="u")


def brute_top1_roc(y_true, y_pred, conf, unknown):
    """Eq. 28-29 literally: at each threshold, FP_top1 = known clips rejected or confused."""
    y_true, y_pred, conf = np.asarray(y_true), np.asarray(y_pred), np.asarray(conf, float)
    is_u = y_true == unknown
    a = -conf  # anomaly score
    ths = np.concatenate([[np.inf], np.unique(a)[::-1], [-np.inf]])
    fpr, tpr = [], []
    for t in ths:
        rejected = a > t
        fp = np.sum(~is_u & rejected) + np.sum(~is_u & ~rejected & (y_pred != y_true))
        fpr.append(fp / np.sum(~is_u))
        tpr.append(np.sum(is_u & rejected) / np.sum(is_u))
    return np.array(fpr), np.array(tpr)


def test_top1_auc_eer_hand_worked():
    y_pred = ["a", "a", "b", "a", "b", "a"]  # clip 3 (class b) confused with a
    conf = [0.9, 0.6, 0.8, 0.7, 0.5, 0.65]
    # 3 of 4 known clips right; AUC(unknown vs right known) = 5/6 (0.65 beats 0.6 only)
    assert top1_auc(Y_TRUE, y_pred, conf, unknown_label="u") == pytest.approx(0.75 * 5 / 6)
    fpr, tpr = brute_top1_roc(Y_TRUE, y_pred, conf, "u")
    assert top1_auc(Y_TRUE, y_pred, conf, unknown_label="u") == pytest.approx(
        np.trapezoid(tpr, fpr)
    )
    assert top1_eer(Y_TRUE, y_pred, conf, unknown_label="u") == pytest.approx(brute_eer(fpr, tpr))
    # without confusions the top-1 metrics are the ordinary ones
    y_ok = ["a", "a", "b", "b", "a", "a"]
    is_u = np.array(Y_TRUE) == "u"
    assert top1_auc(Y_TRUE, y_ok, conf, unknown_label="u") == pytest.approx(
        roc_auc(is_u, -np.array(conf))
    )
    assert top1_eer(Y_TRUE, y_ok, conf, unknown_label="u") == pytest.approx(
        eer(is_u, -np.array(conf))
    )
    # every known clip confused: FPR_top1 = 1 everywhere
    y_bad = ["b", "b", "a", "a", "a", "a"]
    assert top1_auc(Y_TRUE, y_bad, conf, unknown_label="u") == 0.0
    assert top1_eer(Y_TRUE, y_bad, conf, unknown_label="u") == 1.0


def test_top1_matches_brute_force(rng):
    classes = np.array(["a", "b", "c"])
    for _ in range(20):
        n = int(rng.integers(6, 25))
        y_true = rng.choice(np.r_[classes, ["u"]], n)
        y_true[:2] = ["a", "u"]
        y_pred = np.where(rng.random(n) < 0.7, y_true, rng.choice(classes, n))
        y_pred[y_pred == "u"] = rng.choice(classes, int(np.sum(y_pred == "u")))
        conf = np.round(rng.random(n) + 0.3 * (y_true != "u"), 1)
        fpr, tpr = brute_top1_roc(y_true, y_pred, conf, "u")
        assert top1_auc(y_true, y_pred, conf, unknown_label="u") == pytest.approx(
            np.trapezoid(tpr, fpr)
        )
        assert top1_eer(y_true, y_pred, conf, unknown_label="u") == pytest.approx(
            brute_eer(fpr, tpr)
        )


def test_top1_errors():
    with pytest.raises(ValueError, match="top-1 known class"):
        top1_eer(["a", "u"], ["a", "u"], [0.5, 0.2], unknown_label="u")
    with pytest.raises(ValueError, match="both known and unknown"):
        top1_auc(["a", "a"], ["a", "a"], [0.5, 0.2], unknown_label="u")


def test_event_match_counts_equal_sed_eval(rng):
    """The fast matcher used by threshold sweeps gives sed_eval's counts (optimal matching,
    onset and offset collars) on random jittered, relabelled, duplicated and spurious events."""
    from kwsos.metrics import event_match_counts, micro_f1

    labels = ["a", "b", "c"]
    for _trial in range(8):
        ref, est = [], []
        for f in range(4):
            t = 0.0
            for _ in range(rng.integers(0, 6)):
                t += rng.uniform(0.1, 1.5)
                d = rng.uniform(0.2, 1.2)
                e = Event(f"dir/f{f}.wav", t, t + d, labels[rng.integers(3)])
                ref.append(e)
                t += d
                for _ in range(rng.integers(0, 3)):  # 0-2 estimates near each event
                    j = rng.normal(0, 0.2, 2)
                    lab = e.label if rng.random() < 0.8 else labels[rng.integers(3)]
                    est.append(Event(f"f{f}.wav", max(0.0, e.onset + j[0]), e.offset + j[1], lab))
            if rng.random() < 0.5:
                est.append(Event(f"f{f}.wav", t + 1, t + 1.5, "a"))  # a false alarm
        files = [f"f{f}.wav" for f in range(4)]
        want = event_based_scores(ref, est, files=files)
        counts = event_match_counts(ref, est, files=files)
        f1, p, r = micro_f1(counts)
        assert (f1, p, r) == pytest.approx((want.f1, want.precision, want.recall), abs=1e-12)
        for lab, (hits, n_ref, n_est) in counts.items():
            row = want.per_label[lab]
            assert (n_ref, n_est) == (row.n_ref, row.n_est)
            assert row.recall == pytest.approx(hits / n_ref if n_ref else 0.0)


def test_event_match_counts_hand_worked():
    from kwsos.metrics import event_match_counts

    ref = [Event("x.wav", 1.0, 2.0, "a"), Event("x.wav", 1.1, 2.1, "a"), Event("x.wav", 5, 6, "b")]
    # one estimate could match either "a"; the second only the first: optimal = 2 hits
    est = [
        Event("x.wav", 1.05, 2.05, "a"),
        Event("x.wav", 0.85, 1.85, "a"),
        Event("x.wav", 5, 6, "a"),
    ]
    assert event_match_counts(ref, est) == {"a": (2, 2, 3), "b": (0, 1, 0)}
