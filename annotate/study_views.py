"""Crowd studies: the researcher's studies page and payment report, and the participant's way in
(the study link), out (completion) and back (return). The rules and the threat model are in
annotate.crowd."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .access import PARTICIPANTS_ONLY, can_research_in, project_for, study_for
from .crowd import (
    PROLIFIC_COMPLETION_URL,
    SCREENED_OUT,
    SESSION_KEY,
    StudyLinkError,
    link_rate_ok,
    new_completion_code,
    participant_complete,
    participant_done,
    participant_enter,
    participant_finished,
    participant_in_session,
    participant_may_complete,
    participant_return,
    participant_screen_out,
    payment_rows,
    study_close,
    study_create,
    study_from_token,
    study_gate,
    study_link_template,
)
from .errors import ValidationError
from .models import Participant, Study

# Keep the study link's parameters when a participant is asked to confirm: nothing else.
PARAM_LIMIT = 200


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200)
    quota = forms.IntegerField(min_value=1, max_value=10_000, initial=10, help_text="Tasks each participant does.")
    completion_code = forms.CharField(max_length=100)
    external_study_id = forms.CharField(max_length=200, required=False,
                                        help_text="The platform's study id; links for another study are refused.")
    pid_param = forms.CharField(max_length=60, initial="PROLIFIC_PID")
    study_param = forms.CharField(max_length=60, initial="STUDY_ID", required=False)
    session_param = forms.CharField(max_length=60, initial="SESSION_ID", required=False)
    completion_url = forms.CharField(max_length=500, initial=PROLIFIC_COMPLETION_URL)
    return_url = forms.CharField(max_length=500, required=False,
                                 help_text="Where a participant who leaves early goes (blank: a page here).")
    screened_out_code = forms.CharField(
        max_length=100, required=False,
        help_text="The code for a participant who does not pass the training round (or is paused by the "
        "gold check): add it on the platform as a screened-out code (Prolific: a completion code of type "
        "\"screened out\"). Blank: they are sent to the return URL, or asked to return the study.")


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _studies_page(request: HttpRequest, project_id: int, *, form: StudyForm | None = None,
                  status: int = 200) -> HttpResponse:
    project = project_for(request.user, project_id, need="research", archived=True)
    base = _base_url(request)
    studies = [
        {"study": s, "link": study_link_template(s, base), "participants": s.participants.count()}
        for s in Study.objects.filter(project=project)
    ]
    form = form or StudyForm(initial={"completion_code": new_completion_code(),
                                      "screened_out_code": new_completion_code()})
    return render(
        request, "annotate/studies.html",
        {"project": project, "can_research": can_research_in(request.user, project), "studies": studies, "form": form},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def studies(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the project's studies and their links. POST: a new study."""
    if request.method == "GET":
        return _studies_page(request, project_id)
    project = project_for(request.user, project_id, need="research")
    form = StudyForm(request.POST)
    if not form.is_valid():
        return _studies_page(request, project_id, form=form, status=422)
    try:
        study = study_create(project=project, creator=request.user, **form.cleaned_data)  # type: ignore[arg-type]
    except ValidationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _studies_page(request, project_id, form=form, status=422)
    messages.success(request, f"Study {study.name!r} made: paste its link into the platform.")
    return redirect("project_studies", project_id=project.pk)


@login_required
@require_POST
def study_close_view(request: HttpRequest, study_id: int) -> HttpResponse:
    study = study_for(request.user, study_id)
    study_close(study=study)
    messages.success(request, f"Study {study.name!r} closed: its link takes no more participants.")
    return redirect("project_studies", project_id=study.project_id)


@login_required
@require_GET
def study_payments(request: HttpRequest, study_id: int) -> HttpResponse:
    study = study_for(request.user, study_id)
    return render(
        request, "annotate/payments.html",
        {"project": study.project, "can_research": can_research_in(request.user, study.project),
         "study": study, "rows": payment_rows(study)},
    )


