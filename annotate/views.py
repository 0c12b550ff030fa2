"""Annotator and researcher pages.

Every task page works two ways: htmx posts swap the `#task` partial in place; without
JavaScript the same forms post normally and get a redirect back to the task page (POST,
redirect, GET), so a reload never resubmits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from . import adjudication, checklists, dashboard, study_views, training
from .access import (
    can_research,
    can_research_in,
    global_role,
    judges_usable,
    project_for,
    projects_with_roles,
    role_meets,
)
from .conversation import ROLE_LABELS, is_multi_turn
from .crowd import finished_after
from .errors import ValidationError
from .forms import RankingForm, SkipForm, TaskViewForm, first_error, rating_values
from .markdown import render_markdown
from .models import Assignment, ChecklistAnswer, Item, Pair, Project, Rater
from .queue import (
    SKIP_REASONS,
    QueueError,
    assignment_skip,
    assignment_submit_preference,
    assignment_submit_rating,
    assignment_undo,
    assignment_with_task,
    newest_done,
    open_claims_elsewhere,
    prefetch_attributes,
    progress_for,
)
from .roles import authenticated
from .services import rater_for_user

# Display labels for the strength the annotator gives about what they see: A is the left
# (first shown) response, whatever the pair's stored order is.
SHOWN_STRENGTH_LABELS: dict[int, str] = {
    -3: "A is much better",
    -2: "A is better",
    -1: "A is slightly better",
    0: "About the same",
    1: "B is slightly better",
    2: "B is better",
    3: "B is much better",
}
TERNARY_LABELS: dict[int, str] = {-1: "A is better", 0: "About the same", 1: "B is better"}

# htmx stops polling when a response carries this status (htmx docs: "286 Stop Polling").
HTMX_STOP_POLLING = 286


@dataclass(frozen=True)
class Notice:
    text: str
    kind: str = "info"  # info | success | error


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _url_or_none(name: str, *args: object) -> str | None:
    # Other apps' pages may not exist yet in a given checkout; the home page still renders.
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    researcher = can_research(request.user)
    rows = []
    for project, role in projects_with_roles(request.user):
        researcher = role in ("researcher", "admin")
        rows.append(
            {
                "project": project,
                "annotate_url": reverse("annotate_task", args=[project.pk]),
                "dashboard_url": reverse("annotate_dashboard", args=[project.pk]) if researcher else None,
                "reports_url": _url_or_none("reports:project", project.pk) if researcher else None,
                "judges_url": _url_or_none("judges:runs", project.pk) if researcher else None,
                "exports_url": _url_or_none("exports:project", project.pk) if researcher else None,
                "review_url": reverse("annotate_review", args=[project.pk]) if role_meets(role, "review") else None,
            }
        )
    return render(
        request, "annotate/home.html",
        {"rows": rows, "role": global_role(request.user), "researcher": can_research(request.user)},
    )


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _strength_options(project: Project) -> list[dict]:
    labels = TERNARY_LABELS if project.ranking_scale == Project.RankingScale.TERNARY else SHOWN_STRENGTH_LABELS
    return [{"value": v, "label": label, "key": str(i + 1)} for i, (v, label) in enumerate(sorted(labels.items()))]


def item_content(item: Item) -> dict:
    """What every page that shows an item renders of it: the prompt (the last user turn), the
    conversation's earlier turns when it has some, and the context, each as sanitised HTML."""
    turns = item.conversation if is_multi_turn(item.conversation) else None
    earlier = [
        {"role": turn["role"], "label": ROLE_LABELS.get(turn["role"], turn["role"]), "html": render_markdown(turn["content"])}
        for turn in (turns or [])[:-1]
    ]
    return {
        "prompt_html": render_markdown(item.prompt),
        "earlier_turns": earlier,
        "context_html": render_markdown(item.context) if item.context else "",
    }


def letter_keys(project: Project) -> tuple[int, int]:
    """The strengths the A and B keys give (T gives 0): -2/2 where the scale has them, else its
    strongest ends (a ternary scale's -1/1)."""
    lo, hi = project.strength_bounds
    return max(lo, -2), min(hi, 2)


