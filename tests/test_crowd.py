"""Crowd studies: the Prolific-style link (accounts without passwords, idempotent per participant
id), the quota and completion redirect, a return that frees claims at once, the bounds on what a
link grants, and the payment report (figures by hand, CSV escaped)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from annotate.access import global_role, project_role, projects_visible
from annotate.crowd import participant_enter, study_create, study_token
from annotate.models import Assignment, AuditEvent, Membership, Participant, Study
from annotate.queue import assignment_claim_next
from annotate.services import project_create, rater_for_user, ratings_submit
from tests.conftest import _user

pytestmark = pytest.mark.django_db
PID = "5f1e2d3c4b5a69788796a5b4"


@pytest.fixture
def crowd_project(researcher):
    project = project_create(name="Crowd", protocols="rating", overlap=1, attributes=[{"name": "helpfulness"}])
    Membership.objects.create(project=project, user=researcher, role="researcher")
    for n in range(6):
        project.items.create(external_id=f"i{n}", prompt=f"Q{n}").responses.create(external_id="a", text=f"A{n}")
    return project


@pytest.fixture
def study(crowd_project, researcher):
    return study_create(project=crowd_project, creator=researcher, name="Pilot", completion_code="C0DE42",
                        quota=3, external_study_id="STUDY1")


def _link(study: Study, pid: str = PID, **extra: str) -> str:
    params = {"PROLIFIC_PID": pid, "STUDY_ID": "STUDY1", "SESSION_ID": "sess-1"} | extra
    return reverse("study_entry", args=[study_token(study)]) + "?" + urlencode(params)


def _submit_current(client: Client, project, value: int = 3, time_ms: int | None = None, htmx: bool = False):
    participant = Participant.objects.get()
    current = Assignment.objects.get(rater__user=participant.user, status="claimed")
    data = {"protocol": "rating", "view_key": str(current.view_key), "attr-helpfulness": value}
    if time_ms is not None:
        data["time_on_task_ms"] = time_ms
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("annotate_submit", args=[project.pk]), data, **headers)


def test_the_researcher_makes_a_study_and_gets_a_link_for_the_platform(crowd_project, researcher):
    client = Client()
    client.force_login(researcher)
    response = client.post(reverse("project_studies", args=[crowd_project.pk]), {
        "name": "Main", "quota": 10, "completion_code": "ABC123", "external_study_id": "",
        "pid_param": "PROLIFIC_PID", "study_param": "STUDY_ID", "session_param": "SESSION_ID",
        "completion_url": "https://app.prolific.com/submissions/complete?cc={code}", "return_url": "",
    })
    assert response.status_code == 302
    study = Study.objects.get(name="Main")
    page = client.get(reverse("project_studies", args=[crowd_project.pk])).content.decode()
    assert f"/study/{study_token(study)}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&amp;STUDY_ID=" in page
    bad = client.post(reverse("project_studies", args=[crowd_project.pk]), {
        "name": "Bad", "quota": 10, "completion_code": "X", "pid_param": "PROLIFIC_PID",
        "completion_url": "https://example.org/done", "return_url": ""})
    assert bad.status_code == 422 and "{code}" in bad.content.decode()


def test_a_participant_link_makes_one_passwordless_account_per_participant_id(study, crowd_project):
    client = Client()
    response = client.get(_link(study))
    assert response.status_code == 302 and response["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    participant = Participant.objects.get()
    user = participant.user
    assert participant.external_id == PID and participant.session_id == "sess-1"
    assert not user.has_usable_password()
    assert global_role(user) == "annotator" and project_role(user, crowd_project) == "annotator"
    assert list(projects_visible(user)) == [crowd_project]
    assert client.get(reverse("annotate_task", args=[crowd_project.pk])).status_code == 200
    assert client.get(reverse("annotate_dashboard", args=[crowd_project.pk])).status_code == 403

    # The same PID again (another browser, a reload): the same participant and account.
    again = Client()
    assert again.get(_link(study, SESSION_ID="sess-2")).status_code == 302
    assert Participant.objects.count() == 1 and get_user_model().objects.filter(participant__isnull=False).count() == 1
    assert Participant.objects.get().session_id == "sess-2"
    # The same PID in another study is another participant: ids are the platform's, per study.
    other = study_create(project=crowd_project, creator=None, name="Other", completion_code="X1")
    other_pid = participant_enter(study=other, params={"PROLIFIC_PID": PID})
    assert other_pid.user_id != user.pk


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"STUDY_ID": "STUDY1"}, 400, "lacks the participant id"),
        ({"PROLIFIC_PID": "=cmd|x", "STUDY_ID": "STUDY1"}, 400, "not one a platform gives"),
        ({"PROLIFIC_PID": PID, "STUDY_ID": "ANOTHER"}, 400, "another study"),
    ],
)
def test_a_link_without_a_proper_participant_id_or_for_another_study_is_refused(study, params, status, says):
    response = Client().get(reverse("study_entry", args=[study_token(study)]) + "?" + urlencode(params))
    assert response.status_code == status and says in response.content.decode()
    assert not Participant.objects.exists()


def test_forged_and_closed_study_links_are_refused(study, researcher):
    forged = Client().get(f"/study/{study.pk}/?PROLIFIC_PID={PID}")
    assert forged.status_code == 404
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("study_close", args=[study.pk])).status_code == 302
    closed = Client().get(_link(study))
    assert closed.status_code == 410 and "closed" in closed.content.decode()


def test_study_links_are_rate_limited_per_address(study, settings, monkeypatch):
    import annotate.crowd

    settings.STUDY_LINK_RATE_PER_MINUTE = 3
    minute = [1000]
    monkeypatch.setattr(annotate.crowd, "rate_window", lambda: minute[0])  # no minute ticks mid-test
    answers = [Client().get(_link(study, pid=f"pid{n}")).status_code for n in range(5)]
    assert answers == [302, 302, 302, 429, 429]
    assert Participant.objects.count() == 3
    other = Client(REMOTE_ADDR="10.0.0.2")  # another address has its own count
    assert other.get(_link(study, pid="pid9")).status_code == 302
    minute[0] += 1  # the next minute starts afresh
    assert Client().get(_link(study, pid="pid4")).status_code == 302


def test_a_signed_in_researcher_is_asked_before_becoming_a_participant(study, researcher):
    client = Client()
    client.force_login(researcher)
    response = client.get(_link(study))
    assert response.status_code == 200 and "signs you out" in response.content.decode()
    assert not Participant.objects.exists()
    assert client.get(reverse("home")).wsgi_request.user == researcher
    confirmed = client.post(reverse("study_entry", args=[study_token(study)]),
                            {"PROLIFIC_PID": PID, "STUDY_ID": "STUDY1", "SESSION_ID": "s"})
    assert confirmed.status_code == 302
    assert client.get(reverse("home")).wsgi_request.user == Participant.objects.get().user


def test_the_quota_ends_at_the_completion_redirect_with_the_code(study, crowd_project):
    client = Client()
    client.get(_link(study))
    token = study_token(study)
    assert client.get(reverse("annotate_task", args=[crowd_project.pk])).status_code == 200
    # Before finishing, the completion URL gives the queue, not the code.
    early = client.get(reverse("study_complete", args=[token]))
    assert early.status_code == 302 and early["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    page = client.get(reverse("annotate_task", args=[crowd_project.pk])).content.decode()
    assert "0 / 3" in page and "Leave the study without finishing" in page
    _submit_current(client, crowd_project)
    # One task done and more in the queue: the completion URL still gives the queue, not the code.
    early = client.get(reverse("study_complete", args=[token]))
    assert early["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    assert Participant.objects.get().completed_at is None
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    _submit_current(client, crowd_project)
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    last = _submit_current(client, crowd_project, htmx=True)
    assert last.status_code == 200 and last["HX-Redirect"] == reverse("study_complete", args=[token])
    # No fourth task was claimed past the quota.
    assert Assignment.objects.filter(rater__user=Participant.objects.get().user).count() == 3
    # Nor through the REST queue the pages sit beside.
    api = client.post(reverse("api-queue-next", args=[crowd_project.pk]))
    assert api.status_code == 409 and "completion" in api.json()["detail"]
    done = client.get(reverse("study_complete", args=[token]))
    assert done.status_code == 302
    assert done["Location"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    assert Participant.objects.get().completed_at is not None
    # Coming back through the link after finishing goes straight to the platform again.
    again = client.get(_link(study))
    assert again["Location"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    assert client.get(reverse("annotate_task", args=[crowd_project.pk]))["Location"] == reverse(
        "study_complete", args=[token])
    assert AuditEvent.objects.filter(action="study.complete").count() == 1


def test_a_return_frees_the_participants_claims_at_once(study, crowd_project):
    crowd_project.items.exclude(external_id="i0").delete()  # one task: who holds it matters
    client = Client()
    client.get(_link(study))
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    held = Assignment.objects.get(status="claimed")
    other = rater_for_user(user=_user("regular", "annotator"))
    crowd_project.members.add(other.user)
    assert assignment_claim_next(project=crowd_project, rater=other) is None  # overlap 1: taken
    response = client.post(reverse("study_return", args=[study_token(study)]))
    assert response.status_code == 200 and "went back to the queue" in response.content.decode()
    held.refresh_from_db()
    assert held.status == "expired"
    assert assignment_claim_next(project=crowd_project, rater=other).response_id == held.response_id  # type: ignore[union-attr]
    participant = Participant.objects.get()
    assert participant.returned_at is not None and participant.completed_at is None
    assert AuditEvent.objects.get(action="study.return").after == {"participant": PID, "claims_released": 1}
    # Back through the link while the study is open: the same participant goes on.
    assert client.get(_link(study)).status_code == 302
    participant.refresh_from_db()
    assert participant.returned_at is None
    assert client.session.get_expire_at_browser_close()
    # Someone else's session cannot return (or complete) a participant.
    assert Client().post(reverse("study_return", args=[study_token(study)])).status_code == 302  # to login
    stranger = Client()
    stranger.force_login(other.user)  # type: ignore[arg-type]
    assert stranger.post(reverse("study_return", args=[study_token(study)])).status_code == 403


def test_a_dry_queue_after_some_tasks_completes_the_study_early(study, crowd_project):
    crowd_project.items.exclude(external_id__in=["i0", "i1"]).delete()  # two tasks, quota three
    client = Client()
    client.get(_link(study))
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    _submit_current(client, crowd_project)
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    last = _submit_current(client, crowd_project, htmx=True)
    assert last["HX-Redirect"] == reverse("study_complete", args=[study_token(study)])
    done = client.get(last["HX-Redirect"])
    assert done["Location"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"


def test_a_reserved_participant_name_taken_by_hand_is_refused_not_a_500(study):
    _user(f"study{study.pk}-{PID}", "annotator")
    response = Client().get(_link(study))
    assert response.status_code == 409 and not Participant.objects.exists()


def test_a_return_url_sends_the_participant_back_to_the_platform(crowd_project):
    study = study_create(project=crowd_project, creator=None, name="R", completion_code="C",
                         pid_param="workerId", study_param="", session_param="",
                         completion_url="https://platform.example/done?code={code}",
                         return_url="https://platform.example/returned")
    client = Client()
    link = reverse("study_entry", args=[study_token(study)]) + "?workerId=W-17"
    assert client.get(link).status_code == 302
    assert Participant.objects.get().external_id == "W-17"
    response = client.post(reverse("study_return", args=[study_token(study)]))
    assert response.status_code == 302 and response["Location"] == "https://platform.example/returned"


def test_the_payment_report_sums_active_time_and_gold_by_hand(study, crowd_project, researcher):
    gold_item = crowd_project.items.create(external_id="g", prompt="G", role="gold")
    gold = gold_item.responses.create(external_id="a", text="gold", gold_ratings={"helpfulness": 4})
    alice = participant_enter(study=study, params={"PROLIFIC_PID": "alice01", "STUDY_ID": "STUDY1",
                                                   "SESSION_ID": "=HYPERLINK(\"http://x\")"})
    bob = participant_enter(study=study, params={"PROLIFIC_PID": "bob02", "STUDY_ID": "STUDY1"})
    a_rater = rater_for_user(user=alice.user)
    responses = list(crowd_project.items.filter(role="task").order_by("pk"))
    for item, ms in zip(responses[:2], (1500, 2500), strict=True):
        response = item.responses.get()
        ratings_submit(rater=a_rater, response=response, values={"helpfulness": 2})
        Assignment.objects.create(project=crowd_project, rater=a_rater, protocol="rating", response=response,
                                  status="done", time_on_task_ms=ms, view_key=__import__("uuid").uuid4(),
                                  expires_at="2030-01-01T00:00:00Z")
    ratings_submit(rater=a_rater, response=gold, values={"helpfulness": 3})  # within 1 point: passed
    Assignment.objects.create(project=crowd_project, rater=a_rater, protocol="rating", response=gold,
                              status="done", time_on_task_ms=1000, view_key=__import__("uuid").uuid4(),
                              expires_at="2030-01-01T00:00:00Z")
    # A claim still open is not work done: neither counted nor paid.
    Assignment.objects.create(project=crowd_project, rater=a_rater, protocol="rating",
                              response=responses[2].responses.get(), status="claimed", time_on_task_ms=None,
                              view_key=__import__("uuid").uuid4(), expires_at="2030-01-01T00:00:00Z")
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("study_payments", args=[study.pk]))
    assert page.status_code == 200 and "alice01" in page.content.decode()
    response = client.get(reverse("study_payments_csv", args=[study.pk]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    by_pid = {r["participant_id"]: r for r in rows}
    assert by_pid["alice01"]["tasks_done"] == "3"
    assert float(by_pid["alice01"]["active_seconds"]) == 5.0  # 1.5 + 2.5 + 1.0
    assert (by_pid["alice01"]["gold_passed"], by_pid["alice01"]["gold_total"]) == ("1", "1")
    assert by_pid["alice01"]["session_id"].startswith("'=")  # a formula is text, not run
    assert (by_pid["bob02"]["tasks_done"], by_pid["bob02"]["active_seconds"], by_pid["bob02"]["status"]) == (
        "0", "0.0", "in progress")
    assert bob.user_id != alice.user_id


def test_a_participant_account_never_joins_another_project(study, researcher):
    participant = participant_enter(study=study, params={"PROLIFIC_PID": PID, "STUDY_ID": "STUDY1"})
    other = project_create(name="Elsewhere")
    Membership.objects.create(project=other, user=researcher, role="researcher")
    inviter = Client()
    inviter.force_login(researcher)
    inviter.post(reverse("project_invite_create", args=[other.pk]), {"role": "annotator", "email": "", "days": 7})
    from annotate.members import invite_token
    from annotate.models import Invite

    token = invite_token(Invite.objects.get())
    client = Client()
    client.force_login(participant.user)
    assert client.post(reverse("invite_accept", args=[token])).status_code == 403
    assert list(projects_visible(participant.user)) == [study.project]


@pytest.fixture
def trained_study(crowd_project, researcher):
    """A study whose project has a training round of two gold tasks and a bar of one in two."""
    crowd_project.training_size, crowd_project.qualification_bar = 2, 0.5
    crowd_project.save()
    for n in range(3):
        item = crowd_project.items.create(external_id=f"g{n}", prompt=f"Gold {n}", role="gold",
                                          metadata={"guideline": "Rate a **complete** answer 4."})
        item.responses.create(external_id="a", text=f"Gold answer {n}", gold_ratings={"helpfulness": 4})
    return study_create(project=crowd_project, creator=researcher, name="Trained", completion_code="C0DE42",
                        quota=3, external_study_id="STUDY1", screened_out_code="SCR33N")


def _rater_of(participant: Participant):
    return rater_for_user(user=participant.user)


def _held(participant: Participant) -> Assignment:
    return Assignment.objects.get(rater__user=participant.user, status="claimed")


def test_the_gate_routes_a_participant_through_training_then_the_quota_counts_main_queue_tasks_only(
    trained_study, crowd_project
):
    from annotate.crowd import QUEUE, TRAINING, participant_done, payment_rows, study_gate

    client = Client()
    entry = client.get(_link(trained_study))
    assert entry["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    participant = Participant.objects.get()
    assert study_gate(participant) == TRAINING
    page = client.get(entry["Location"]).content.decode()
    assert "Training task 1 of 2" in page and "0 / 3" in page
    assert "training round: its tasks are not among the 3" in page
    for n in range(2):
        held = _held(participant)
        assert held.training and held.response.item.role == "gold"
        # One right (4 for a gold of 4), one wrong (0): one in two meets the bar of 0.5.
        feedback = _submit_current(client, crowd_project, value=4 if n == 0 else 0, htmx=True).content.decode()
        assert 'id="feedback"' in feedback and "<strong>complete</strong>" in feedback
        # The training task does not count towards the quota: the study counter stays at 0.
        assert participant_done(participant) == 0
        page = client.get(reverse("annotate_task", args=[crowd_project.pk]) + "?after=feedback",
                          HTTP_HX_REQUEST="true").content.decode()
    assert study_gate(participant) == QUEUE
    assert "Training task" not in page and "0 / 3" in page
    # The link again (a reload from the platform) leads to the queue, not back to training.
    assert client.get(_link(trained_study))["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    for n in range(3):
        if n:
            client.get(reverse("annotate_task", args=[crowd_project.pk]))
        assert not _held(participant).training
        last = _submit_current(client, crowd_project, htmx=True)
    # Three main-queue tasks after two training tasks: the quota of three is reached only now.
    assert last["HX-Redirect"] == reverse("study_complete", args=[study_token(trained_study)])
    assert participant_done(participant) == 3
    assert Assignment.objects.filter(rater__user=participant.user, status="done").count() == 5
    done = client.get(last["HX-Redirect"])
    assert done["Location"] == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    rows = {r.participant_id: r for r in payment_rows(trained_study)}
    assert (rows[PID].status, rows[PID].tasks_done, rows[PID].training_done) == ("completed", 5, 2)


def test_a_participant_below_the_bar_is_screened_out_at_once_with_the_screened_out_code(
    trained_study, crowd_project
):
    from annotate.crowd import SCREENED_OUT, payment_rows, study_gate

    client = Client()
    client.get(_link(trained_study))
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    participant = Participant.objects.get()
    _submit_current(client, crowd_project, value=0, htmx=True)
    client.get(reverse("annotate_task", args=[crowd_project.pk]) + "?after=feedback", HTTP_HX_REQUEST="true")
    feedback = _submit_current(client, crowd_project, value=1, htmx=True).content.decode()
    # The expected answer still shows; the message says the study ends, not "a researcher will look".
    assert 'id="feedback"' in feedback and "the study ends here for you" in feedback
    assert "A researcher will look" not in feedback
    # Recorded at the submit, before any further click: the payment report says so at once.
    participant.refresh_from_db()
    assert participant.screened_out_at is not None and participant.completed_at is None
    assert study_gate(participant) == SCREENED_OUT
    assert not Assignment.objects.filter(rater__user=participant.user, status="claimed").exists()
    event = AuditEvent.objects.get(action="study.screen_out")
    assert event.after == {"participant": PID, "state": "failed", "claims_released": 0}
    token = study_token(trained_study)
    # Continue (htmx) sends the page to the screened-out path, which sends it to the platform.
    cont = client.get(reverse("annotate_task", args=[crowd_project.pk]) + "?after=feedback", HTTP_HX_REQUEST="true")
    assert cont["HX-Redirect"] == reverse("study_screened_out", args=[token])
    out = client.get(cont["HX-Redirect"])
    assert out.status_code == 302 and out["Location"] == "https://app.prolific.com/submissions/complete?cc=SCR33N"
    # Never the completion code afterwards, by any way in.
    assert client.get(reverse("study_complete", args=[token]))["Location"] == reverse(
        "annotate_task", args=[crowd_project.pk])
    assert client.get(reverse("annotate_task", args=[crowd_project.pk]))["Location"] == reverse(
        "study_screened_out", args=[token])
    assert client.get(_link(trained_study))["Location"] == reverse("study_screened_out", args=[token])
    assert AuditEvent.objects.filter(action="study.screen_out").count() == 1
    # Nor a task through the REST queue the pages sit beside, even once a researcher reinstates
    # them: the platform has ended this participation.
    from annotate.training import standing_decide

    standing_decide(project=crowd_project, rater=_rater_of(participant), decision="reinstate",
                    user=trained_study.created_by)
    api = client.post(reverse("api-queue-next", args=[crowd_project.pk]))
    assert api.status_code == 409 and "ended for you" in api.json()["detail"]
    row = payment_rows(trained_study)[0]
    assert (row.status, row.tasks_done, row.training_done, row.finished_at) == (
        "screened out", 2, 2, participant.screened_out_at)


@pytest.mark.parametrize(("return_url", "lands"), [("", None), ("https://platform.example/back", "back")])
def test_without_a_screened_out_code_the_return_url_or_a_page_of_ours(crowd_project, return_url, lands):
    crowd_project.training_size, crowd_project.qualification_bar = 1, 1.0
    crowd_project.save()
    crowd_project.items.create(external_id="g", prompt="G", role="gold").responses.create(
        external_id="a", text="gold", gold_ratings={"helpfulness": 4})
    study = study_create(project=crowd_project, creator=None, name="NoCode", completion_code="C", quota=2,
                         return_url=return_url)
    client = Client()
    client.get(reverse("study_entry", args=[study_token(study)]) + f"?PROLIFIC_PID={PID}")
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    _submit_current(client, crowd_project, value=0)
    out = client.get(reverse("study_screened_out", args=[study_token(study)]))
    if lands is None:
        body = out.content.decode()
        assert out.status_code == 200 and "This study ends here for you" in body and "Return the study" in body
    else:
        assert out.status_code == 302 and out["Location"] == return_url


def test_a_participant_the_researcher_excludes_mid_study_leaves_and_their_claim_is_freed_at_once(
    study, crowd_project, researcher
):
    from annotate.training import standing_decide

    client = Client()
    client.get(_link(study))
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    participant = Participant.objects.get()
    _submit_current(client, crowd_project)
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    held = _held(participant)
    standing_decide(project=crowd_project, rater=held.rater, decision="exclude", user=researcher, note="bot")
    # The next page they ask for ends the study for them: not a "not open to you" page to wait on.
    page = client.get(reverse("annotate_task", args=[crowd_project.pk]))
    assert page["Location"] == reverse("study_screened_out", args=[study_token(study)])
    out = client.get(page["Location"])
    held.refresh_from_db()
    assert held.status == "expired"
    # No screened-out code on this study and no return URL: our page says what to do.
    assert out.status_code == 200 and "Return the study" in out.content.decode()
    assert Participant.objects.get().screened_out_at is not None


def test_a_qualified_participant_cannot_screen_themselves_out_by_url(trained_study, crowd_project):
    crowd_project.training_size = 0
    crowd_project.save()
    client = Client()
    client.get(_link(trained_study))
    response = client.get(reverse("study_screened_out", args=[study_token(trained_study)]))
    assert response["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    assert Participant.objects.get().screened_out_at is None


def test_the_studies_form_suggests_a_screened_out_code(crowd_project, researcher):
    client = Client()
    client.force_login(researcher)
    page = client.get(reverse("project_studies", args=[crowd_project.pk])).content.decode()
    assert 'name="screened_out_code"' in page and "screened out" in page
    client.post(reverse("project_studies", args=[crowd_project.pk]), {
        "name": "S", "quota": 5, "completion_code": "AAA", "screened_out_code": " BBB ", "pid_param": "PROLIFIC_PID",
        "completion_url": "https://app.prolific.com/submissions/complete?cc={code}"})
    assert Study.objects.get(name="S").screened_out_code == "BBB"
    # The code to register on the platform is on the studies page afterwards.
    page = client.get(reverse("project_studies", args=[crowd_project.pk])).content.decode()
    assert "screened out <code>BBB</code>" in page and "completion <code>AAA</code>" in page


def test_the_admin_shows_studies_participants_and_invitations_read_only(study, admin_user):
    participant_enter(study=study, params={"PROLIFIC_PID": PID, "STUDY_ID": "STUDY1"})
    client = Client()
    client.force_login(admin_user)
    for name in ("study", "participant", "invite"):
        assert client.get(reverse(f"admin:annotate_{name}_changelist")).status_code == 200
    page = client.get(reverse("admin:annotate_participant_changelist")).content.decode()
    assert PID in page
    assert client.get(reverse("admin:annotate_participant_add")).status_code == 403


def test_the_study_hook_costs_an_ordinary_annotators_task_page_no_query(crowd_project, annotator,
                                                                        django_assert_num_queries):
    from django.contrib.sessions.backends.cache import SessionStore
    from django.test import RequestFactory

    from annotate.study_views import study_context

    request = RequestFactory().get("/")
    request.user = annotator
    request.session = SessionStore()
    with django_assert_num_queries(0):
        assert study_context(request, crowd_project.pk) is None


def test_a_participant_paused_short_of_the_quota_never_gets_the_completion_code(study, crowd_project, researcher):
    from annotate.models import Standing

    crowd_project.items.exclude(external_id__in=["i0", "i1"]).delete()  # two tasks, quota three
    client = Client()
    client.get(_link(study))
    client.get(reverse("annotate_task", args=[crowd_project.pk]))
    _submit_current(client, crowd_project)
    participant = Participant.objects.get()
    rater = rater_for_user(user=participant.user)
    # Paused by the gold check after one task (as annotate.training does after a failed window).
    Standing.objects.create(project=crowd_project, rater=rater, state="paused")
    token = study_token(study)
    # The queue is not dry for them: it is closed. The completion URL does not give the code...
    early = client.get(reverse("study_complete", args=[token]))
    assert early["Location"] == reverse("annotate_task", args=[crowd_project.pk])
    assert not Assignment.objects.filter(rater=rater, status="claimed").exists()  # nor claims a task
    # ... and the queue sends them out through the screened-out path.
    assert client.get(early["Location"])["Location"] == reverse("study_screened_out", args=[token])
    assert client.get(reverse("study_screened_out", args=[token])).status_code == 200
    participant.refresh_from_db()
    assert participant.completed_at is None and participant.screened_out_at is not None
