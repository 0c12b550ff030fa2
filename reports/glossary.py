"""Every term the report pages print, with its one-line definition (METRICS.md in one sentence).

One place: the hover text (`{% term %}`) and the "Terms on this page" list (`{% glossary %}`)
both read TERMS, so a definition can't differ between the tooltip, the page and another page.
Also the one place that decides when a figure has too little data to say anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    label: str  # as printed in headings and tables
    definition: str  # one line, consistent with ../shared/specs/METRICS.md


# Below this many units (pairs, responses, items) a rate or coefficient is shown as "too few to
# say (n = k)" instead of a number: its bootstrap interval collapses ([100%, 100%] at n = 1) or
# spans the whole scale, and either reads as a finding.
MIN_N = 10
# A rank correlation between two orderings of fewer models than this is ±1 or 0 by construction.
MIN_MODELS_FOR_RANK = 3

TERMS: dict[str, Term] = {
    "n": Term("n", "How many units (pairs, responses or items) the figure is computed over."),
    "ci": Term("95% CI", "95% bootstrap interval: items resampled with replacement, percentile interval."),
    "too_few": Term(
        "too few to say",
        f"Fewer than {MIN_N} units (or fewer than {MIN_MODELS_FOR_RANK} models for a rank correlation): "
        "no figure is shown, because its interval would mean nothing.",
    ),
    "combined_verdict": Term(
        "combined verdict",
        "A rater who judged both shown orders counts once: the verdict both orders agree on, or tie.",
    ),
    "gold": Term("gold", "The majority verdict of the human raters of a pair; a tie in counts goes to the earliest."),
    "implied_preference": Term(
        "implied preference",
        "The verdict a rater's ratings of A and B imply: the higher-rated response, or tie when equal.",
    ),
    "consistency": Term(
        "consistency",
        "Share of pairs where the preference implied by a rater's ratings equals their ranking verdict.",
    ),
    "strength": Term("|s|", "Ranking strength: 1 slightly, 2 better, 3 much better (0 = about the same)."),
    "percent_agreement": Term("percent agreement", "Share of shared pairs where two raters give the same verdict."),
    "cohen_kappa": Term(
        "Cohen's κ", "Agreement of two raters beyond chance: 1 = always agree, 0 = what chance alone gives."
    ),
    "quadratic_kappa": Term(
        "quadratic κ", "Cohen's kappa with quadratic weights: near misses on the A/tie/B order count partly."
    ),
    "fleiss_kappa": Term(
        "Fleiss' κ", "Agreement beyond chance of a pool of more than two raters on the same pairs (1 = total)."
    ),
    "krippendorff_alpha": Term(
        "Krippendorff's α",
        "Agreement beyond chance of any number of raters, missing values allowed; 1 = total, 0 = chance.",
    ),
    "spearman": Term("Spearman's ρ", "Rank correlation of two raters' scores of the same responses (-1..1)."),
    "kendall_tau_b": Term(
        "Kendall's τ-b", "Rank correlation from concordant minus discordant pairs, corrected for ties (-1..1)."
    ),
    "kendall_tau": Term(
        "Kendall's τ",
        "Rank correlation of the two leaderboards (Bradley-Terry vs mean rating): 1 = same order, -1 = reversed.",
    ),
    "accuracy": Term("accuracy", "Share of pairs where the judge's verdict equals gold, tie counted as a class."),
    "accuracy_no_ties": Term("accuracy without tied gold", "Accuracy over the pairs whose gold is not a tie."),
    "macro": Term("macro P / R / F1", "Precision, recall and F1 per verdict (A, tie, B), averaged unweighted."),
    "position_consistency": Term(
        "position consistency", "Share of pairs where a judge's verdicts on both shown orders agree."
    ),
    "first_position_rate": Term(
        "first-position rate", "Among a judge's inconsistent pairs, the share where it picked whatever was shown first."
    ),
    "first_shown_win_rate": Term(
        "first-shown win rate",
        "For raters who saw one order: share of non-tied verdicts won by the response shown first (0.5 = no bias).",
    ),
    "agreement_both_orders": Term(
        "agreement with both orders", "Share of pairs where the judge's verdicts in both orders equal gold."
    ),
    "raw_win_rate": Term(
        "raw win rate", "The judge's win rate for its own model's response (win 1, tie 0.5, loss 0)."
    ),
    "gold_win_rate": Term("gold win rate", "Gold's win rate for the same own-model responses."),
    "dbg": Term(
        "DBG",
        "Self-preference beyond quality: the judge's win rate for its own model minus gold's (0 = none, > 0 = favours itself).",
    ),
    "eo_gap": Term(
        "EO gap",
        "Equal-opportunity gap: P(judge prefers r | r own, gold prefers r) − P(same | r other's, gold prefers r).",
    ),
    "longer_wins": Term(
        "longer wins", "Share of a rater's non-tied verdicts won by the longer response (characters)."
    ),
    "wildbench_k": Term(
        "WildBench K",
        "WildBench's length rule: a slight win (|s| = 1) by a response longer by more than K characters counts as a tie.",
    ),
    "ece": Term(
        "ECE", "Expected calibration error: confidence vs share correct, over 10 bins on [0.5, 1], weighted by size."
    ),
    "bradley_terry": Term(
        "Bradley-Terry",
        "Model strengths fitted to pairwise wins (a tie is half a win), on the Elo scale with the mean model at 1000.",
    ),
    "elo": Term("Elo", "400 points = 10:1 odds of winning; the mean model is anchored at 1000."),
    "mean_rating": Term("mean rating", "Mean score of a model's responses on the report's attribute."),
    "verdict": Term("verdict", "A, tie or B, in the pair's stored order: the sign of the strength."),
    # Issue 14: the judge report card, the evaluator leaderboard, style control (reports/metrics/judge_card.py, style.py).
    "kappa_gold": Term("κ vs gold", "Cohen's kappa between a rater's verdicts and gold: agreement beyond chance."),
    "preference_fairness": Term(
        "preference fairness",
        "Shi et al.: (recency-preferred − primacy-preferred) / (their sum) over pairs seen in both orders; "
        "0 = fair, −1 = always the first shown, +1 = always the second.",
    ),
    "repetition_stability": Term(
        "repetition stability",
        "Shi et al.: mean share of the most frequent verdict over units judged more than once; 1 by construction "
        "for greedy decoding (temperature 0).",
    ),
    "length_preference": Term(
        "P(prefers longer)", "Share of non-tied verdicts won by the longer response, beside gold's share on the same pairs."
    ),
    "valid_mass": Term(
        "valid-answer mass", "Mean probability the judge's next token put on the valid labels (low = off-format)."
    ),
    "judgments_per_second": Term(
        "judgments / s", "Finished judgments over the runs' working time (first claim to last completion)."
    ),
    "human_reference": Term(
        "human reference", "Each human scored against the gold of the other humans: the bar a judge must clear."
    ),
    "style_control": Term(
        "style-controlled",
        "Chatbot Arena: Bradley-Terry with length and markdown (headers, lists, bold) differences as covariates.",
    ),
    "lc_win_rate": Term(
        "LC win rate",
        "AlpacaEval 2: win rate predicted at equal length by logit P(win) = θ + φ·tanh(Δlen / sd).",
    ),
    "routed_gold": Term(
        "routed gold",
        "The gold a routing policy settled a pair on: the majority of the human labels it had asked for when it "
        "closed the pair. Full gold is the majority of every label, once the pair has the full overlap.",
    ),
    "labels_saved": Term(
        "labels saved", "1 - human labels spent / (regular pairs x overlap): against asking every pair for the overlap."
    ),
}

# The terms each report page prints, in the order its glossary lists them.
PAGE_TERMS: dict[str, tuple[str, ...]] = {
    "consistency": ("consistency", "implied_preference", "strength", "combined_verdict", "wildbench_k", "n", "ci",
                    "too_few"),
    "agreement": ("percent_agreement", "cohen_kappa", "quadratic_kappa", "fleiss_kappa", "krippendorff_alpha",
                  "spearman", "kendall_tau_b", "gold", "accuracy", "accuracy_no_ties", "macro", "combined_verdict",
                  "wildbench_k", "kappa_gold", "n", "ci", "too_few"),
    "bias": ("position_consistency", "first_position_rate", "first_shown_win_rate", "agreement_both_orders",
             "raw_win_rate", "gold_win_rate", "dbg", "eo_gap", "longer_wins", "ece", "gold", "wildbench_k", "n",
             "ci", "too_few"),
    "leaderboards": ("bradley_terry", "elo", "mean_rating", "kendall_tau", "style_control", "lc_win_rate",
                     "combined_verdict", "wildbench_k", "n", "ci", "too_few"),
    "evaluators": ("accuracy", "kappa_gold", "macro", "position_consistency", "preference_fairness",
                   "length_preference", "valid_mass", "human_reference", "gold", "n", "ci", "too_few"),
    "effort": ("labels_saved", "routed_gold", "gold", "cohen_kappa", "position_consistency", "ece", "n", "ci"),
}  # fmt: skip

# Report filter fields whose label is a term.
FIELD_TERMS: dict[str, str] = {"wildbench_k": "wildbench_k"}


def too_few(n: int | None, *, minimum: int = MIN_N) -> bool:
    """Whether a figure over `n` units is too thin to print (None: no data at all)."""
    return n is None or n < minimum


def too_few_text(n: int | None) -> str:
    return f"too few to say (n = {n or 0})"
