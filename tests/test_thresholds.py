"""Threshold estimators (Diss. 2.11, SPEC §5): hand-worked values and reference computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kwsos.thresholds import (
    GESD,
    IQR,
    MAD,
    OCSVM,
    SD,
    THRESHOLD_ESTIMATORS,
    CleverSD,
    GammaPercentile,
    HistogramPercentile,
    MultiStage,
    get_threshold_estimator,
)

FIVE = [1.0, 2.0, 3.0, 4.0, 5.0]
WITH_OUTLIER = [1.0, 2.0, 3.0, 4.0, 5.0, 100.0]


def test_sd_iqr_mad_hp_hand_worked():
    # mean 3, population std sqrt(2)
    assert SD().fit(FIVE).threshold_ == pytest.approx(3 + 1.28 * np.sqrt(2))
    assert SD(ddof=1).fit(FIVE).threshold_ == pytest.approx(3 + 1.28 * np.sqrt(2.5))
    # Q1 = 2, Q3 = 4 -> 4 + 1.5 * 2
    assert IQR().fit(FIVE).threshold_ == pytest.approx(7.0)
    # median 3, |x - 3| = 2 1 0 1 2 -> MAD 1 -> 3 + 3 * 1.4826
    assert MAD().fit(FIVE).threshold_ == pytest.approx(3 + 3 * 1.4826)
    assert MAD(beta=2).fit([1.0, 1.0, 2.0, 10.0]).threshold_ == pytest.approx(
        1.5 + 2 * 1.4826 * 0.5
    )
    # 90th percentile of 1..5 with linear interpolation: 4 + 0.6
    assert HistogramPercentile().fit(FIVE).threshold_ == pytest.approx(4.6)


def test_predict_direction_and_decision_function():
    est = SD().fit(FIVE)
    t = est.threshold_
    assert est.predict([t - 1, t, t + 1]).tolist() == [False, False, True]
    assert est.decision_function([t + 2]) == pytest.approx([2.0])
    assert est.fit_predict(WITH_OUTLIER).tolist() == [False] * 5 + [True]


def test_gamma_percentile_matches_scipy(rng):
    x = stats.gamma.rvs(3.0, loc=1.0, scale=0.5, size=400, random_state=rng)
    est = GammaPercentile().fit(x)
    a, loc, scale = stats.gamma.fit(x)
    assert est.threshold_ == pytest.approx(stats.gamma.ppf(0.9, a, loc=loc, scale=scale))
    # and close to the true 90th percentile
    assert est.threshold_ == pytest.approx(stats.gamma.ppf(0.9, 3.0, loc=1, scale=0.5), rel=0.05)
    assert 0.05 < est.predict(x).mean() < 0.15


def test_ocsvm_marks_about_nu_of_the_high_scores():
    x = np.arange(1.0, 101.0)
    est = OCSVM().fit(x)
    assert 88.0 <= est.threshold_ <= 92.0
    assert est.predict(x).mean() == pytest.approx(0.1, abs=0.02)
    # shift and scale invariant (only the order of the scores matters in 1-D)
    assert OCSVM().fit(3 * x - 500).threshold_ == pytest.approx(3 * est.threshold_ - 500, abs=1e-3)
    rbf = OCSVM(kernel="rbf").fit(x)
    assert x.max() - 20 < rbf.threshold_ < x.max() + 20


def reference_gesd(x, alpha=0.05):
    """Eq. 33-34 written out: remove the maximum while Grubbs' test rejects it."""
    x = sorted(x)
    last = None
    while len(x) >= 3:
        n = len(x)
        g = (max(x) - np.mean(x)) / np.std(x, ddof=1)
        t = stats.t.isf(alpha / (2 * n), n - 2)
        if not g > (n - 1) / np.sqrt(n) * np.sqrt(t**2 / (n - 2 + t**2)):
            break
        last = x.pop()
    return last


def test_gesd():
    # 100 is an outlier (G = 2.04 > 1.887 for n = 6); then 1..5 has G = 1.26 < 1.715
    est = GESD().fit(WITH_OUTLIER)
    assert est.threshold_ == 100.0 and est.n_outliers_ == 1
    # no outlier: the maximum
    est = GESD().fit(FIVE)
    assert est.threshold_ == 5.0 and est.n_outliers_ == 0
    rng = np.random.default_rng(3)
    for _ in range(10):
        x = np.r_[rng.normal(0, 1, 30), rng.normal(6, 1, rng.integers(0, 4))]
        expected = reference_gesd(x)
        assert GESD().fit(x).threshold_ == pytest.approx(x.max() if expected is None else expected)
    assert GESD(max_outliers=1).fit([1, 2, 3, 4, 5, 50, 100, 1000]).threshold_ == 1000


