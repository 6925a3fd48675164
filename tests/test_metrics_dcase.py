"""DCASE Task 2 official metrics (kwsos.metrics): hand-worked values and sklearn references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from kwsos.metrics import (
    DCASE_EPS,
    dcase_official_score,
    dcase_section_scores,
    decision_scores,
    domain_auc,
    harmonic_mean,
)

# One section: source normals (sn), target normals (tn), source anomalies (sa), target anomalies (ta)
SCORES = np.array([0.0, 0.05, 0.5, 0.6, 0.1, 0.2, 0.7])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1])
TARGET = np.array([False, False, True, True, False, False, True])


def test_domain_auc_uses_the_domains_normals_and_all_anomalies():
    # target normals {0.5, 0.6} vs ALL anomalies {0.1, 0.2, 0.7}: only 0.7 wins, 2 of 6 pairs
    assert domain_auc(LABELS, SCORES, TARGET) == pytest.approx(2 / 6)
    # the other rule (target normals + target anomalies only) would give 1.0
    only_target = roc_auc_score(LABELS[TARGET], SCORES[TARGET])
    assert only_target == 1.0
    # source normals {0, 0.05} lie below every anomaly
    assert domain_auc(LABELS, SCORES, ~TARGET) == 1.0


def test_domain_auc_matches_sklearn_on_the_official_selection(rng):
    y = rng.integers(0, 2, 60)
    s = rng.normal(size=60) + y
    t = rng.random(60) < 0.5
    keep = t | (y == 1)
    assert domain_auc(y, s, t) == pytest.approx(roc_auc_score(y[keep], s[keep]))
    assert domain_auc(y, s, t, max_fpr=0.1) == pytest.approx(
        roc_auc_score(y[keep], s[keep], max_fpr=0.1)
    )


def test_domain_auc_without_normals_is_an_error():
    with pytest.raises(ValueError, match="no normal"):
        domain_auc([1, 1, 0], [0.1, 0.2, 0.3], [True, True, False])


def test_decision_scores_hand_worked():
    # tp = 2 (idx 0, 4), fp = 1 (idx 2), fn = 1 (idx 1)
    p, r, f = decision_scores([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    # nothing predicted anomalous: the evaluators' eps rule gives 0, not NaN
    assert decision_scores([1, 0], [0, 0]) == (0.0, 0.0, 0.0)
    # no anomaly at all and none predicted
    assert decision_scores([0, 0], [0, 0]) == (0.0, 0.0, 0.0)


def test_decision_scores_match_sklearn(rng):
    y = rng.integers(0, 2, 50)
    p = rng.integers(0, 2, 50)
    ref = precision_recall_fscore_support(y, p, average="binary", zero_division=0)[:3]
    assert decision_scores(y, p) == pytest.approx(ref)


def test_harmonic_mean_floors_at_eps():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / (2 + 1))
    assert harmonic_mean([0.0, 1.0]) == pytest.approx(2 / (1 / DCASE_EPS + 1))
    with pytest.raises(ValueError):
        harmonic_mean([math.nan, 1.0])
    with pytest.raises(ValueError):
        harmonic_mean([])


def test_official_score_is_one_hmean_over_all_values():
    src, tgt, pauc = [0.8, 0.9], [0.5, 0.7], [0.6, 0.55]
    expected = 6 / sum(1 / v for v in src + tgt + pauc)
    assert dcase_official_score(src, tgt, pauc) == pytest.approx(expected)
    # not the mean of per-machine hmeans
    per_machine = [3 / (1 / 0.8 + 1 / 0.5 + 1 / 0.6), 3 / (1 / 0.9 + 1 / 0.7 + 1 / 0.55)]
    assert dcase_official_score(src, tgt, pauc) != pytest.approx(np.mean(per_machine))
    with pytest.raises(ValueError):
        dcase_official_score([0.8], [0.5, 0.6], [0.7])


def test_section_scores_hand_case():
    dec = np.array([0, 0, 1, 0, 0, 1, 1])
    r = dcase_section_scores(LABELS, SCORES, TARGET, dec)
    assert r.auc == pytest.approx(8 / 12)  # 0.7 beats 4 normals, 0.1 and 0.2 beat 2 each
    assert r.pauc == pytest.approx(roc_auc_score(LABELS, SCORES, max_fpr=0.1))
    assert r.auc_source == 1.0
    assert r.auc_target == pytest.approx(1 / 3)
    # source clips: y = [0, 0, 1, 1], dec = [0, 0, 0, 1] -> P = 1, R = 0.5
    assert (r.precision_source, r.recall_source) == pytest.approx((1.0, 0.5))
    assert r.f1_source == pytest.approx(2 / 3)
    # target clips: y = [0, 0, 1], dec = [1, 0, 1] -> P = 0.5, R = 1
    assert (r.precision_target, r.recall_target, r.f1_target) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (r.n_normal, r.n_anomaly) == (4, 3)


def test_section_scores_without_domains_or_decisions():
    r = dcase_section_scores(LABELS, SCORES)
    assert r.auc == pytest.approx(8 / 12)
    assert math.isnan(r.auc_source) and math.isnan(r.f1_target)
    r = dcase_section_scores(LABELS, SCORES, TARGET)
    assert r.auc_target == pytest.approx(1 / 3) and math.isnan(r.f1_source)
    with pytest.raises(ValueError, match="is_target"):
        dcase_section_scores(LABELS, SCORES, None, LABELS)
    with pytest.raises(ValueError):
        dcase_section_scores([0, 0], [0.1, 0.2])  # one class only