def _task_context(
    *,
    project: Project,
    rater: Rater,
    assignment: Assignment | None,
    errors: dict[str, str] | None = None,
    posted: dict | None = None,
    notice: Notice | None = None,
    waiting: int = 0,
    generating: int = 0,
    standing_message: str = "",
    just_done: Assignment | None = None,
) -> dict:
    errors = errors or {}
    draft = posted if posted is not None else ((assignment.draft or {}) if assignment else {})
    # After a submit the newest done is the one just stored: no query for the undo link.
    last = just_done if just_done is not None else newest_done(project=project, rater=rater)
    context: dict = {
        "project": project,
        "assignment": assignment,
        "progress": progress_for(project=project, rater=rater),
        "notice": notice,
        "errors": errors,
        "undo_key": last.view_key if last and not last.training else None,
        "skip_reasons": SKIP_REASONS.items(),
        # All done: how many tasks other annotators hold that could still come back to this one.
        "waiting": waiting,
        # ... and generate runs in progress, whose new responses become new tasks.
        "generating": generating,
        # No task because of the annotator's standing (annotate.training), not an empty queue.
        "standing_message": standing_message,
        "training_round": None,
    }
    if assignment is None:
        return context
    if assignment.training:
        done = Assignment.objects.filter(project=project, rater=rater, training=True, status=Assignment.Status.DONE).count()
        context["training_round"] = {"number": done + 1, "size": project.training_size}
    if assignment.protocol == Assignment.Protocol.RATING:
        response = assignment.response
        assert response is not None
        item = response.item
        attributes = []
        # From the prefetched attributes (_project_and_rater): a filtered queryset would query again.
        for attribute in (a for a in project.attributes.all() if a.name != checklists.CHECKLIST_ATTRIBUTE):
            anchors = attribute.anchors or {}
            selected = _as_int(draft.get(attribute.name))
            attributes.append(
                {
                    "name": attribute.name,
                    "description": attribute.description,
                    "error": errors.get(attribute.name),
                    "choices": [
                        {"value": v, "anchor": anchors.get(str(v), ""), "checked": selected == v}
                        for v in range(attribute.min_value, attribute.max_value + 1)
                    ],
                }
            )
        context.update({"response_html": render_markdown(response.text), "attributes": attributes})
    else:
        pair = assignment.pair
        assert pair is not None
        item = pair.item
        # Left is what the annotator calls A; the stored order is never shown.
        left, right = (
            (pair.response_a, pair.response_b) if assignment.shown_order == "ab" else (pair.response_b, pair.response_a)
        )
        selected = _as_int(draft.get("shown_strength"))
        options = _strength_options(project)
        for option in options:
            option["checked"] = selected == option["value"]
        key_a, key_b = letter_keys(project)
        context.update(
            {
                "left_html": render_markdown(left.text),
                "right_html": render_markdown(right.text),
                "strength_options": options,
                "justification": draft.get("justification", ""),
                "justification_error": errors.get("justification"),
                "strength_error": errors.get("shown_strength") or errors.get("strength"),
                "required_above": project.justification_required_above,
                "key_a": key_a, "key_b": key_b,
            }
        )
    context.update(_checklist_context(assignment=assignment, rater=rater, item=item, draft=draft))
    context.update(
        {
            "item": item,
            **item_content(item),
            "general_error": errors.get("__all__"),
        }
    )
    return context


# The rating keys are single digits (annotate.js reads one key a value).
DIGIT_KEYS = range(0, 10)


def help_keys(project: Project) -> dict:
    """The keyboard help for this project's scales: the digits its attributes take (0-4 for
    HelpSteer2's, 1-7 for a seven-point one) and what each ranking key means, so the overlay never
    lists a key that does nothing."""
    keys: dict = {"rating": [], "ranking": [], "letters": []}
    if project.protocols != Project.Protocols.RANKING:
        scales: dict[tuple[int, int], list[str]] = {}
        for attribute in project.attributes.all():
            scales.setdefault((attribute.min_value, attribute.max_value), []).append(attribute.name)
        for (lo, hi), names in sorted(scales.items()):
            typed = [v for v in range(lo, hi + 1) if v in DIGIT_KEYS]
            keys["rating"].append({
                "low": typed[0] if typed else None, "high": typed[-1] if typed else None,
                "untyped": len(typed) < hi - lo + 1, "attributes": names, "all": len(scales) == 1,
            })
    if project.protocols != Project.Protocols.RATING:
        options = _strength_options(project)
        keys["ranking"] = options
        labels = {o["value"]: o["label"] for o in options}
        key_a, key_b = letter_keys(project)
        keys["letters"] = [("A", labels[key_a]), ("T", labels[0]), ("B", labels[key_b])]
    return keys
