"""Annotator and researcher pages.

Every task page works two ways: htmx posts swap the `#task` partial in place; without
JavaScript the same forms post normally and get a redirect back to the task page (POST,
redirect, GET), so a reload never resubmits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from . import checklists, dashboard
from .access import (
    can_research,
    can_research_in,
    global_role,
    judges_usable,
    project_for,
    projects_with_roles,
)
from .errors import ValidationError
from .forms import RankingForm, SkipForm, TaskViewForm, first_error, rating_values
from .markdown import render_markdown
from .models import Assignment, ChecklistAnswer, Item, Pair, Project, Rater
from .queue import (
    SKIP_REASONS,
    QueueError,
    assignment_claim_next,
    assignment_skip,
    assignment_submit_preference,
    assignment_submit_rating,
    assignment_undo,
    newest_done,
    open_claims_elsewhere,
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


def _task_context(
    *,
    project: Project,
    rater: Rater,
    assignment: Assignment | None,
    errors: dict[str, str] | None = None,
    posted: dict | None = None,
    notice: Notice | None = None,
    waiting: int = 0,
) -> dict:
    errors = errors or {}
    draft = posted if posted is not None else ((assignment.draft or {}) if assignment else {})
    last = newest_done(project=project, rater=rater)
    context: dict = {
        "project": project,
        "assignment": assignment,
        "progress": progress_for(project=project, rater=rater),
        "notice": notice,
        "errors": errors,
        "undo_key": last.view_key if last else None,
        "skip_reasons": SKIP_REASONS.items(),
        # All done: how many tasks other annotators hold that could still come back to this one.
        "waiting": waiting,
    }
    if assignment is None:
        return context
    if assignment.protocol == Assignment.Protocol.RATING:
        response = assignment.response
        assert response is not None
        item = response.item
        attributes = []
        for attribute in project.attributes.exclude(name=checklists.CHECKLIST_ATTRIBUTE):
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
        lo, hi = project.strength_bounds
        context.update(
            {
                "left_html": render_markdown(left.text),
                "right_html": render_markdown(right.text),
                "strength_options": options,
                "justification": draft.get("justification", ""),
                "justification_error": errors.get("justification"),
                "strength_error": errors.get("shown_strength") or errors.get("strength"),
                "required_above": project.justification_required_above,
                # A/B/T shortcuts: -2/2/0 where the scale has them, else its strongest ends.
                "key_a": max(lo, -2), "key_b": min(hi, 2),
            }
        )
    context.update(_checklist_context(assignment=assignment, rater=rater, item=item, draft=draft))
    context.update(
        {
            "item": item,
            "prompt_html": render_markdown(item.prompt),
            "context_html": render_markdown(item.context) if item.context else "",
            "general_error": errors.get("__all__"),
        }
    )
    return context


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
    if _is_htmx(request):
        return render(request, "annotate/_task.html", context, status=status)
    project = context["project"]
    context["guidelines_html"] = render_markdown(project.guidelines) if project.guidelines else ""
    return render(request, "annotate/task.html", context, status=status)


def _project_and_rater(request: HttpRequest, project_id: int) -> tuple[Project, Rater]:
    project = project_for(request.user, project_id, need="annotate")
    return project, rater_for_user(user=authenticated(request.user))


def _claim(project: Project, rater: Rater) -> tuple[Assignment | None, int]:
    """The annotator's next task; when there is none, the claims others hold that could reopen.

    A claim given back between the claim attempt and the count is in the pool but no longer
    counted, so a count of zero gets one more attempt: the done state stops checking back only
    once nothing is left and nothing is in flight."""
    assignment = assignment_claim_next(project=project, rater=rater)
    if assignment is not None:
        return assignment, 0
    waiting = open_claims_elsewhere(project=project, rater=rater)
    if waiting == 0:
        assignment = assignment_claim_next(project=project, rater=rater)
    return assignment, waiting


def _next(request: HttpRequest, project: Project, rater: Rater, notice: Notice | None) -> HttpResponse:
    """After a post: the next task in place for htmx, a redirect for a plain form."""
    if _is_htmx(request):
        assignment, waiting = _claim(project, rater)
        context = _task_context(project=project, rater=rater, assignment=assignment, notice=notice, waiting=waiting)
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
    assignment, waiting = _claim(project, rater)
    notice = None
    status = 200
    if _is_htmx(request):
        if assignment is not None:
            notice = Notice("A task has opened up for you.", "info")
        elif waiting == 0:
            status = HTMX_STOP_POLLING
    context = _task_context(project=project, rater=rater, assignment=assignment, notice=notice, waiting=waiting)
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
            values = rating_values(request.POST, project.attributes.exclude(name=checklists.CHECKLIST_ATTRIBUTE))
            answers = _checklist_posted(request.POST)
            assignment = _own_assignment(rater, data["view_key"])
            response = assignment.response if assignment is not None else None
            if answers and response is not None:
                # Only questions still on the checklist (one may be retired since the page was shown).
                live = {q.pk for q in checklists.live_questions(response.item_id)}
                answers = {qid: yes for qid, yes in answers.items() if qid in live}
                if answers and len(answers) == len(live):
                    # The checklist attribute's value is the score, stored with the other ratings.
                    attribute = project.attributes.filter(name=checklists.CHECKLIST_ATTRIBUTE).first()
                    if attribute is not None:
                        values[attribute.name] = checklists.scaled(sum(answers.values()), len(answers),
                                                                   low=attribute.min_value, high=attribute.max_value)
            result = assignment_submit_rating(
                rater=rater, view_key=data["view_key"], values=values, time_on_task_ms=data["time_on_task_ms"]
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
    kind = "info" if result.duplicate else "success"
    return _next(request, project, rater, Notice(result.message, kind))


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
        return _render_task(request, _task_context(project=project, rater=rater, assignment=assignment, notice=notice))
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
        },
    )


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
            "prompt_html": render_markdown(pair.item.prompt),
            "context_html": render_markdown(pair.item.context) if pair.item.context else "",
            "a_html": render_markdown(pair.response_a.text),
            "b_html": render_markdown(pair.response_b.text),
            **dashboard.pair_annotations(pair=pair),
        },
    )


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