@login_required
@require_GET
def study_payments_csv(request: HttpRequest, study_id: int) -> StreamingHttpResponse:
    from .crowd import payment_csv

    study = study_for(request.user, study_id)
    response = StreamingHttpResponse(payment_csv(study), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-payments.csv"'
    return response


# --- The participant's side -----------------------------------------------------------------------


def _link_error(request: HttpRequest, exc: StudyLinkError) -> HttpResponse:
    return render(request, "annotate/study_message.html", {"title": "This study link does not work",
                                                           "message": str(exc)}, status=exc.status)


def _go_on(request: HttpRequest, participant: Participant, token: str) -> HttpResponse:
    """Where a participant goes next: the platform when done, its screened-out path when their
    standing keeps them out, else the task page (the training round first where it is theirs)."""
    if participant.completed_at is not None:
        return redirect(participant_complete(participant))
    if participant.screened_out_at is None and participant_finished(participant):
        return redirect(participant_complete(participant))
    if study_gate(participant) == SCREENED_OUT:
        return redirect("study_screened_out", study_token=token)
    return redirect("annotate_task", project_id=participant.study.project_id)


@require_http_methods(["GET", "POST"])
def study_entry(request: HttpRequest, study_token: str) -> HttpResponse:
    """The study link the platform opens, with the participant id in its query string.

    A signed-in user who is not a study participant (a researcher trying the link) is asked first:
    following a link must not silently swap their session for a participant's."""
    address = request.META.get("REMOTE_ADDR", "")
    if not link_rate_ok(address):
        return render(request, "annotate/study_message.html", {
            "title": "Too many visits", "message": "Too many study links were opened from here in the last "
            "minute. Wait a minute and reload this page."}, status=429)
    try:
        study = study_from_token(study_token)
        query = request.POST if request.method == "POST" else request.GET
        params = {k: str(query.get(k, ""))[:PARAM_LIMIT] for k in query}
        user = request.user
        if request.method == "GET" and user.is_authenticated and not Participant.objects.filter(user_id=user.pk).exists():
            return render(request, "annotate/study_confirm.html", {
                "study": study, "params": sorted(params.items()), "token": study_token})
        participant = participant_enter(study=study, params=params)
    except StudyLinkError as exc:
        return _link_error(request, exc)
    if request.user.pk != participant.user_id:
        login(request, participant.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_KEY] = participant.pk
    # A bearer account on what may be a shared machine: the session ends with the browser (the
    # platform's link signs the participant in again).
    request.session.set_expiry(0)
    return _go_on(request, participant, study_token)


def _own_participant(request: HttpRequest, token: str) -> Participant:
    try:
        study = study_from_token(token)
    except StudyLinkError as exc:
        raise PermissionDenied(PARTICIPANTS_ONLY) from exc
    participant = participant_in_session(request)
    if participant is None or participant.study_id != study.pk:
        raise PermissionDenied(PARTICIPANTS_ONLY)
    return participant


@login_required
@require_GET
def study_complete(request: HttpRequest, study_token: str) -> HttpResponse:
    """The end of the study: to the platform with the code, once the participant has finished;
    before that, back to the queue (the code is never shown early)."""
    participant = _own_participant(request, study_token)
    if not participant_may_complete(participant):
        return redirect("annotate_task", project_id=participant.study.project_id)
    return HttpResponseRedirect(participant_complete(participant))


@login_required
@require_GET
def study_screened_out(request: HttpRequest, study_token: str) -> HttpResponse:
    """The end of the study for a participant their standing keeps out of the queue: claims given
    back now, then the platform's screened-out code (or return URL, or a page saying so). One who
    may still annotate is sent back to the task page: nobody screens themselves out by URL."""
    participant = _own_participant(request, study_token)
    if participant.completed_at is not None:
        return HttpResponseRedirect(participant_complete(participant))
    if study_gate(participant) != SCREENED_OUT:
        return redirect("annotate_task", project_id=participant.study.project_id)
    destination = participant_screen_out(participant)
    if destination:
        return HttpResponseRedirect(destination)
    return render(request, "annotate/study_message.html", {
        "title": "This study ends here for you",
        "message": "Your answers in the training round (or the check tasks) did not match the expected ones "
        "often enough for this study to go on. Nothing is held for you any more. Return the study on the "
        "platform's page so that your place goes to someone else."})


def screen_out_if_held(request: HttpRequest, project_id: int) -> None:
    """After a training submit: a study participant whose standing now keeps them out of the queue
    (the round ended below the bar) leaves the study at once, so the payment report and their
    claims say so even if they close the tab on the feedback page. No query for anyone but a
    participant (the session key)."""
    participant = participant_in_session(request)
    if participant is None or participant.study.project_id != project_id or participant.completed_at is not None:
        return
    if study_gate(participant) == SCREENED_OUT:
        participant_screen_out(participant)


@login_required
@require_POST
def study_return(request: HttpRequest, study_token: str) -> HttpResponse:
    """Leave without finishing: claims are given back now, then to the platform's return URL."""
    participant = _own_participant(request, study_token)
    participant_return(participant)
    if participant.study.return_url:
        return HttpResponseRedirect(participant.study.return_url)
    return render(request, "annotate/study_message.html", {
        "title": "You left the study",
        "message": "Your tasks in hand went back to the queue. To be paid for the tasks you did, return the "
        "study on the platform's page. You can come back through the study link while the study is open."})


def study_context(request: HttpRequest, project_id: int) -> dict | None:
    """For the task pages: the participant's study (quota, done, links), or None for anyone else."""
    participant = participant_in_session(request)
    if participant is None or participant.study.project_id != project_id:
        return None
    from .crowd import study_token

    token = study_token(participant.study)
    return {
        "participant": participant, "quota": participant.study.quota, "done": participant_done(participant),
        "complete_url": reverse("study_complete", args=[token]), "return_url": reverse("study_return", args=[token]),
        "screened_out_url": reverse("study_screened_out", args=[token]),
    }