def _checklist_context(*, assignment: Assignment, rater: Rater, item: Item, draft: dict) -> dict:
    """The item's checklist (annotate/_checklist.html): answered in a rating task, with what the
    rater answered before (or the draft of a failed submit) ticked; guidance in a ranking task."""
    questions = checklists.live_questions(item)
    answerable = assignment.protocol == Assignment.Protocol.RATING
    before: set[int] = set()
    if answerable and questions:
        ticked = draft.get("checklist")
        before = set(ticked) if isinstance(ticked, list) else set(
            ChecklistAnswer.objects.filter(rater=rater, response=assignment.response, answer=True,
                                           question__in=questions).values_list("question_id", flat=True))
    keys = checklists.QUESTION_KEYS
    return {"checklist_answerable": answerable, "checklist": [
        {"id": q.pk, "text": q.text, "key": keys[i] if i < len(keys) else "", "checked": q.pk in before}
        for i, q in enumerate(questions)
    ]}


def _checklist_posted(post: QueryDict) -> dict[int, bool]:
    """question id -> yes from a rating form: every question shown is answered (unticked = no)."""
    asked = {int(v) for v in post.getlist("checklist-asked") if v.isdigit()}
    return {qid: post.get(f"checklist-{qid}") == "yes" for qid in asked}


def _render_task(request: HttpRequest, context: dict, *, status: int = 200) -> HttpResponse:
    study = study_views.study_context(request, context["project"].pk)
    if study is not None:
        # A study participant's counter counts towards their quota (every task alike, checks too).
        context["progress"] = replace(context["progress"], rater_done=study["done"], rater_target=study["quota"])
        context["study"] = study
    if _is_htmx(request):
        return render(request, "annotate/_task.html", context, status=status)
    project = context["project"]
    context["help_keys"] = help_keys(project)
    context["guidelines_html"] = render_markdown(project.guidelines) if project.guidelines else ""
    return render(request, "annotate/task.html", context, status=status)


def _project_and_rater(request: HttpRequest, project_id: int) -> tuple[Project, Rater]:
    # The routing policy with it: the claim (and a ranking submit's refresh) read it, no query of its own.
    project = project_for(request.user, project_id, need="annotate", select_related=("routing_policy",))
    # Read once: the submitted values, the error form and the next task's form all list them.
    prefetch_attributes(project)
    return project, rater_for_user(user=authenticated(request.user))


def generating_runs(project: Project) -> int:
    """Generate runs in progress on the project: each writes new responses, so new tasks (rating
    the answers, comparing them in pairs) can still come to an annotator who is done now."""
    from judges.models import Run  # judges builds on annotate: imported where it is needed

    return Run.objects.filter(project=project, kind=Run.Kind.GENERATE, status=Run.Status.RUNNING).count()


def _claim(project: Project, rater: Rater) -> tuple[Assignment | None, int, str]:
    """The annotator's next task through annotate.training's gate (training round, main
    queue, or none while their standing holds them back, with the reason); when the queue has
    none, the claims others hold that could reopen.

    A claim given back between the claim attempt and the count is in the pool but no longer
    counted, so a count of zero gets one more attempt: the done state stops checking back only
    once nothing is left and nothing is in flight."""
    gate = training.claim_next(project=project, rater=rater)
    if gate.blocked:
        return None, 0, gate.message
    if gate.assignment is not None:
        return assignment_with_task(gate.assignment), 0, ""
    waiting = open_claims_elsewhere(project=project, rater=rater)
    assignment = None
    if waiting == 0:
        gate = training.claim_next(project=project, rater=rater)
        assignment = gate.assignment
    return (assignment_with_task(assignment) if assignment is not None else None), waiting, gate.message


