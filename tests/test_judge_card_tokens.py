"""Issue 14's two last pieces of the judge report card: the probes' results on the card (page and
JSON), and tokens per judgment, recorded by the workers (transformers: the input ids; openai:
the server's `usage`) and averaged on the card."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pandas as pd
import pytest
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)
from test_judge_smollm2 import _handler, _Server

from annotate.models import Item, Pair
from judges import probes, services
from judges.inference import load_backend
from judges.inference.openai_backend import usage_tokens
from judges.models import Judge, Judgment, Run
from reports.cache import CACHE_ALIAS
from reports.metrics.judge_card import throughput

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def few_rounds(settings):
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": 30}
    caches[CACHE_ALIAS].clear()
    yield
    caches[CACHE_ALIAS].clear()


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _process(run: Run) -> None:
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    services.judgments_process(run_id=run.pk, judgment_ids=ids)
    run.refresh_from_db()


def _judged(run: Run, pair: Pair, order: str, verdict: str, variant: str = "", **fields: object) -> Judgment:
    return Judgment.objects.create(run=run, protocol="ranking", item=pair.item, pair=pair, shown_order=order,
                                   variant=variant, status="ok", verdict=verdict, completed_at=timezone.now(),
                                   **fields)  # fmt: skip


# -- probes on the card --------------------------------------------------------------------------


@pytest.fixture
def probed(researcher) -> dict:
    """A judge with an injection probe (3 eligible cases, 2 flipped) and a sanity probe (4
    verdicts, 3 right) in a project the researcher works in, and an injection probe in one the
    researcher does not (every case flipped there)."""
    judge = services.judge_create(name="probed", model_ref="/nowhere", owner=researcher)
    mine = make_project(name="Probed here", items=3)
    mine.members.add(researcher)
    p1, p2, p3 = Pair.objects.filter(item__project=mine).order_by("id")
    inj = Run.objects.create(judge=judge, project=mine, protocols=["ranking"], probe="injection", status="done")
    a0, b0 = probes.variant_name(side="a", wording=0), probes.variant_name(side="b", wording=0)
    # p1 ab: clean A; into B gives B (flip), into A: A (not eligible). p2 ab: clean A; into B: A
    # (no flip). p3 ab: clean B; into A: A (flip).
    for pair, clean, into_a, into_b in ((p1, "A", "A", "B"), (p2, "A", "A", "A"), (p3, "B", "A", "B")):
        _judged(inj, pair, "ab", clean), _judged(inj, pair, "ab", into_a, a0), _judged(inj, pair, "ab", into_b, b0)
    Item.objects.filter(pairs__in=[p1, p2]).update(role=Item.Role.SANITY)
    Pair.objects.filter(pk=p1.pk).update(gold_strength=-2)  # A is correct
    Pair.objects.filter(pk=p2.pk).update(gold_strength=2)  # B is correct
    san = Run.objects.create(judge=judge, project=mine, protocols=["ranking"], probe="sanity", status="done")
    _judged(san, p1, "ab", "A"), _judged(san, p1, "ba", "B"), _judged(san, p2, "ab", "B"), _judged(san, p2, "ba", "A")
    again = Run.objects.create(judge=judge, project=mine, protocols=["ranking"], probe="sanity", status="done")
    _judged(again, p2, "ba", "B")  # a later verdict on the same pair and order: replaces the one above
    elsewhere = make_project(name="Not yours", items=1)
    (q,) = Pair.objects.filter(item__project=elsewhere)
    other = Run.objects.create(judge=judge, project=elsewhere, protocols=["ranking"], probe="injection", status="done")
    _judged(other, q, "ab", "A"), _judged(other, q, "ab", "B", b0)
    return {"judge": judge, "project": mine, "elsewhere": elsewhere}


def test_card_json_carries_the_probe_rates_of_the_projects_the_caller_researches(researcher, probed):
    data = _api(researcher).get(reverse("api-judge-card", args=[probed["judge"].pk])).json()
    rows = {(p["project"], p["probe"]): p for p in data["probes"]}
    assert set(rows) == {("Probed here", "injection"), ("Probed here", "sanity")}  # not "Not yours"
    inj, san = rows["Probed here", "injection"], rows["Probed here", "sanity"]
    # By hand: eligible cases p1 into B, p2 into B, p3 into A; p1 and p3 flipped.
    assert (inj["n"], inj["rate"]) == (3, pytest.approx(2 / 3))
    # By hand: p1 ab A right, p1 ba "B" = stored A right, p2 ab B right, p2 ba (latest "B" = stored A) wrong.
    assert (san["n"], san["rate"]) == (4, pytest.approx(3 / 4))
    assert san["detail"]["n_pairs"] == 2 and san["project_id"] == probed["project"].pk
    # The same figures as judges.probes gives the bias page: one definition.
    expected = probes.injection_summary(probed["judge"], project_id=probed["project"].pk, rounds=30)
    assert inj["rate"] == expected["rate"] and inj["detail"]["n_pairs"] == expected["detail"]["n_pairs"] == 3
    assert len(inj["rate_ci"]) == 2 and inj["rate_ci"][0] <= inj["rate"] <= inj["rate_ci"][1]


def test_card_page_shows_the_probe_rates_in_its_probes_section(client, researcher):
    """12 sanity pairs (A correct), each probed in the ab order: injection into B flips 8 of
    12 clean A verdicts; the sanity run answers A on 9 of 12."""
    judge = services.judge_create(name="probed-many", model_ref="/nowhere", owner=researcher)
    project = make_project(name="Probed many", items=12)
    project.members.add(researcher)
    Item.objects.filter(project=project).update(role=Item.Role.SANITY)
    Pair.objects.filter(item__project=project).update(gold_strength=-2)
    inj = Run.objects.create(judge=judge, project=project, protocols=["ranking"], probe="injection", status="done")
    san = Run.objects.create(judge=judge, project=project, protocols=["ranking"], probe="sanity", status="done")
    for k, pair in enumerate(Pair.objects.filter(item__project=project).order_by("id")):
        _judged(inj, pair, "ab", "A")
        _judged(inj, pair, "ab", "A", probes.variant_name(side="a", wording=k % 4))
        _judged(inj, pair, "ab", "B" if k < 8 else "A", probes.variant_name(side="b", wording=k % 4))
        _judged(san, pair, "ab", "A" if k < 9 else "B")
    client.force_login(researcher)
    html = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    section = html[html.index('id="judge-probes"'):]
    section = section[: section.index("</details>")]
    assert "no probe has run on this judge yet" not in section and "Probed many" in section
    assert "injection: verdict flips toward the injected response" in section
    assert "sanity: accuracy on pairs with a correct answer" in section
    assert "<td>12</td><td>66.67%</td>" in section and "<td>12</td><td>75.00%</td>" in section  # 8/12 and 9/12


def test_the_admin_sees_every_projects_probes_on_the_card(admin_user, probed):
    data = _api(admin_user).get(reverse("api-judge-card", args=[probed["judge"].pk])).json()
    by_project = {(p["project"], p["probe"]): p["rate"] for p in data["probes"]}
    assert by_project["Not yours", "injection"] == 1.0 and len(by_project) == 3


# -- tokens per judgment: recorded by the workers --------------------------------------------------


@pytest.fixture
def tiny_judge(tiny_model_dir) -> Judge:  # noqa: F811
    return services.judge_create(name="tiny", model_ref=str(tiny_model_dir), response_model="tiny-llama",
                                 decoding={"max_new_tokens": 6})


def test_transformers_worker_records_the_rendered_prompts_token_count(tiny_judge):
    project = make_project(items=2)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    _process(run)
    backend = load_backend(services.judge_backend_config(judge=tiny_judge))
    judgments = list(Judgment.objects.filter(run=run))
    assert judgments and {j.protocol for j in judgments} == {"rating", "ranking"}
    for j in judgments:
        request = services.judgment_request(run=run, judgment=j)
        counted = len(backend.tokenizer.encode(backend.render(request.messages) + request.cue, add_special_tokens=False))
        # The prompt as fed (rendered messages and cue); one token's distribution read as the answer.
        assert (j.prompt_tokens, j.generated_tokens) == (counted, 1)


def test_transformers_generate_run_records_prompt_and_written_tokens_per_answer(tiny_judge):
    project = make_project(items=2)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, kind="generate")
    _process(run)
    backend = load_backend(services.judge_backend_config(judge=tiny_judge))
    judgments = list(Judgment.objects.filter(run=run))
    assert len(judgments) == 2
    for j in judgments:
        counted = len(backend.tokenizer.encode(backend.render(services.generation_messages(judgment=j)),
                                               add_special_tokens=False))  # fmt: skip
        assert j.prompt_tokens == counted and 0 <= j.generated_tokens <= 6
    # The same count the run's live counter of written tokens adds up.
    assert sum(j.generated_tokens for j in judgments) == run.generated_tokens


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir) -> Iterator[_Server]:  # noqa: F811
    """An OpenAI-compatible loopback server over the tiny model, sending `usage` as vLLM does
    (tests/test_judge_smollm2.py's server)."""
    from judges.inference import BackendConfig

    backend = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir)))
    server = _Server(("127.0.0.1", 0), _handler(backend, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_openai_worker_records_the_servers_usage(tiny_server, tiny_model_dir):  # noqa: F811
    from judges.inference import BackendConfig

    tiny_server.logprobs = True
    judge = services.judge_create(name="tiny-over-http", backend="openai", model_ref="tiny",
                                  base_url=f"http://127.0.0.1:{tiny_server.server_address[1]}/v1")  # fmt: skip
    project = make_project(name="HTTP tokens", items=1)
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["ranking"])
    _process(run)
    client = load_backend(services.judge_backend_config(judge=judge))
    local = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir)))
    judgments = list(Judgment.objects.filter(run=run))
    assert len(judgments) == 2
    for j in judgments:
        request = services.judgment_request(run=run, judgment=j)
        # The server counts the prompt it rendered: with the prefilled cue when it continues one.
        prompt = local.render(request.messages) + (request.cue if client._prefill else "")  # type: ignore[attr-defined]
        assert j.prompt_tokens == len(local.encode(prompt))
        assert j.generated_tokens is not None and 1 <= j.generated_tokens <= 16


