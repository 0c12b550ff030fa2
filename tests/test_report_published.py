"""The reports reproduce every figure published with ../shared/data, imported the real way."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.importers import import_files
from annotate.models import Project
from reports.build import build_report

ROUNDS = 50  # intervals are not under test here; the published point values are


def _report(name: str, fmt: str, paths: list[Path]) -> dict:
    import_files(project_name=name, fmt=fmt, paths=paths)
    return build_report(Project.objects.get(name=name), rounds=ROUNDS, details=True)


@pytest.mark.django_db
def test_pandalm_kappas_accuracies_and_f1(shared_data: Path) -> None:
    d = shared_data / "pandalm"
    report = _report(
        "pandalm",
        "pandalm",
        [d / "testset-v1.json", d / "gpt-3.5-turbo-testset-v1.json", d / "pandalm-7b-testset-v1.json"],
    )
    kappas = {(p["rater_a"], p["rater_b"]): p for p in report["agreement"]["pairs"]}
    for (a, b), published in {(1, 2): 0.852, (1, 3): 0.879, (2, 3): 0.862}.items():
        pair = kappas[(f"human:annotator{a}", f"human:annotator{b}")]
        assert pair["n"] == 999
        assert round(pair["cohen_kappa"], 3) == published
        assert pair["ci"][0] < pair["cohen_kappa"] < pair["ci"][1]
    assert report["details"]["gold_counts"] == {"A": 422, "tie": 105, "B": 472}

    judges = {row["judge"]: row for row in report["judge_vs_gold"]}
    gpt, pandalm = judges["judge:gpt-3.5-turbo"], judges["judge:pandalm-7b"]
    assert gpt["n"] == pandalm["n"] == 999
    assert [round(gpt[k], 4) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")] == [
        0.7107, 0.5879, 0.5736, 0.5755,
    ]
    assert [round(pandalm[k], 4) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1")] == [
        0.6677, 0.5738, 0.5750, 0.5743,
    ]
    assert set(report) >= {"agreement", "judge_vs_gold", "leaderboard"}
    # Five models, three humans pooled: a Bradley-Terry board anchored at mean 1000.
    board = report["leaderboard"]["humans"]["bradley_terry"]
    assert len(board) == 5
    assert sum(row["elo"] for row in board) / 5 == pytest.approx(1000, abs=15)  # median of rounds


@pytest.mark.django_db
def test_autoj_position_consistency_and_agreement(shared_data: Path) -> None:
    d = shared_data / "autoj"
    report = _report(
        "autoj",
        "autoj",
        [
            d / "autoj_pairwise.jsonl",
            d / "autoj13b_verdicts_original_order.jsonl",
            d / "autoj13b_verdicts_swapped_order.jsonl",
        ],
    )
    rows = {row["judge"]: row for row in report["position"]}
    judge = rows["judge:autoj-13b"]
    assert judge["n"] == 1392
    assert round(judge["consistency"] * 100, 2) == 83.41
    assert round(judge["agreement_both_orders"] * 100, 2) == 54.96
    human = rows["human:autoj-human"]
    assert human["consistency"] is None and human["agreement_both_orders"] is None


@pytest.mark.django_db
def test_sparse_feedback_ratings_vs_rankings(shared_data: Path) -> None:
    d = shared_data / "sparse_feedback"
    report = _report(
        "sparse",
        "sparse-feedback",
        [d / "feedback_ratings_sample_generation.csv", d / "feedback_rankings_sample_generation.csv"],
    )
    (row,) = [r for r in report["consistency"] if r["rater"] == "judge:gpt-3.5-turbo"]
    assert row["n"] == 117
    assert round(row["consistency"] * 100, 2) == 56.41
    assert round((1 - row["consistency"]) * 100, 2) == 43.59
    assert sum(map(sum, row["confusion"])) == 117