def _study_redirect(request: HttpRequest, url: str) -> HttpResponse:
    """Away from the task page: HX-Redirect for htmx (a swap would put the next page in #task)."""
    if _is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _study_exit(request: HttpRequest, project: Project, *, queue_empty: bool) -> HttpResponse | None:
    """A study participant who has finished (quota, or the queue dry after a task) goes to the
    study's completion, one the study has screened out to its screened-out path; None for everyone
    else (no query for them: annotate.crowd's session key)."""
    study = study_views.study_context(request, project.pk)
    if study is None:
        return None
    if study["participant"].screened_out_at is not None:
        return _study_redirect(request, study["screened_out_url"])
    if not finished_after(done=study["done"], quota=study["quota"], queue_empty=queue_empty):
        return None
    return _study_redirect(request, study["complete_url"])


def _study_held(request: HttpRequest, project: Project) -> HttpResponse | None:
    """A study participant whose standing keeps them out of the queue leaves through the study's
    screened-out path (annotate.crowd) instead of waiting on a page; None for everyone else."""
    study = study_views.study_context(request, project.pk)
    return None if study is None else _study_redirect(request, study["screened_out_url"])


def _claim_or_exit(
    request: HttpRequest, project: Project, rater: Rater
) -> tuple[Assignment | None, int, str, HttpResponse | None]:
    """_claim, or a study participant's way out (their completion, or the screened-out path) when
    they are done or held back."""
    finished = _study_exit(request, project, queue_empty=False)
    if finished is not None:
        return None, 0, "", finished
    assignment, waiting, standing_message = _claim(project, rater)
    if standing_message:
        held = _study_held(request, project)
        if held is not None:
            return None, 0, "", held
    elif assignment is None:
        return None, waiting, "", _study_exit(request, project, queue_empty=True)
    return assignment, waiting, standing_message, None


def _next(
    request: HttpRequest, project: Project, rater: Rater, notice: Notice | None, just_done: Assignment | None = None
) -> HttpResponse:
    """After a post: the next task in place for htmx, a redirect for a plain form."""
    if _is_htmx(request):
        assignment, waiting, standing_message, finished = _claim_or_exit(request, project, rater)
        if finished is not None:
            return finished
        context = _task_context(project=project, rater=rater, assignment=assignment, notice=notice, waiting=waiting,
                                generating=generating_runs(project) if assignment is None else 0,
                                standing_message=standing_message, just_done=just_done)
        return _render_task(request, context)
    if notice is not None:
        {"error": messages.error, "success": messages.success}.get(notice.kind, messages.info)(request, notice.text)
    return redirect("annotate_task", project_id=project.pk, permanent=False)


@login_required
@require_GET
def task(request: HttpRequest, project_id: int) -> HttpResponse:
    """The annotator's current task, or the done state.

    With htmx this is also the done state's check-back poll: a task that has opened up is
    swapped in, and once nothing is left and no other annotator holds a claim that could come
    back, the answer carries 286 so htmx stops polling."""
    project, rater = _project_and_rater(request, project_id)
    assignment, waiting, standing_message, finished = _claim_or_exit(request, project, rater)
    if finished is not None:
        return finished
    generating = generating_runs(project) if assignment is None else 0
    notice = None
    status = 200
    if _is_htmx(request):
        if assignment is not None and request.GET.get("after") != "feedback":
            notice = Notice("A task has opened up for you.", "info")
        elif waiting == 0 and generating == 0:
            status = HTMX_STOP_POLLING
    context = _task_context(project=project, rater=rater, assignment=assignment, notice=notice, waiting=waiting,
                            generating=generating, standing_message=standing_message)
    return _render_task(request, context, status=status)


def _own_assignment(rater: Rater, view_key: uuid.UUID | None) -> Assignment | None:
    if view_key is None:  # the form did not parse one; view_key is never NULL in the table
        return None
    return (
        Assignment.objects.select_related("response__item", "pair__item", "pair__response_a", "pair__response_b")
        .filter(rater=rater, view_key=view_key)
        .first()
    )