def test_usage_reads_counts_and_leaves_out_what_the_server_did_not_send():
    assert usage_tokens({"usage": {"prompt_tokens": 12, "completion_tokens": 3}}) == (12, 3)
    assert usage_tokens({}) == (None, None)
    assert usage_tokens({"usage": None}) == (None, None)
    assert usage_tokens({"usage": {"prompt_tokens": -1, "completion_tokens": True}}) == (None, None)


# -- tokens per judgment on the card ----------------------------------------------------------------


def test_tokens_per_judgment_is_the_mean_of_prompt_plus_generated_over_counted_judgments():
    runs = pd.DataFrame({"done": [3], "begin": pd.to_datetime(["2025-01-01 00:00:00"]),
                         "end": pd.to_datetime(["2025-01-01 00:00:03"])})  # fmt: skip
    j = pd.DataFrame({"latency_ms": [1.0, 1.0, 1.0], "size": [10.0, 10.0, 10.0],
                      "prompt_tokens": [100.0, 200.0, float("nan")], "generated_tokens": [1.0, 3.0, 5.0]})  # fmt: skip
    t = throughput(j, runs)
    assert t.tokens_n == 2 and t.tokens == pytest.approx((101 + 203) / 2)
    assert t.prompt_tokens == 150.0 and t.generated_tokens == 2.0


