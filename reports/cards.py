"""Report sections of issue 14: the judge report cards, the evaluator leaderboard and the
style-controlled leaderboards. Figures come from reports/metrics (judge_card.py, style.py,
judges.py, classification.py); these functions only register them with the report's Resampler
and render them, in the same two-step shape as the sections of build.py.

Evaluators are every rater that is not a human (kind "judge" today; a panel of judges, if it
is a rater of its own kind, is treated the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .metrics.bootstrap import Estimate, Resampler
from .metrics.judge_card import (
    CARD_SCORES,
    GoldCard,
    against_gold,
    human_reference,
    mean_valid_mass,
    preference_fairness,
    repetition_stability,
    throughput,
)
from .metrics.judges import length_bias, position_both_orders, self_preference
from .metrics.leaderboard import comparisons, kendall_tau_between, models_compared
from .metrics.memo import by_rater, memoised, on_pairs_of, pair_rows, relative_order, rows_of
from .metrics.style import length_controlled_win_rates, style_controlled_bt

# The keys of report["judge_cards"] rows whose value is a rate with a `<key>_ci` beside it.
CARD_RATES = (
    "accuracy", "kappa", "macro_f1", "position_consistency", "first_position_rate", "preference_fairness",
    "repetition_stability", "length_preference", "human_length_preference", "valid_mass",
)  # fmt: skip
TOKENS_NOTE = "Judgments stored before token counts were recorded, or by a server that sends no usage, are left out."


@dataclass
class CardInputs:
    """What the cards read beyond the annotation table (reports.selectors: judgments_table,
    judge_runs_table, response_styles). Empty frames give cards without those figures."""

    judgments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["rater", "item", "protocol", "unit", "verdict", "valid_mass", "latency_ms", "size",
                 "prompt_tokens", "generated_tokens"]))
    runs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["rater", "temperature", "done", "begin", "end"]))
    styles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["response", "length", "headers", "list_items", "bold"]))  # fmt: skip


def _fmt() -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    # build.py imports this module; its formatting helpers are read when rendering.
    from .build import _ci, _num, _val

    return _val, _ci, _num


def _rate(out: dict, key: str, est: Estimate | None, k: int | None = None) -> None:
    _val, _ci, _ = _fmt()
    out[key] = _val(est, k)
    out[f"{key}_ci"] = _ci(est, k)


def _evaluators(shown: list[str], raters: dict) -> list[str]:
    return [r for r in shown if raters[r]["kind"] != "human"]


def _recode_items(df: pd.DataFrame, item_ids: pd.Index) -> pd.DataFrame:
    """The report's item codes for a side table keyed by item id; rows on items the report has
    no annotation for are dropped (they have no unit in the shared bootstrap)."""
    if df.empty:
        return df.assign(item=pd.Series(dtype=np.int64))
    codes = item_ids.get_indexer(pd.Index(df["item"]))
    return df.loc[codes >= 0].assign(item=codes[codes >= 0])


CARD_VERDICT_COLUMNS = ["pair", "item", "model_a", "model_b", "len_a", "len_b", "verdict"]
CARD_PREF_COLUMNS = ["pair", "item", "strength", "shown_order"]


@memoised
def _card(v: pd.DataFrame, p: pd.DataFrame, j: pd.DataFrame, r: pd.DataFrame, gold: pd.DataFrame, model: str,
          kind: str, boot: Resampler) -> dict[str, Any]:  # fmt: skip
    """One evaluator's card figures from its verdicts, per-order preferences, judgments and runs
    (position, length and self-preference besides: judge_cards_section takes the bias
    audit's where it computed the same)."""
    temperature = float(r["temperature"].iloc[0]) if len(r) else 0.0
    both = p["shown_order"].nunique() == 2
    return {
        "gold": against_gold(v, gold, boot),
        "fairness": preference_fairness(p, boot) if both else None,
        # Shi et al.'s stability is of pairwise verdicts: the ranking trials only.
        "repetition": repetition_stability(j[j["protocol"] == "ranking"], boot, temperature=temperature),
        "mass": mean_valid_mass(j, boot),
        "speed": throughput(j, r),
        "temperature": temperature,
        "model": model if model and model != "nan" else None,
        "kind": kind,
        "n_judgments": len(j),
    }


def judge_cards_section(
    prefs: pd.DataFrame, verdicts: pd.DataFrame, gold: pd.DataFrame, shown: list[str], raters: dict,
    inputs: CardInputs, item_ids: pd.Index, boot: Resampler, audit: dict[tuple[str, str], Any] | None = None,
) -> tuple[Callable[[], list[dict]], dict[str, GoldCard]]:
    """One card per evaluator. Returns (render, the gold scores per evaluator) so the evaluator
    leaderboard reuses them."""
    judgments = _recode_items(inputs.judgments, item_ids)
    runs = inputs.runs
    cards: list[tuple[str, dict[str, Any]]] = []
    gold_cards: dict[str, GoldCard] = {}
    evaluators = _evaluators(shown, raters)
    v_of = by_rater(verdicts, evaluators, CARD_VERDICT_COLUMNS)
    p_of = by_rater(prefs, evaluators, CARD_PREF_COLUMNS)
    j_of = by_rater(judgments, evaluators, [c for c in judgments.columns if c != "rater"])
    r_of = by_rater(runs, evaluators, [c for c in runs.columns if c != "rater"])
    audit = audit or {}
    for rater in evaluators:
        with boot.scope(rater):
            model = raters[rater]["model"]
            v, p = v_of[rater], p_of[rater]
            parts = dict(_card(v, p, j_of[rater], r_of[rater], gold, model, raters[rater]["kind"], boot))
            # The bias audit's figures where it computed the same ones (a judge's): one computation,
            # one set of estimates on the shared bootstrap.
            if ("position", rater) in audit:
                parts["position"] = audit["position", rater]
            else:
                parts["position"] = position_both_orders(p, gold, boot) if p["shown_order"].nunique() == 2 else None
            parts["length"] = audit["length", rater] if ("length", rater) in audit else length_bias(v, gold, boot)
            own = model and model != "nan"
            if ("self", rater) in audit:
                parts["self"] = audit["self", rater]
            else:
                parts["self"] = self_preference(v, gold, model, boot) if own else None
            gold_cards[rater] = parts["gold"]
            cards.append((rater, parts))

    def render() -> list[dict]:
        _val, _ci, _num = _fmt()
        out = []
        for rater, c in cards:
            g, pos, fair, rep, lb, sp, speed = (c["gold"], c["position"], c["fairness"], c["repetition"], c["length"],
                                                c["self"], c["speed"])  # fmt: skip
            row: dict[str, Any] = {"judge": rater, "kind": c["kind"], "model": c["model"], "n": g.n}
            for k, name in enumerate(CARD_SCORES):
                _rate(row, name, g.estimate, k)
            row["confusion"] = g.confusion.astype(int).tolist()
            row["position_n"] = pos.n if pos else 0
            _rate(row, "position_consistency", pos.estimate if pos else None, 0)
            row["n_inconsistent"] = pos.n_inconsistent if pos else None
            _rate(row, "first_position_rate", pos.estimate if pos else None, 1)
            _rate(row, "preference_fairness", fair.estimate if fair else None)
            row["n_primacy"] = fair.primacy if fair else None
            row["n_recency"] = fair.recency if fair else None
            row["temperature"] = c["temperature"]
            row["repetition_n"] = rep.n
            row["repetition_greedy"] = rep.greedy
            # Measured when some unit was judged twice; else 1.0 for a greedy judge, by construction.
            row["repetition_stability"] = _val(rep.estimate) if rep.estimate is not None else rep.value
            row["repetition_stability_ci"] = _ci(rep.estimate)
            row["repetition_measured"] = rep.estimate is not None
            row["length_n"] = lb.n
            _rate(row, "length_preference", lb.estimate, 0)
            row["human_length_n"] = lb.n_gold
            _rate(row, "human_length_preference", lb.estimate, 1)
            if sp is not None and sp.n:
                sp_row = {"n": sp.n, "n_gold": sp.n_gold}
                for k, name in enumerate(("raw_win_rate", "gold_win_rate", "dbg", "equal_opportunity_gap")):
                    _rate(sp_row, name, sp.estimate, k)
                row["self_preference"] = sp_row
            else:
                row["self_preference"] = None
            row["valid_mass_n"] = c["mass"].n if c["mass"] is not None else 0
            _rate(row, "valid_mass", c["mass"])
            row["judgments_timed"] = speed.judgments
            row["judgments_per_second"] = _num(speed.per_second)
            row["latency_ms"] = _num(speed.latency_ms)
            row["prompt_chars_per_judgment"] = _num(speed.prompt_chars)
            row["tokens_per_judgment"] = _num(speed.tokens)
            row["tokens_per_judgment_n"] = speed.tokens_n
            row["prompt_tokens_per_judgment"] = _num(speed.prompt_tokens)
            row["generated_tokens_per_judgment"] = _num(speed.generated_tokens)
            row["tokens_note"] = TOKENS_NOTE if speed.tokens_n < c["n_judgments"] else ""
            out.append(row)
        return out

    return render, gold_cards


def evaluators_section(
    verdicts: pd.DataFrame, gold_cards: dict[str, GoldCard], boot: Resampler
) -> Callable[[], dict]:
    """The evaluator leaderboard's reference rows: every human against the others' gold, each
    and pooled (the pooled row is the bar a judge must clear). The judges' rows are their cards."""
    humans = human_reference(_human_verdicts(verdicts), boot)

    def render() -> dict:
        rows = []
        for rater, card in humans.items():
            row: dict[str, Any] = {"rater": rater, "n": card.n}
            for k, name in enumerate(CARD_SCORES):
                _rate(row, name, card.estimate, k)
            rows.append(row)
        return {"human_reference": rows}

    return render


def _human_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The humans' combined verdicts as human_reference reads them, `order` as the rank among
    them: the same tie-breaks in their gold, whatever other raters' rows came between."""
    h = verdicts.loc[(verdicts["kind"] == "human").to_numpy(), ["rater", "kind", "pair", "item", "verdict", "order"]]
    return relative_order(h)


def style_section(
    verdicts: pd.DataFrame, prefs: pd.DataFrame, shown: list[str], raters: dict, styles: pd.DataFrame
) -> Callable[[], dict]:
    """Per rater group (humans; each evaluator), the style-controlled Bradley-Terry board beside
    the plain one fitted the same way, Kendall's tau between them, and length-controlled win
    rates. Intervals are Wald intervals (see metrics/style.py), not the report's bootstrap."""
    groups: dict[str, list[str]] = {}
    humans = [r for r in shown if raters[r]["kind"] == "human"]
    if humans:
        groups["humans"] = humans
    for r in _evaluators(shown, raters):
        groups[r] = [r]
    responses = pair_rows(prefs, ["pair", "response_a", "response_b"]) if len(prefs) else None
    boards = {}
    for name, members in groups.items():
        if responses is None:
            continue
        v = rows_of(verdicts, members, ["pair", "model_a", "model_b", "verdict", "len_a", "len_b"])
        board = _style_boards(v, on_pairs_of(responses, v), styles)
        if board is not None:
            boards[name] = board

    def render() -> dict:
        _, _, _num = _fmt()
        out = {}
        for name, (styled, plain, lc) in boards.items():
            rows = [{"model": m, "elo": _num(styled.elo[i]), "plain_elo": _num(plain.elo[i]),
                     "ci": None if styled.ci is None else [_num(styled.ci[0, i]), _num(styled.ci[1, i])],
                     "plain_ci": None if plain.ci is None else [_num(plain.ci[0, i]), _num(plain.ci[1, i])]}
                    for i, m in enumerate(styled.models)]  # fmt: skip
            rows.sort(key=lambda row: -(row["elo"] or 0))
            out[name] = {
                "n": styled.n,
                "models": rows,
                "kendall_tau": kendall_tau_between({r["model"]: r["elo"] for r in rows},
                                                   {r["model"]: r["plain_elo"] for r in rows}),  # fmt: skip
                "features": styled.features,
                "coefficients": {k: _num(v) for k, v in styled.coefficients.items()},
                "identifiable": styled.identifiable,
                "length_controlled": [
                    {"model": x.model, "n": x.n, "win_rate": _num(x.win_rate), "lc_win_rate": _num(x.lc_win_rate),
                     "lc_win_rate_ci": None if x.ci is None else [_num(x.ci[0]), _num(x.ci[1])],
                     "length_coefficient": _num(x.length_coefficient)}
                    for x in lc
                ],  # fmt: skip
            }
        return out

    return render


@memoised
def _style_boards(verdicts: pd.DataFrame, responses: pd.DataFrame, styles: pd.DataFrame) -> tuple[Any, Any, Any] | None:
    """One group's style-controlled and plain boards and length-controlled win rates, from its
    verdicts (pair, model_a, model_b, verdict, len_a, len_b); None with under two models."""
    comps = comparisons(verdicts)
    if comps.empty:
        return None
    comps = verdicts.loc[comps.index].merge(responses, on="pair", how="left")
    if len(models_compared(comps)) < 2:
        return None
    styled = style_controlled_bt(comps, styles, control=True)
    plain = style_controlled_bt(comps, styles, control=False)
    return styled, plain, length_controlled_win_rates(comps)
