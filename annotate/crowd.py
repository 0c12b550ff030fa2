"""Crowd-platform studies: a study link for Prolific (or any platform), quotas, completion, payment.

The flow: the platform opens ``/study/<token>/?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...``
(the parameter names are per study, so any platform fits) -> the participant gets an account
without a password and a session -> the training round while the project requires one and they
have not qualified (`study_gate`: annotate.training's standing decides) -> the project's main
queue, for `study.quota` tasks (training tasks do not count towards it) -> the study's completion
URL with its code (Prolific: https://app.prolific.com/submissions/complete?cc=CODE).
A participant who leaves without finishing ("return") gives their claims back at once. One whose
standing keeps them out of the queue (below the training round's bar, or paused by the continuous
check) cannot go on: the study ends for them through its screened-out path (the platform's
screened-out code, else its return URL, else a page of ours), their claims given back at once.

Threat model
    A study link is a *bearer* link, as the platform's own links are: whoever holds the token and
    a participant id is that participant. Prolific sends both in the URL, so anyone who sees a
    participant's URL (their browser history, a shared screen) can continue as them; Concordance
    cannot do better than the platform's link without a second factor the platform does not give.
    What we bound is what such a link is worth:

    - The token is the study's id signed with the secret key (django.core.signing, salt
      STUDY_SALT): study ids cannot be enumerated or forged, and a closed study's link stops.
    - When the study names its platform study id, a link whose study parameter differs is refused.
    - Participant ids are checked for shape (PID_PATTERN) and a participant id names an account
      only inside its study (``Participant(study, external_id)``): the same id in another study,
      or a real user's name, is never the same account.
    - The account has no password (only the link logs it in), the global role annotator and one
      membership, annotator, in the study's project: never more than annotate on that one project
      (annotate.access: the role ceiling, and invitations refused to participant accounts).
    - Visits are rate-limited per client address (settings.STUDY_LINK_RATE_PER_MINUTE), bounding
      guessing of participant ids and the making of accounts in bulk.
    - A signed-in user of another kind who opens a link is asked before being signed out (a page
      cannot silently swap a researcher's session for a participant's).
    - The completion code is shown only to a participant who finished (quota reached, or the
      queue ran dry after at least one task); visiting the completion URL early gets the queue,
      and a participant screened out never gets it. The screened-out path is taken only when the
      participant's standing says so: nobody screens themselves out by opening its URL.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.http import HttpRequest
from django.utils import timezone

from .audit import audit_record
from .errors import ValidationError
from .models import Assignment, Membership, Participant, Project, Rater, Study
from .queue import assignment_claim_next, assignment_release_claims
from .roles import user_set_role
from .services import rater_for_user
from .training import MAY_ANNOTATE, State, current_state

STUDY_SALT = "concordance.study"
SESSION_KEY = "concordance_participant"
# Prolific ids are 24 hex characters; other platforms use letters, digits, - and _.
PID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"


class StudyLinkError(Exception):
    """A study link that cannot be honoured; `status` is the HTTP answer, the message is shown."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- Links ----------------------------------------------------------------------------------------


def study_token(study: Study) -> str:
    """The study's id, signed: the same token every time (it is pasted into the platform once)."""
    return signing.Signer(salt=STUDY_SALT).sign(str(study.pk))


def study_from_token(token: str) -> Study:
    try:
        study_id = signing.Signer(salt=STUDY_SALT).unsign(token)
    except signing.BadSignature as exc:
        raise StudyLinkError("This is not a study link of ours.", status=404) from exc
    study = Study.objects.select_related("project").filter(pk=int(study_id)).first() if study_id.isdigit() else None
    if study is None:
        raise StudyLinkError("This is not a study link of ours.", status=404)
    return study


def study_link_template(study: Study, base_url: str) -> str:
    """The URL to paste into the platform, with its placeholders (Prolific's {{%NAME%}} form)."""
    params = [p for p in (study.pid_param, study.study_param, study.session_param) if p]
    query = "&".join(f"{p}={{{{%{p}%}}}}" for p in params)
    return f"{base_url}/study/{study_token(study)}/?{query}"


def completion_url(study: Study) -> str:
    return study.completion_url.replace("{code}", quote(study.completion_code, safe=""))