@login_required
@require_POST
def submit(request: HttpRequest, project_id: int) -> HttpResponse:
    project, rater = _project_and_rater(request, project_id)
    protocol = request.POST.get("protocol")
    form = RankingForm(request.POST) if protocol == Assignment.Protocol.RANKING else TaskViewForm(request.POST)
    try:
        if not form.is_valid():
            raise first_error(form)
        data = form.cleaned_data
        if protocol == Assignment.Protocol.RANKING:
            result = assignment_submit_preference(
                rater=rater, view_key=data["view_key"], shown_strength=data["shown_strength"],
                justification=data["justification"], time_on_task_ms=data["time_on_task_ms"],
            )
        else:
            values = rating_values(
                request.POST, [a for a in project.attributes.all() if a.name != checklists.CHECKLIST_ATTRIBUTE]
            )
            answers = _checklist_posted(request.POST)
            # The task's response only where a checklist was answered: no query on a plain rating submit.
            assignment = _own_assignment(rater, data["view_key"]) if answers else None
            response = assignment.response if assignment is not None else None
            if answers and response is not None:
                # Only questions still on the checklist (one may be retired since the page was shown).
                live = {q.pk for q in checklists.live_questions(response.item_id)}
                answers = {qid: yes for qid, yes in answers.items() if qid in live}
                if answers and len(answers) == len(live):
                    # The checklist attribute's value is the score, stored with the other ratings.
                    attribute = next((a for a in project.attributes.all() if a.name == checklists.CHECKLIST_ATTRIBUTE), None)
                    if attribute is not None:
                        values[attribute.name] = checklists.scaled(sum(answers.values()), len(answers),
                                                                   low=attribute.min_value, high=attribute.max_value)
            result = assignment_submit_rating(
                rater=rater, view_key=data["view_key"], values=values, time_on_task_ms=data["time_on_task_ms"],
                project=project,  # its attributes are prefetched: not read again
            )
            if answers and response is not None and not result.duplicate:
                checklists.answers_submit(rater=rater, response=response, answers=answers)
    except ValidationError as exc:
        assignment = _own_assignment(rater, form.cleaned_data.get("view_key"))
        if assignment is None or assignment.status == Assignment.Status.DONE:
            return _next(request, project, rater, Notice(str(exc), "error"))
        posted: dict = {a.name: request.POST[f"attr-{a.name}"] for a in project.attributes.all() if request.POST.get(f"attr-{a.name}")}
        posted.update(
            {"shown_strength": request.POST.get("shown_strength"), "justification": request.POST.get("justification", ""),
             "checklist": [q for q, yes in _checklist_posted(request.POST).items() if yes]}
        )
        context = _task_context(
            project=project, rater=rater, assignment=assignment,
            errors={exc.field or "__all__": str(exc)}, posted=posted,
        )
        # 422 so htmx (configured in base.html) swaps the form back with its errors.
        return _render_task(request, context, status=422)
    except QueueError as exc:
        return _next(request, project, rater, Notice(str(exc), "error"))
    training.check_after_submit(assignment=result.assignment)
    if result.assignment.training:
        # The round may just have ended below the bar: a participant leaves the study now, not
        # when they press Continue (they may close the tab on the feedback instead). A main-queue
        # pause is met by the next claim, which every main-queue submit leads to at once.
        study_views.screen_out_if_held(request, project.pk)
        # The training round answers each task with the expected answer before the next one.
        if _is_htmx(request):
            return _render_feedback(request, project, rater, result.assignment)
        return redirect("annotate_feedback", project_id=project.pk, view_key=result.assignment.view_key)
    kind = "info" if result.duplicate else "success"
    # A fresh submit is the annotator's newest; a replay's may not be (it may be older).
    return _next(request, project, rater, Notice(result.message, kind),
                 just_done=None if result.duplicate else result.assignment)