def test_clever_sd():
    # mean 19.17 + 2 * std 36.2 = 91.6 < 100 -> remove 100; 1..5: 3 + 2 * 1.41 = 5.83 > 5 -> stop
    est = CleverSD().fit(WITH_OUTLIER)
    assert est.threshold_ == 100.0 and est.n_outliers_ == 1
    assert CleverSD().fit(FIVE).threshold_ == 5.0
    # two outliers removed one at a time: the last removed (the smaller) is the threshold
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 30.0, 60.0]
    est = CleverSD().fit(x)
    assert est.threshold_ == 30.0 and est.n_outliers_ == 2


def test_multi_stage():
    # stage 1: SD on all six = 19.17 + 1.28 * 36.2 = 65.5 -> drop 100; stage 2: SD on 1..5
    est = MultiStage().fit(WITH_OUTLIER)
    assert est.threshold_ == pytest.approx(3 + 1.28 * np.sqrt(2))
    assert est.n_outliers_ == 1 and len(est.stage_thresholds_) == 2
    assert est.stage_thresholds_[0] == pytest.approx(
        np.mean(WITH_OUTLIER) + 1.28 * np.std(WITH_OUTLIER)
    )
    # one stage = the base estimator
    assert MultiStage("iqr", n_stages=1).fit(WITH_OUTLIER).threshold_ == pytest.approx(
        IQR().fit(WITH_OUTLIER).threshold_
    )
    # a base estimator instance, and base_params
    assert MultiStage(MAD(beta=2)).fit(FIVE).threshold_ == pytest.approx(
        MultiStage("mad", base_params={"beta": 2}).fit(FIVE).threshold_
    )
    with pytest.raises(ValueError, match="one-stage"):
        MultiStage("mst").fit(FIVE)


def test_registry_and_names():
    assert set(THRESHOLD_ESTIMATORS) == {
        "gamma", "histogram", "sd", "iqr", "mad", "ocsvm", "gesd", "clever_sd", "mst"
    }  # fmt: skip
    assert isinstance(get_threshold_estimator("SD", beta=2.0), SD)
    assert get_threshold_estimator("sd", beta=2.0).beta == 2.0
    assert isinstance(get_threshold_estimator("gdp"), GammaPercentile)
    assert isinstance(get_threshold_estimator("cleverSD"), CleverSD)
    x2 = get_threshold_estimator("IQR-x2", beta=0.5)
    assert isinstance(x2, MultiStage) and x2.base == "iqr" and x2.n_stages == 2
    assert x2.fit(WITH_OUTLIER).threshold_ == pytest.approx(
        MultiStage("iqr", base_params={"beta": 0.5}).fit(WITH_OUTLIER).threshold_
    )
    with pytest.raises(ValueError, match="unknown threshold estimator 'nope'"):
        get_threshold_estimator("nope")
    with pytest.raises(ValueError, match="bad arguments"):
        get_threshold_estimator("sd", gamma=1)
    assert "beta=2.0" in repr(SD(beta=2.0))


@pytest.mark.parametrize("name", sorted(THRESHOLD_ESTIMATORS))
def test_input_errors_and_degenerate_input(name):
    est = get_threshold_estimator(name)
    with pytest.raises(ValueError, match="empty"):
        est.fit([])
    with pytest.raises(ValueError, match="NaN or infinite"):
        est.fit([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        est.fit(np.ones((2, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        get_threshold_estimator(name).predict([1.0])
    assert est.fit([2.5, 2.5, 2.5]).threshold_ == 2.5
    assert est.fit([4.0]).threshold_ == 4.0
    assert not est.predict([4.0])[0]


@pytest.mark.parametrize("name", sorted(THRESHOLD_ESTIMATORS))
def test_normal_scores_give_a_sensible_threshold(name, rng):
    x = rng.normal(10.0, 1.0, 500)
    t = get_threshold_estimator(name).fit(x).threshold_
    # every estimator lands above the median and at most a little above the maximum
    assert np.median(x) < t <= x.max() + 2.0


def test_percentile_errors():
    with pytest.raises(ValueError, match="percentile"):
        HistogramPercentile(percentile=100).fit(FIVE)
    with pytest.raises(ValueError, match="nu"):
        OCSVM(nu=0).fit(FIVE)
    with pytest.raises(ValueError, match="kernel"):
        OCSVM(kernel="poly").fit(FIVE)
