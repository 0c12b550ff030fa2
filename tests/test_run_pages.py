"""Run pages that show life: the live block (progress, buttons, latest rows) swaps as one, generate
runs list answers with their tokens per second, the rate and ETA come from measured times, latency
is a judgment's share of its batch, rows are in plan order and link to their pair, and the runs
table has finish times and outcome counts. Batched generation streams answers and token counts.

Batches are processed by calling the service the Celery task calls, on a tiny random Llama."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import torch
from django.urls import reverse
from django.utils import timezone
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

from judges import prompts, selectors, services
from judges.inference import BackendConfig, load_backend
from judges.inference.base import Decoding, GenerateResult
from judges.inference.transformers_backend import _RowWatch
from judges.models import Judgment, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_judge(tiny_model_dir):  # noqa: F811
    return services.judge_create(name="tiny-live", model_ref=str(tiny_model_dir), response_model="tiny-llama",
                                 decoding={"max_new_tokens": 6})


@pytest.fixture
def project(researcher):
    project = make_project(name="Live", items=2)
    project.members.add(researcher)
    return project


def _process(run: Run) -> None:
    services.judgments_process(run_id=run.pk, judgment_ids=list(run.judgments.values_list("id", flat=True)))
    run.refresh_from_db()


def _live(client, run: Run):
    return client.get(reverse("judges:run-progress", kwargs={"run_id": run.pk}))


def test_the_live_block_swaps_buttons_and_rows_when_the_run_ends(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"])
    running = _live(client, run)
    body = running.content.decode()
    assert running.status_code == 200 and 'hx-trigger="every 2s"' in body
    assert ">Cancel</button>" in body and ">Resume</button>" in body and "Nothing finished yet" in body
    _process(run)
    done = _live(client, run)
    body = done.content.decode()
    # The polled answer carries the buttons and rows too, so the page needs no reload.
    assert done.status_code == 286 and 'id="run-live"' in body and 'data-status="done"' in body
    assert "Cancel</button>" not in body and "Resume</button>" not in body
    assert "Nothing finished yet" not in body and "Finished " in body
    for judgment in run.judgments.all():
        assert f"<td>{judgment.pk}</td>" in body
    # The full page holds the same block once.
    page = client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()
    assert page.count('id="run-live"') == 1 and "Cancel</button>" not in page


def test_a_cancelled_run_shows_resume_and_stops_polling(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"])
    services.run_cancel(run=run)
    answer = _live(client, run)
    body = answer.content.decode()
    assert answer.status_code == 286 and "hx-trigger" not in body
    assert "Resume</button>" in body and "Cancel</button>" not in body


def test_rows_are_in_plan_order_and_link_to_their_pair(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    _process(run)
    body = _live(client, run).content.decode()
    shown = [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", body)]
    assert shown == sorted(run.judgments.values_list("id", flat=True))
    for judgment in run.judgments.select_related("pair", "response"):
        pair_id = judgment.pair_id or judgment.response.item.pairs.first().pk  # a rating links to a pair of its response
        assert f'href="{reverse("annotate_pair", kwargs={"pair_id": pair_id})}"' in body
    assert "share of its batch" in body


def test_latency_is_each_judgments_share_of_its_batch_by_prompt_tokens(tiny_model_dir):  # noqa: F811
    backend = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir)))
    requests = []
    for i, answer in enumerate(["four", "It is four. " * 100]):
        messages = prompts.render_messages(
            system=prompts.RANKING_SYSTEM, user=prompts.RANKING_USER,
            values={"prompt": "What is two plus two?", "response_first": answer, "response_second": "five"},
        )
        requests.append(prompts_request(messages, key=i))
    results = backend.score(requests, decoding=Decoding())
    short, long = (r.latency_ms for r in results)
    tokens = [len(backend.encode(backend.render(r.messages) + r.cue)) for r in requests]
    assert tokens[1] > tokens[0] + 300
    # Proportional to the tokens, to the millisecond that int() cuts: |long*t0 - short*t1| <= t1.
    assert long >= short and abs(long * tokens[0] - short * tokens[1]) <= tokens[1]


def prompts_request(messages, *, key):
    from judges.inference import ScoreRequest

    return ScoreRequest(messages=messages, labels=prompts.VERDICT_LABELS, cue=prompts.CUE, key=key)


def test_generate_runs_list_answers_not_judgments(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, kind="generate")
    body = _live(client, run).content.decode()
    assert "0 / 2 answers" in body and "No answer finished yet" in body
    _process(run)
    body = _live(client, run).content.decode()
    assert "Latest answers" in body and "2 / 2 answers" in body
    assert "Verdict" not in body and "Probabilities" not in body and "In scale" not in body
    for judgment in run.judgments.all():
        assert judgment.generated_id is not None
        pair = judgment.generated.item.pairs.filter(response_b=judgment.generated).first()
        assert f'href="{reverse("annotate_pair", kwargs={"pair_id": pair.pk})}"' in body
    assert run.generated_tokens > 0 and f"{run.generated_tokens} tokens written" in body


def test_generation_counts_tokens_and_stays_within_the_budget(project, tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, kind="generate")
    _process(run)
    assert 0 < run.generated_tokens <= run.total * 6
    assert run.judgments.filter(status__in=["ok", "unparseable"]).count() == run.total


def test_generation_is_batched_by_length_like_judging(tiny_model_dir):  # noqa: F811
    backend = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir), max_batch_size=3))
    calls: list[int] = []
    real = backend.model.generate

    def counting(*args, **kwargs):  # the real generate, counted: how many prompts per call
        calls.append(int(kwargs["input_ids"].shape[0]))
        return real(*args, **kwargs)

    backend.model.generate = counting
    prompts_ = [(i, ({"role": "user", "content": q},)) for i, q in enumerate(["Hello?", "Blue?", "Paris?", "Red?"])]
    tokens: list[int] = []
    answers: list[GenerateResult] = []
    out = backend.generate(prompts_, decoding=Decoding(max_new_tokens=4), on_tokens=tokens.append,
                           on_result=answers.append)
    assert calls == [3, 1]  # several prompts per forward pass, at most max_batch_size
    assert [r.key for r in out] == [0, 1, 2, 3]
    assert sorted(a.key for a in answers) == [0, 1, 2, 3]  # each answer handed over once
    assert 0 < sum(tokens) <= 4 * 4


def test_a_row_that_ends_early_is_handed_over_before_its_batch_ends():
    eos = 9
    handed: list[tuple[int, str]] = []
    counted: list[int] = []
    watch = _RowWatch(
        rows=[[1, 2, 3], [1, 2]], eos={eos}, started=0.0, decode=lambda ids: " ".join(map(str, ids)),
        keys=["a", "b"], on_tokens=counted.append, on_row=lambda row, result: handed.append((row, result.text)),
    )
    watch.put(torch.tensor([[0, 1, 2, 3], [0, 0, 1, 2]]))  # the prompts: not counted
    watch.put(torch.tensor([5, 7]))
    watch.put(torch.tensor([6, eos]))  # row 1 ends here
    assert handed == [(1, "7")]
    watch.put(torch.tensor([8, eos]))  # padding after its end is not counted
    watch.end()  # row 0 used its whole budget
    assert handed == [(1, "7"), (0, "5 6 8")]
    assert counted == [2, 1, 1]
    latency = {r.key: r.latency_ms for r in watch.results()}
    assert set(latency) == {"a", "b"}


def test_generate_progress_shows_tokens_per_second_and_a_bounded_eta(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, kind="generate")
    ids = list(run.judgments.values_list("id", flat=True))
    services.judgments_claim(run=run, judgment_ids=ids)
    Judgment.objects.filter(run=run).update(claimed_at=timezone.now() - timedelta(seconds=10))
    Run.objects.filter(pk=run.pk).update(generated_tokens=4)
    run.refresh_from_db()
    progress = selectors.run_progress(run=run)
    assert progress.claimed == 2 and progress.tokens == 4
    assert progress.tokens_per_second == pytest.approx(0.4, rel=0.1)
    # Nothing finished: the bound is every answer using its budget (2 x 6 tokens, 4 written).
    assert progress.eta_is_bound and progress.eta_seconds == pytest.approx((12 - 4) / 0.4, rel=0.1)
    body = _live(client, run).content.decode()
    assert "4 tokens written" in body and "tokens/s" in body and "ETA at most" in body
    assert "in flight 2" in body


def test_the_judging_rate_and_eta_come_from_measured_times(project, tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"])
    now = timezone.now()
    first, second, *rest = list(run.judgments.order_by("id"))
    Judgment.objects.filter(run=run).update(claimed_at=now - timedelta(seconds=20))
    Judgment.objects.filter(pk__in=[first.pk, second.pk]).update(status="ok", completed_at=now)
    progress = selectors.run_progress(run=run)
    # 2 finished in the 20 s since the first claim: 0.1/s; 2 left: 20 s.
    assert progress.per_second == pytest.approx(0.1, rel=0.05)
    assert progress.eta_seconds == pytest.approx(20, abs=2) and not progress.eta_is_bound
    assert progress.unit == "judgments" and len(rest) == 2


def test_the_runs_table_shows_finish_time_and_outcome_counts(client, researcher, project, tiny_judge):
    client.force_login(researcher)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    _process(run)
    counts = {s: run.judgments.filter(status=s).count() for s in ("ok", "unparseable", "error")}
    body = client.get(reverse("judges:runs", kwargs={"project_id": project.pk})).content.decode()
    assert "<th>Finished</th>" in body and run.finished_at.strftime("%Y-%m-%d %H:%M:%S") in body
    row = re.search(rf'<tr>\s*<td><a href="[^"]*">#{run.pk}</a></td>(.*?)</tr>', body, re.S).group(1)
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row)
    assert cells == [str(run.total), str(counts["ok"]), str(counts["unparseable"]), str(counts["error"])]
    assert sum(counts.values()) == run.total


def test_a_longer_prompt_joins_the_batch_rather_than_costing_a_decoding_loop_of_its_own(tiny_model_dir):  # noqa: F811
    backend = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir)))
    calls: list[int] = []
    real = backend.model.generate

    def counting(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return real(*args, **kwargs)

    backend.model.generate = counting
    short = [(i, ({"role": "user", "content": "Hello?"},)) for i in range(4)]
    longer = [(9, ({"role": "user", "content": "The capital of France is Paris. " * 4},))]
    lengths = [len(backend.encode(backend.render(m))) for _, m in short + longer]
    assert lengths[-1] > 1.5 * lengths[0]  # past the scoring cap of 10% padding, within generation's
    backend.generate(short + longer, decoding=Decoding(max_new_tokens=8))
    assert calls == [5]