def _render_feedback(request: HttpRequest, project: Project, rater: Rater, assignment: Assignment) -> HttpResponse:
    labels = TERNARY_LABELS if project.ranking_scale == Project.RankingScale.TERNARY else SHOWN_STRENGTH_LABELS
    feedback = training.training_feedback(assignment=assignment, strength_labels=labels)
    context = {
        "project": project, "feedback": feedback,
        "guideline_html": render_markdown(feedback.guideline) if feedback.guideline else "",
        "progress": progress_for(project=project, rater=rater),
        "study": study_views.study_context(request, project.pk),
    }
    template = "annotate/_training_feedback.html" if _is_htmx(request) else "annotate/training_feedback.html"
    return render(request, template, context)


@login_required
@require_GET
def training_feedback(request: HttpRequest, project_id: int, view_key: uuid.UUID) -> HttpResponse:
    """The expected answer of a training task the annotator has done (the page a plain form
    post lands on; htmx gets the same partial in place)."""
    project, rater = _project_and_rater(request, project_id)
    assignment = get_object_or_404(
        Assignment.objects.select_related("project", "rater", "response__item", "pair__item"),
        project=project, rater=rater, view_key=view_key, training=True, status=Assignment.Status.DONE,
    )
    return _render_feedback(request, project, rater, assignment)


@login_required
@require_POST
def skip(request: HttpRequest, project_id: int) -> HttpResponse:
    project, rater = _project_and_rater(request, project_id)
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise first_error(form)
        assignment_skip(rater=rater, view_key=form.cleaned_data["view_key"], reason=form.reason_text())
    except (ValidationError, QueueError) as exc:
        return _next(request, project, rater, Notice(str(exc), "error"))
    return _next(request, project, rater, Notice("Skipped. Thanks for saying why.", "info"))


@login_required
@require_POST
def undo(request: HttpRequest, project_id: int) -> HttpResponse:
    project, rater = _project_and_rater(request, project_id)
    try:
        assignment = assignment_undo(project=project, rater=rater, view_key=request.POST.get("view_key") or None)
    except QueueError as exc:
        return _next(request, project, rater, Notice(str(exc), "error"))
    notice = Notice("Undone. Your previous answer is filled in; change it and submit again.", "info")
    if _is_htmx(request):
        context = _task_context(project=project, rater=rater, assignment=assignment_with_task(assignment), notice=notice)
        return _render_task(request, context)
    messages.info(request, notice.text)
    return redirect("annotate_task", project_id=project.pk)


def _researcher_project(request: HttpRequest, project_id: int) -> Project:
    # The dashboard and pair pages show every rater's labels: the project's researchers only.
    return project_for(request.user, project_id, need="research", archived=True)


@login_required
@require_GET
def project_dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _researcher_project(request, project_id)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    pairs, more = dashboard.pairs_page(project=project, page=page)
    return render(
        request,
        "annotate/dashboard.html",
        {
            "project": project, "can_research": can_research_in(request.user, project),
            "protocols": dashboard.protocol_progress(project=project),
            "annotators": dashboard.annotator_rows(project=project),
            "days": dashboard.annotations_per_day(project=project),
            "pairs": pairs, "page": page, "more": more,
            "standings": training.standing_rows(project),
        },
    )


@login_required
@require_POST
def standing_decide(request: HttpRequest, project_id: int, rater_id: int) -> HttpResponse:
    """A researcher's decision on a held-back annotator: reinstate, exclude or remove."""
    project = project_for(request.user, project_id, need="research")
    rater = get_object_or_404(Rater, pk=rater_id, kind=Rater.Kind.HUMAN, standings__project=project)
    try:
        training.standing_decide(
            project=project, rater=rater, decision=request.POST.get("decision", ""),
            user=authenticated(request.user), note=request.POST.get("note", ""),
        )
    except ValidationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{rater.name}: {training.State(training.DECISIONS[request.POST['decision']]).label.lower()}.")
    return redirect(reverse("annotate_dashboard", args=[project.pk]) + "#standings")


@login_required
@require_GET
def pair_detail(request: HttpRequest, pair_id: int) -> HttpResponse:
    pair = get_object_or_404(Pair.objects.select_related("item__project", "response_a", "response_b"), pk=pair_id)
    project = _researcher_project(request, pair.item.project_id)
    return render(
        request,
        "annotate/pair.html",
        {
            "project": project, "pair": pair, "item": pair.item, "can_research": can_research_in(request.user, pair.item.project),
            **item_content(pair.item),
            "a_html": render_markdown(pair.response_a.text),
            "b_html": render_markdown(pair.response_b.text),
            **dashboard.pair_annotations(pair=pair),
        },
    )