def rate_window() -> int:
    """The current minute: the window visits are counted in."""
    return int(timezone.now().timestamp() // 60)


def link_rate_ok(address: str) -> bool:
    """Whether this client address may open another study link this minute (a fixed window)."""
    limit = settings.STUDY_LINK_RATE_PER_MINUTE
    key = f"concordance:study-link:{address}:{rate_window()}"
    cache.add(key, 0, timeout=120)
    try:
        seen = cache.incr(key)
    except ValueError:  # evicted between add and incr: count this visit as the first
        cache.set(key, 1, timeout=120)
        seen = 1
    return seen <= limit


# --- Studies --------------------------------------------------------------------------------------


def study_create(
    *, project: Project, creator: User | None, name: str, completion_code: str, quota: int = 10,
    external_study_id: str = "", pid_param: str = "PROLIFIC_PID", study_param: str = "STUDY_ID",
    session_param: str = "SESSION_ID", completion_url: str = PROLIFIC_COMPLETION_URL, return_url: str = "",
    screened_out_code: str = "",
) -> Study:
    """A new study of `project` (the caller checked the creator researches it)."""
    if not name.strip():
        raise ValidationError("Give the study a name.", field="name")
    if not completion_code.strip():
        raise ValidationError("Give the study's completion code (the platform shows it when you set up the study).",
                              field="completion_code")
    if quota < 1:
        raise ValidationError("The quota is at least one task.", field="quota")
    for field, value in (("pid_param", pid_param), ("study_param", study_param), ("session_param", session_param)):
        if value and not PID_PATTERN.fullmatch(value):
            raise ValidationError("A parameter name is letters, digits, - and _.", field=field)
    if not pid_param:
        raise ValidationError("Name the parameter that carries the participant id.", field="pid_param")
    for field, url in (("completion_url", completion_url), ("return_url", return_url)):
        if url and not url.startswith("https://"):
            raise ValidationError("Platform URLs start with https://.", field=field)
    if "{code}" not in completion_url:
        raise ValidationError("The completion URL must contain {code} where the completion code goes.",
                              field="completion_url")
    study = Study.objects.create(
        project=project, name=name.strip(), completion_code=completion_code.strip(), quota=quota,
        external_study_id=external_study_id.strip(), pid_param=pid_param, study_param=study_param,
        session_param=session_param, completion_url=completion_url, return_url=return_url,
        screened_out_code=screened_out_code.strip(), created_by=creator,
    )
    audit_record(action="study.create", obj=study, before=None,
                 after={"project": project.pk, "name": study.name, "quota": quota})
    return study


def study_close(*, study: Study) -> Study:
    if study.closed_at is None:
        study.closed_at = timezone.now()
        study.save(update_fields=["closed_at"])
        audit_record(action="study.close", obj=study, before={"closed": False}, after={"closed": True})
    return study


# --- Participants ---------------------------------------------------------------------------------


def _username(study: Study, pid: str) -> str:
    # A namespace of its own: never a real user's name, never another study's participant.
    return f"study{study.pk}-{pid}"


def participant_enter(*, study: Study, params: Mapping[str, str]) -> Participant:
    """The study's participant named by the link's parameters, made on the first visit.

    Idempotent: the same participant id is the same participant and account every time (a
    race of two first visits makes one; the loser reads the winner's row)."""
    if study.closed_at is not None:
        raise StudyLinkError("This study is closed: it takes no more participants.", status=410)
    if study.project.archived_at is not None:
        raise StudyLinkError("This study's project is archived: it takes no more participants.", status=410)
    pid = (params.get(study.pid_param) or "").strip()
    if not pid:
        raise StudyLinkError(f"This link lacks the participant id ({study.pid_param}): open the study "
                             "from the platform's page.")
    if not PID_PATTERN.fullmatch(pid):
        raise StudyLinkError(f"The participant id ({study.pid_param}) is not one a platform gives.")
    if study.external_study_id and study.study_param and params.get(study.study_param) != study.external_study_id:
        raise StudyLinkError("This link belongs to another study: open the study from the platform's page.")
    session_id = (params.get(study.session_param) or "")[:128] if study.session_param else ""
    participant = Participant.objects.select_related("user").filter(study=study, external_id=pid).first()
    if participant is None:
        try:
            participant = _participant_create(study=study, pid=pid, session_id=session_id)
        except IntegrityError:
            # Another first visit of the same id won the race: theirs is ours. (A user account of the
            # reserved name made by hand is not adopted: refused, not a 500.)
            participant = Participant.objects.select_related("user").filter(study=study, external_id=pid).first()
            if participant is None:
                raise StudyLinkError("This participant id cannot join the study: ask the researcher.",
                                     status=409) from None
    updates = {"last_seen_at": timezone.now()}
    if session_id and session_id != participant.session_id:
        updates["session_id"] = session_id  # type: ignore[assignment]
    if participant.returned_at is not None and participant.completed_at is None:
        # Back through the link after returning: they may go on where they left off.
        updates["returned_at"] = None  # type: ignore[assignment]
    Participant.objects.filter(pk=participant.pk).update(**updates)
    for name, value in updates.items():
        setattr(participant, name, value)
    return participant


def _participant_create(*, study: Study, pid: str, session_id: str) -> Participant:
    with transaction.atomic():
        user = User(username=_username(study, pid))
        user.set_unusable_password()  # only the study link signs this account in
        user.save()
        user_set_role(user=user, role="annotator")
        Membership.objects.create(project=study.project, user=user, role=Membership.Role.ANNOTATOR)
        rater_for_user(user=user)
        participant = Participant.objects.create(study=study, external_id=pid, user=user, session_id=session_id)
        audit_record(action="study.participant", obj=study, before=None, after={"participant": pid})
    return participant


def participant_in_session(request: HttpRequest, project: Project | None = None) -> Participant | None:
    """The study participant this session was opened for (by the study link), or None.

    Read from the session, so an ordinary annotator's task pages cost no query for it."""
    pk = request.session.get(SESSION_KEY)
    if pk is None or not request.user.is_authenticated:
        return None
    participants = Participant.objects.select_related("study__project", "user").filter(pk=pk, user_id=request.user.pk)
    if project is not None:
        participants = participants.filter(study__project=project)
    return participants.first()


def participant_done(participant: Participant) -> int:
    """Main-queue tasks the participant finished in the study's project, towards the quota.

    Every main-queue task counts, regular, gold or attention alike, so the counter never tells a
    check from a task; the training round's tasks (Assignment.training, shown as training) do not:
    the quota is the study's work, the round is the way in."""
    return Assignment.objects.filter(
        project_id=participant.study.project_id, rater__user_id=participant.user_id, status=Assignment.Status.DONE,
        training=False,
    ).count()


# Where study_gate sends a participant who has not finished.
TRAINING = "training"
QUEUE = "queue"
SCREENED_OUT = "screened out"


def study_gate(participant: Participant) -> str:
    """The step before the quota's tasks, from the participant's standing (annotate.training):
    TRAINING while the project's training round is theirs to do, QUEUE once qualified, and
    SCREENED_OUT when their standing keeps them out of the queue (below the bar after training,
    paused by the continuous check, excluded or removed) or the study already ended so for them:
    a crowd participant cannot wait days for a researcher's decision, so the study lets them go.

    The training round and the queue are both served by the task page (training.claim_next
    gives the round's gold first); the step says which one the participant is in."""
    if participant.screened_out_at is not None:
        return SCREENED_OUT
    state = current_state(participant.study.project, rater_for_user(user=participant.user))
    if state == State.TRAINING:
        return TRAINING
    return QUEUE if state in MAY_ANNOTATE else SCREENED_OUT


def finished_after(*, done: int, quota: int, queue_empty: bool) -> bool:
    """The one rule of a participant's end: quota reached, or nothing left to give after at least
    one task (they did all there was)."""
    return done >= quota or (queue_empty and done > 0)


def participant_finished(participant: Participant, *, queue_empty: bool = False) -> bool:
    return finished_after(done=participant_done(participant), quota=participant.study.quota, queue_empty=queue_empty)


def participant_may_complete(participant: Participant) -> bool:
    """Whether the completion code may be given now: quota reached, or at least one task done and
    the queue has nothing more for them. The queue is asked for real (a claim, or their open task,
    means it is not empty: that task is then theirs to do), so visiting the completion URL early
    never yields the code."""
    if participant.completed_at is not None:
        return True
    if participant.screened_out_at is not None:
        return False  # the study ended for them without the code: never the code afterwards
    done = participant_done(participant)
    if finished_after(done=done, quota=participant.study.quota, queue_empty=False) or done == 0:
        return done > 0
    # Short of the quota, "the queue has nothing more" is only true of a participant the queue
    # would serve: one whose standing closed it (paused by the gold check) has nothing more
    # because of it, and leaves through the screened-out path, not with the code.
    if study_gate(participant) == SCREENED_OUT:
        return False
    rater = rater_for_user(user=participant.user)
    return assignment_claim_next(project=participant.study.project, rater=rater) is None


def participant_complete(participant: Participant) -> str:
    """Record the completion (once) and give the URL that hands the code to the platform."""
    with transaction.atomic():
        rater = rater_for_user(user=participant.user)
        assignment_release_claims(project=participant.study.project, rater=rater)
        if participant.completed_at is None:
            participant.completed_at = timezone.now()
            participant.save(update_fields=["completed_at"])
            audit_record(action="study.complete", obj=participant.study, before=None,
                         after={"participant": participant.external_id})
    return completion_url(participant.study)


def _end_participation(participant: Participant, *, stamp: str, action: str, state: bool = False) -> int:
    """Free the participant's claims now and, the first time only, stamp `stamp` (returned_at or
    screened_out_at) and audit it; a completed participant stays completed. Returns the claims
    released. `state` adds the standing that ended it to the audit record."""
    with transaction.atomic():
        rater = rater_for_user(user=participant.user)
        released = assignment_release_claims(project=participant.study.project, rater=rater)
        if participant.completed_at is None and getattr(participant, stamp) is None:
            setattr(participant, stamp, timezone.now())
            participant.save(update_fields=[stamp])
            after: dict = {"participant": participant.external_id}
            if state:
                after["state"] = current_state(participant.study.project, rater)
            after["claims_released"] = released
            audit_record(action=action, obj=participant.study, before=None, after=after)
    return released


def participant_return(participant: Participant) -> int:
    """The participant leaves without finishing: their claims go back to the pool now."""
    return _end_participation(participant, stamp="returned_at", action="study.return")


def screened_out_url(study: Study) -> str | None:
    """Where a screened-out participant goes: the completion URL with the screened-out code, else
    the study's return URL, else None (a page of ours asks them to return the study)."""
    if study.screened_out_code:
        return study.completion_url.replace("{code}", quote(study.screened_out_code, safe=""))
    return study.return_url or None


def participant_screen_out(participant: Participant) -> str | None:
    """End the study for a participant whose standing keeps them out of the queue: their claims go
    back to the pool now, the end is recorded once (a reload, or the link again, finds it), and
    the answer is where they go (screened_out_url). A participant who completed stays completed."""
    _end_participation(participant, stamp="screened_out_at", action="study.screen_out", state=True)
    return screened_out_url(participant.study)


# --- Payment report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRow:
    participant_id: str
    session_id: str
    status: str  # completed | screened out | returned | in progress
    started_at: datetime
    finished_at: datetime | None
    tasks_done: int  # every task done, the training round's too: all of it is paid work
    training_done: int
    active_seconds: float
    gold_passed: int
    gold_total: int
    attention_passed: int
    attention_total: int

    def as_dict(self) -> dict:
        return {
            "participant_id": self.participant_id, "session_id": self.session_id, "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else "",
            "tasks_done": self.tasks_done, "training_done": self.training_done, "active_seconds": self.active_seconds,
            "active_minutes": round(self.active_seconds / 60, 2),
            "gold_passed": self.gold_passed, "gold_total": self.gold_total,
            "attention_passed": self.attention_passed, "attention_total": self.attention_total,
        }


PAYMENT_COLUMNS = [
    "participant_id", "session_id", "status", "started_at", "finished_at", "tasks_done", "training_done", "active_seconds",
    "active_minutes", "gold_passed", "gold_total", "attention_passed", "attention_total",
]


def payment_rows(study: Study) -> list[PaymentRow]:
    """Per participant: tasks done, active time and gold passed.

    Active time is the sum of the done assignments' time on task (the page's measure of visible
    time, annotate.queue._time_ms), not the wall time since the link was opened: an idle tab is
    not paid as work. Gold and attention passes are the dashboard's (annotate.dashboard's one rule)."""
    from .dashboard import annotator_rows

    participants = list(Participant.objects.filter(study=study).order_by("started_at", "pk"))
    done = Q(assignments__status=Assignment.Status.DONE, assignments__project_id=study.project_id)
    work = {
        r["user_id"]: r
        for r in Rater.objects.filter(user_id__in=[p.user_id for p in participants])
        .annotate(n=Count("assignments", filter=done), ms=Sum("assignments__time_on_task_ms", filter=done),
                  trained=Count("assignments", filter=done & Q(assignments__training=True)))
        .values("user_id", "n", "ms", "trained")
    }
    quality = {row.rater.user_id: row for row in annotator_rows(project=study.project)}
    rows = []
    for p in participants:
        w = work.get(p.user_id, {"n": 0, "ms": 0, "trained": 0})
        q = quality.get(p.user_id)
        status = ("completed" if p.completed_at else "screened out" if p.screened_out_at
                  else "returned" if p.returned_at else "in progress")
        rows.append(
            PaymentRow(
                participant_id=p.external_id, session_id=p.session_id, status=status, started_at=p.started_at,
                finished_at=p.completed_at or p.screened_out_at or p.returned_at, tasks_done=w["n"] or 0,
                training_done=w["trained"] or 0,
                active_seconds=round((w["ms"] or 0) / 1000, 1),
                gold_passed=q.gold_passed if q else 0, gold_total=q.gold_total if q else 0,
                attention_passed=q.attention_passed if q else 0, attention_total=q.attention_total if q else 0,
            )
        )
    return rows


def payment_csv(study: Study) -> Iterator[bytes]:
    """The payment report as CSV, every cell escaped as the annotations export does (a participant
    or session id from the link is the platform's text: it could start with '=')."""
    from exports.formats import csv_chunks  # late: the web process loads pyarrow only for exports

    return csv_chunks((row.as_dict() for row in payment_rows(study)), PAYMENT_COLUMNS)


def new_completion_code() -> str:
    """A suggestion for a study's completion code (the platform usually gives one)."""
    return secrets.token_hex(4).upper()