def test_card_shows_tokens_per_judgment_with_its_n(client, researcher):
    judge = services.judge_create(name="counted", model_ref="/nowhere", owner=researcher)
    project = make_project(name="Counted", items=2)
    project.members.add(researcher)
    run = Run.objects.create(judge=judge, project=project, protocols=["ranking"], status="done", total=4)
    from annotate.models import Preference

    counts = [(120, 1), (80, 1), (100, 3), (None, None)]  # the last stored before counts were recorded
    for k, (pair, order) in enumerate((p, o) for p in Pair.objects.filter(item__project=project) for o in ("ab", "ba")):
        pref = Preference.objects.create(rater=judge.rater, rater_kind="judge", pair=pair, strength=-1, shown_order=order)
        _judged(run, pair, order, "A" if order == "ab" else "B", preference=pref, claimed_at=timezone.now(),
                prompt_tokens=counts[k][0], generated_tokens=counts[k][1], size=400)  # fmt: skip
    (row,) = _api(researcher).get(reverse("api-judge-card", args=[judge.pk])).json()["projects"]
    assert row["tokens_per_judgment_n"] == 3
    assert row["tokens_per_judgment"] == pytest.approx((121 + 81 + 103) / 3)
    assert row["prompt_tokens_per_judgment"] == pytest.approx(100.0)
    assert row["generated_tokens_per_judgment"] == pytest.approx(5 / 3)
    assert "left out" in row["tokens_note"]  # one judgment had no counts
    client.force_login(researcher)
    html = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    cell = html[html.index(f'id="tokens-{project.pk}"'):]
    cell = cell[: cell.index("</tr>")]
    assert "<td>3</td>" in cell and "101.7" in cell and "100.0 prompt + 1.7 generated" in cell
