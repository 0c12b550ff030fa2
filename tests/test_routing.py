"""annotate.routing: each policy's decision on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import routing as r
from annotate.verdicts import TIE, A, B


def test_uniform_asks_until_the_overlap():
    p = r.Policy("uniform", overlap=3)
    assert [r.decide(p, v).need_more for v in ([], [A], [A, A], [A, A, A])] == [True, True, True, False]


@pytest.mark.parametrize(
    ("votes", "need_more", "reason"),
    [
        ([], True, r.NEED_K),
        ([A], True, r.NEED_K),
        ([A, A], False, r.AGREED),  # the first two agree: a majority of three already
        ([A, B], True, r.DISAGREED),
        ([A, B, B], False, r.AGREED),
        ([A, B, TIE], False, r.CAP),  # no two agree and the cap is reached
    ],
)
def test_adaptive_overlap_stops_at_k_agreeing_humans(votes, need_more, reason):
    d = r.decide(r.Policy("adaptive", overlap=3, k=2), votes)
    assert (d.need_more, d.reason) == (need_more, reason)


def test_adaptive_with_a_larger_cap_keeps_asking_on_disagreement():
    p = r.Policy("adaptive", overlap=5, k=3)
    assert r.decide(p, [A, A, B, B]).need_more
    assert not r.decide(p, [A, A, B, A]).need_more
    assert r.decide(p, [A, B, TIE, A, B]).reason == r.CAP


def _judge(**kw) -> r.Policy:
    return r.Policy("judge", overlap=3, k=2, threshold=0.8, spot_check_rate=0.0, **kw)


def test_confident_judge_closes_a_pair_on_one_agreeing_human():
    signal = r.JudgeSignal(verdict=B, confidence=0.9)
    first = r.decide(_judge(), [], signal)
    assert first.need_more and first.priority == r.PRIORITY_CONFIDENT
    d = r.decide(_judge(), [B], signal)
    assert (d.need_more, d.reason) == (False, r.JUDGE_CONFIRMED)
    assert r.routed_gold([B], signal, d) == B


def test_a_human_who_disagrees_with_a_confident_judge_returns_the_pair_to_humans():
    signal = r.JudgeSignal(verdict=B, confidence=0.9)
    d = r.decide(_judge(), [A], signal)
    assert (d.need_more, d.reason) == (True, r.JUDGE_CONTRADICTED)
    # The judge's vote is not counted: [A, B] is a disagreement, not two votes for B.
    assert r.decide(_judge(), [A, B], signal).need_more
    done = r.decide(_judge(), [A, B, A], signal)
    assert not done.need_more and r.routed_gold([A, B, A], signal, done) == A


def test_unsure_and_order_inconsistent_pairs_go_first_with_full_overlap():
    unsure = r.JudgeSignal(verdict=A, confidence=0.6)
    inconsistent = r.JudgeSignal(verdict=TIE, confidence=0.95, orders_agree=False)
    d_unsure = r.decide(_judge(), [A, A], unsure)
    d_orders = r.decide(_judge(), [A, A], inconsistent)
    assert d_unsure.need_more and d_unsure.reason == r.JUDGE_UNSURE
    assert d_orders.need_more and d_orders.reason == r.ORDERS_DISAGREE
    assert not r.decide(_judge(), [A, A, B], unsure).need_more
    confident = r.decide(_judge(), [], r.JudgeSignal(verdict=A, confidence=0.9))
    assert d_orders.priority > d_unsure.priority > confident.priority
    # The less sure, the earlier.
    assert r.decide(_judge(), [], r.JudgeSignal(A, 0.3)).priority > d_unsure.priority
    # unsure="adaptive": two agreeing humans are enough.
    assert not r.decide(_judge(unsure="adaptive"), [A, A], unsure).need_more


def test_judge_alone_only_when_min_humans_is_zero():
    signal = r.JudgeSignal(verdict=A, confidence=0.95)
    d = r.decide(_judge(min_humans=0), [], signal)
    assert (d.need_more, d.reason) == (False, r.JUDGE_ONLY)
    assert r.routed_gold([], signal, d) == A
    assert r.decide(_judge(min_humans=1), [], signal).need_more


def test_no_judge_signal_falls_back_to_adaptive_overlap():
    assert r.decide(_judge(), [A], None).reason == r.NO_JUDGE
    assert not r.decide(_judge(), [A, A], None).need_more


def test_spot_check_is_a_fixed_draw_at_about_the_rate():
    draws = [r.is_spot_check(k, rate=0.1) for k in range(20_000)]
    assert abs(np.mean(draws) - 0.1) < 0.01
    assert draws == [r.is_spot_check(k, rate=0.1) for k in range(20_000)]
    assert not any(r.is_spot_check(k, rate=0.0) for k in range(100))
    # A spot-checked confident pair is routed as if there were no judge.
    p = r.Policy("judge", overlap=3, k=2, threshold=0.5, spot_check_rate=1.0)
    d = r.decide(p, [A], r.JudgeSignal(A, 0.99), pair_key=1)
    assert (d.need_more, d.reason) == (True, r.SPOT_CHECK)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        r.Policy("adaptive", overlap=2, k=3)
    with pytest.raises(ValueError):
        r.Policy("judge", threshold=1.5)
    with pytest.raises(ValueError):
        r.Policy("sometimes")  # type: ignore[arg-type]


def test_bt_label_values_favour_close_and_rarely_compared_models():
    # Models 0 and 1 are close; 2 is far below. Comparing 0 with 1 decides the ranking.
    elo = np.array([1100.0, 1090.0, 800.0])
    games = np.array([[0, 20, 20], [20, 0, 20], [20, 20, 0]], dtype=float)
    v = r.bt_label_values(elo, games)
    assert v[0, 1] > v[0, 2] and v[0, 1] > v[1, 2]
    np.testing.assert_allclose(v, v.T)
    # A pair already compared a thousand times gains less from one more label.
    many = games.copy()
    many[0, 1] = many[1, 0] = 1000
    assert r.bt_label_values(elo, many)[0, 1] < v[0, 1]


def test_bt_label_value_is_the_sherman_morrison_variance_reduction():
    # Two models: value = P(wrong order) * (share of Var(theta_0 - theta_1) one label removes).
    from scipy.stats import norm

    elo = np.array([1050.0, 950.0])
    games = np.array([[0, 9.0], [9.0, 0]])
    theta = elo * np.log(10) / 400
    p = 1 / (1 + np.exp(-(theta[0] - theta[1])))
    info = 10 * p * (1 - p)  # 9 games + 1 prior game
    var_before, var_after = 1 / info, 1 / (info + p * (1 - p))
    wrong = norm.cdf(-(theta[0] - theta[1]) / np.sqrt(var_before))
    expected = wrong * (var_before - var_after) / var_before
    assert r.bt_label_values(elo, games)[0, 1] == pytest.approx(expected)