# --- adjudication (reviewers and researchers) ------------------------------------------------------


@login_required
@require_GET
def review_queue(request: HttpRequest, project_id: int) -> HttpResponse:
    """The pairs the humans split on, or whose gold they contest, waiting for a final verdict."""
    project = project_for(request.user, project_id, need="review", archived=True)
    rows = adjudication.review_queue(project)
    return render(request, "annotate/review_queue.html", {
        "project": project, "can_research": can_research_in(request.user, project), "can_review": True, "rows": rows,
    })


def _decision_options(project: Project, selected: int | None) -> list[dict]:
    labels = TERNARY_LABELS if project.ranking_scale == Project.RankingScale.TERNARY else SHOWN_STRENGTH_LABELS
    return [
        {"value": v, "label": label, "key": str(i + 1), "checked": v == selected}
        for i, (v, label) in enumerate(sorted(labels.items()))
    ]


@login_required
def review_pair(request: HttpRequest, project_id: int, pair_id: int) -> HttpResponse:
    """Every label and justification of one pair, and the reviewer's final verdict with a note.
    Only reviewers and researchers get here: annotators never see each other's labels."""
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405)
    project = project_for(request.user, project_id, need="review", archived=request.method == "GET")
    pair = get_object_or_404(
        Pair.objects.select_related("item", "response_a", "response_b"), pk=pair_id, item__project=project
    )
    error = ""
    posted_strength = _as_int(request.POST.get("strength")) if request.method == "POST" else None
    note = request.POST.get("note", "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            adjudication.adjudicate(
                pair=pair, reviewer=authenticated(request.user), strength=posted_strength, note=note,
            )
        except ValidationError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Pair #{pair.pk}: final verdict saved.")
            following = adjudication.review_queue(project)
            if following:
                return redirect("annotate_review_pair", project_id=project.pk, pair_id=following[0].pair.pk)
            return redirect("annotate_review", project_id=project.pk)
    current = adjudication.latest(pair)
    return render(request, "annotate/review_pair.html", {
        "project": project, "can_research": can_research_in(request.user, project), "can_review": True,
        "pair": pair, "item": pair.item,
        "prompt_html": render_markdown(pair.item.prompt),
        "context_html": render_markdown(pair.item.context) if pair.item.context else "",
        "a_html": render_markdown(pair.response_a.text), "b_html": render_markdown(pair.response_b.text),
        "current": current, "error": error, "note": note,
        "options": _decision_options(project, posted_strength if posted_strength is not None else (current.strength if current else None)),
        **dashboard.pair_annotations(pair=pair),
    }, status=422 if error else 200)
@login_required
def item_checklist(request: HttpRequest, item_id: int) -> HttpResponse:
    """An item's checklist (TICK), written or edited by a researcher: one question per line.
    Questions that have answers are retired, not changed (annotate.checklists.checklist_set)."""
    item = get_object_or_404(Item.objects.select_related("project"), pk=item_id)
    project = project_for(request.user, item.project_id, need="research", archived=request.method != "POST")
    error, code = "", 200
    text = "\n".join(q.text for q in checklists.live_questions(item))
    if request.method == "POST":
        text = request.POST.get("questions", "")
        try:
            checklists.checklist_set(item=item, questions=text.splitlines())
        except ValidationError as exc:
            error, code = str(exc), 422
        else:
            messages.success(request, "Checklist saved.")
            return redirect("item_checklist", item_id=item.pk)
    answered = ChecklistAnswer.objects.filter(question__item=item).values("rater").distinct().count()
    return render(request, "annotate/checklist.html", {
        "project": project, "item": item, "questions_text": text, "error": error, "answered_by": answered,
        "questions": checklists.live_questions(item), "can_research": True,
        "judges": judges_usable(request.user, project),
        "prompt_html": render_markdown(item.prompt),
    }, status=code)
