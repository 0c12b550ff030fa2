"""judges.calibration against hand-computed cases and scikit-learn / scipy on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression

from judges.calibration import (
    bin_index,
    calibrator_fit,
    cross_fit,
    ece_interval,
    fold_ids,
    reliability,
)


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 1, n)
    # Right more often at a higher score, but not at the rate the score claims (miscalibrated).
    correct = rng.uniform(0, 1, n) < 0.3 + 0.5 * score**2
    return score, correct


def test_isotonic_by_hand_pool_adjacent_violators():
    # Scores in order; correct 1, 0, 1, 1: PAV pools the first two into 0.5.
    cal = calibrator_fit([0.1, 0.2, 0.3, 0.4] * 3, [1, 0, 1, 1] * 3, method="isotonic")
    assert cal.predict([0.1, 0.2, 0.3, 0.4]).tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    # Outside the fitted range: the nearest seen value, not an extrapolation.
    assert cal.predict([-5.0, 7.0]).tolist() == pytest.approx([0.5, 1.0])


def test_isotonic_equals_scikit_learn_on_the_same_data():
    score, correct = _data()
    ours = calibrator_fit(score, correct, method="isotonic").predict(score)
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(score, correct.astype(float)).predict(score)
    np.testing.assert_allclose(ours, ref)


def test_platt_equals_the_penalised_logistic_maximum_likelihood():
    # scikit-learn's LogisticRegression (C = 1, intercept not penalised) against scipy minimising
    # the same objective: sum of log losses + w^2 / 2.
    score, correct = _data(seed=3)
    y = correct.astype(float)

    def objective(theta: np.ndarray) -> float:
        z = theta[0] + theta[1] * score
        return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * theta[1] ** 2)

    b, w = optimize.minimize(objective, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    expected = 1 / (1 + np.exp(-(b + w * score)))
    np.testing.assert_allclose(calibrator_fit(score, correct, method="platt").predict(score), expected, atol=1e-4)


def test_too_little_or_one_class_data_gives_the_base_rate():
    assert calibrator_fit([0.2, 0.9, 0.5], [1, 0, 1]).predict([0.9]).tolist() == pytest.approx([2 / 3])
    assert calibrator_fit(np.linspace(0, 1, 20), np.ones(20)).predict([0.0]).tolist() == [1.0]


def test_reliability_and_ece_by_hand():
    # Bins of width 0.5 over [0, 1]: {0.2, 0.4} (mean 0.3, 1 of 2 right) and {0.6, 1.0} (mean
    # 0.8, 2 of 2 right). ECE = 0.5 * |0.3 - 0.5| + 0.5 * |0.8 - 1.0| = 0.2.
    rel = reliability([0.2, 0.4, 0.6, 1.0], [1, 0, 1, 1], bins=2)
    assert rel.counts.tolist() == [2, 2]
    assert rel.confidence.tolist() == pytest.approx([0.3, 0.8])
    assert rel.accuracy.tolist() == pytest.approx([0.5, 1.0])
    assert rel.ece == pytest.approx(0.2)
    # An edge belongs to the bin above it; the top edge to the last bin.
    assert bin_index(np.array([0.5, 0.6, 1.0]), bins=10, lo=0.5, hi=1.0).tolist() == [0, 2, 9]


def test_reliability_bins_equal_scikit_learns_calibration_curve():
    score, correct = _data(seed=5)
    rel = reliability(score, correct, bins=10)
    prob_true, prob_pred = calibration_curve(correct, score, n_bins=10, strategy="uniform")
    keep = rel.counts > 0
    np.testing.assert_allclose(rel.accuracy[keep], prob_true)
    np.testing.assert_allclose(rel.confidence[keep], prob_pred)


def test_ece_interval_brackets_resampled_eces():
    score, correct = _data(seed=7)
    lo, hi = ece_interval(score, correct, rounds=300, seed=1)
    rng = np.random.default_rng(1)
    draws = rng.integers(0, len(score), size=(300, len(score)))
    eces = [reliability(score[d], correct[d]).ece for d in draws]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(eces, [2.5, 97.5])))


def test_cross_fit_never_calibrates_a_row_on_itself():
    score, correct = _data(seed=9)
    folds = fold_ids(np.arange(len(score)) // 4, folds=5, seed=0)
    before = cross_fit(score, correct, folds)
    flipped = correct.copy()
    in_fold0 = folds == 0
    flipped[in_fold0] = ~flipped[in_fold0]
    after = cross_fit(score, flipped, folds)
    # Fold 0's own labels changed: its predictions did not (they come from folds 1-4).
    np.testing.assert_allclose(after[in_fold0], before[in_fold0])
    assert not np.allclose(after[~in_fold0], before[~in_fold0])


def test_fold_ids_keep_a_group_together():
    groups = ["p1", "p1", "p2", "p3", "p3", "p3"]
    f = fold_ids(groups, folds=2, seed=0)
    assert f[0] == f[1] and f[3] == f[4] == f[5]
