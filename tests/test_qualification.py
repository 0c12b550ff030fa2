"""reports.qualification's figures against hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from reports.qualification import qualification_figures


def test_figures_by_hand_and_against_scikit_learn():
    rng = np.random.default_rng(0)
    n = 200
    gold = rng.integers(0, 3, n)
    verdict = np.where(rng.uniform(size=n) < 0.7, gold, rng.integers(0, 3, n))
    both = np.ones(n, dtype=bool)
    both[:20] = False  # one shown order only: left out of position consistency
    agree = rng.uniform(size=n) < 0.8
    f = qualification_figures(verdict, gold, np.ones(n), both, agree, np.arange(n) // 2, rounds=200)
    assert f.n == n
    assert f.accuracy == pytest.approx(np.mean(verdict == gold))
    assert f.kappa == pytest.approx(cohen_kappa_score(verdict, gold))
    assert f.consistency == pytest.approx(agree[20:].mean())
    for value, ci in ((f.accuracy, f.accuracy_ci), (f.kappa, f.kappa_ci), (f.consistency, f.consistency_ci)):
        assert ci is not None and ci[0] <= value <= ci[1]
    assert f.ece is not None and f.ece_ci is not None
    assert set(f.reliability) == {"before", "after"}


def test_no_pairs_no_figures():
    empty = np.array([], dtype=np.int64)
    f = qualification_figures(empty, empty, empty.astype(float), empty.astype(bool), empty.astype(bool), empty, rounds=10)
    assert f.n == 0 and f.kappa is None
