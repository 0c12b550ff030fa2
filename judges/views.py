"""Judge and run pages: define judges and edit their versioned templates (with a live preview),
list and start runs of a project, watch one run's progress live (htmx)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate import access
from annotate.errors import ValidationError
from annotate.models import ChecklistQuestion, Item, Project
from annotate.roles import authenticated
from config.celery import task_send

from . import probes, prompts, selectors, services
from .forms import JudgeForm, ProbeStartForm, RunStartForm, TemplateForm
from .models import Judge, PromptTemplate, Run

# The judge's report card (issue 14) is drawn by the reports app, which reads judges; judges
# never import reports, so reports.apps registers the function that builds the card's context.
JUDGE_CARD: list[Callable[[HttpRequest, Judge], dict]] = []

# htmx stops polling when a response carries this status (htmx docs: "286 Stop Polling").
HTMX_STOP_POLLING = 286


def _start_run(request: HttpRequest, form: forms.Form, project: Project, *, notice: str,
               **options: Any) -> HttpResponse | int | None:
    """Start the run a valid form asks for (a judge run or a probe): the run page once it is
    started; 503 with the broker's message on the form when no broker answers; None with the
    service's error on the form when the run is refused."""
    judge = form.cleaned_data["judge"]
    access.judge_check_usable(request.user, judge, project)
    try:
        run = services.run_start(judge=judge, project=project, created_by=authenticated(request.user), **options)
    except ValidationError as exc:
        _add_error(form, exc)
        return None
    except services.BrokerUnavailable as exc:
        form.add_error(None, str(exc))
        return 503
    messages.success(request, notice.format(run=run.pk))
    return redirect("judges:run", run_id=run.pk)


@login_required
def runs(request: HttpRequest, project_id: int) -> HttpResponse:
    # Reading the runs of an archived project is allowed; starting one is not.
    project = access.project_for(request.user, project_id, need="research", archived=request.method != "POST")
    form = RunStartForm(request.POST or None, project=project, user=request.user)
    code = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        started = _start_run(
            request, form, project, notice="Run {run} started: a worker is planning its judgments.",
            protocols=data["protocols"] or ["rating", "ranking"], kind=data["kind"], limit=data["limit"],
            filters=form.filters(),
        )
        if isinstance(started, HttpResponse):
            return started
        code = started or code
    project_runs = selectors.runs_with_counts(access.runs_visible(request.user).filter(project=project))
    return render(request, "judges/runs.html", {"project": project, "runs": project_runs, "form": form,
                                                "can_research": True},  # project_for(need="research") let them in
                  status=code)


@login_required
def probe_start(request: HttpRequest, project_id: int) -> HttpResponse:
    """Probes of a judge (judges.probes) as runs like any other: the form and the results."""
    project = access.project_for(request.user, project_id, need="research", archived=request.method != "POST")
    form = ProbeStartForm(request.POST or None, project=project, user=request.user)
    code = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        started = _start_run(request, form, project, notice="Probe run {run} started: a worker is planning its judgments.",
                             protocols=["ranking"], limit=data["limit"], probe=data["probe"])
        if isinstance(started, HttpResponse):
            return started
        code = started or code
    if request.method == "POST" and code == 200:
        code = 422
    context = {"project": project, "probe_form": form, "probe_rows": probes.project_probe_rows(project_id=project.pk),
               "can_research": True}
    return render(request, "judges/probes.html", context, status=code)


@login_required
@require_POST
def checklist_generate(request: HttpRequest, item_id: int) -> HttpResponse:
    """Ask a judge model for the item's checklist (or every checklist-less item's of the
    project), TICK-style, in a worker; the researcher edits the result on the checklist page."""
    item = get_object_or_404(Item.objects.select_related("project"), pk=item_id)
    project = access.project_for(request.user, item.project_id, need="research")
    judge_id = request.POST.get("judge", "")
    judge = access.judges_usable(request.user, project).filter(pk=int(judge_id)).first() if judge_id.isdigit() else None
    if judge is None:
        messages.error(request, "Choose a judge you may use in this project.")
        return redirect("item_checklist", item_id=item.pk)
    if request.POST.get("scope") == "project":
        have = ChecklistQuestion.objects.filter(item__project=project, retired_at__isnull=True).values("item_id")
        item_ids = list(project.items.exclude(pk__in=have).values_list("id", flat=True))
    else:
        item_ids = [item.pk]
    from .tasks import checklist_generate as checklist_generate_task

    try:
        task_send(checklist_generate_task, (judge.pk, item_ids),
                  queue=settings.CELERY_TASK_ROUTES["judges.tasks.judge_batch"]["queue"])
    except services.BrokerUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("item_checklist", item_id=item.pk)
    messages.success(request, f"{judge.rater.name} is writing checklists for {len(item_ids)} item(s) in a worker; "
                              "reload this page to read and edit them before use.")
    return redirect("item_checklist", item_id=item.pk)


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access.run_for(request.user, run_id)
    context = {**_run_live(run), "project": run.project, "can_research": access.can_research_in(request.user, run.project)}
    return render(request, "judges/run.html", context)


@login_required
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live part of the run page (progress, buttons, latest rows), polled until the run ends."""
    run = access.run_for(request.user, run_id)
    response = render(request, "judges/_progress.html", _run_live(run))
    if run.is_finished:
        response.status_code = HTMX_STOP_POLLING
    return response


def _run_live(run: Run) -> dict:
    return {"run": run, "progress": selectors.run_progress(run=run), "rows": selectors.run_rows(run=run),
            "max_new_tokens": services.judge_decoding(judge=run.judge).max_new_tokens}


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access.run_for(request.user, run_id)
    services.run_cancel(run=run)
    return redirect("judges:run", run_id=run.pk)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access.run_for(request.user, run_id)
    try:
        services.run_resume(run=run)
    except services.BrokerUnavailable as exc:
        messages.error(request, str(exc))
    return redirect("judges:run", run_id=run.pk)


# -- judges ----------------------------------------------------------------------------------------


def _add_error(form: forms.Form, exc: ValidationError) -> None:
    """Put a service error on the form field it names ("decoding.min_valid_mass" -> decoding)."""
    field = (exc.field or "").split(".")[0]
    form.add_error(field if field in form.fields else None, str(exc))


def _settings_initial(judge: Judge) -> dict:
    fields = {name: getattr(judge, name) for name in services.JUDGE_FIELDS}
    fields["decoding"] = json.dumps(judge.decoding or {})
    return fields | {
        "response_model": judge.rater.model,
        "shared_with": list(judge.shared_with.all()),
        "shared_with_owner_projects": judge.shared_with_owner_projects,
    }


def _save_sharing(judge: Judge, form: JudgeForm) -> None:
    data = form.cleaned_data
    services.judge_share(
        judge=judge, projects=data.get("shared_with") or [],
        owner_projects=bool(data.get("shared_with_owner_projects")),
    )


@login_required
def judge_list(request: HttpRequest) -> HttpResponse:
    access.require_researcher(request.user)
    form = JudgeForm(request.POST or None, initial={"backend": Judge.Backend.TRANSFORMERS}, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            judge = services.judge_create(owner=authenticated(request.user), **form.settings_data())
        except ValidationError as exc:
            _add_error(form, exc)
        else:
            _save_sharing(judge, form)
            messages.success(request, f"Judge {judge.rater.name} created.")
            return redirect("judges:judge", judge_id=judge.pk)
    context = {"judges": access.judges_visible(request.user), "form": form}
    return render(request, "judges/judges.html", context, status=422 if form.errors else 200)


@login_required
def judge_detail(request: HttpRequest, judge_id: int) -> HttpResponse:
    judge = access.judge_for(request.user, judge_id, need="edit" if request.method == "POST" else "use")
    form = JudgeForm(request.POST or None, initial=_settings_initial(judge), editing=True, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.judge_update(judge=judge, **form.settings_data())
        except ValidationError as exc:
            _add_error(form, exc)
        else:
            _save_sharing(judge, form)
            messages.success(request, "Settings saved.")
            return redirect("judges:judge", judge_id=judge.pk)
    return _judge_page(request, judge, settings_form=form)


def _judge_page(
    request: HttpRequest, judge: Judge, *, settings_form: JudgeForm | None = None,
    template_forms: dict[str, TemplateForm] | None = None,
) -> HttpResponse:
    template_forms = template_forms or {}
    sections = []
    for protocol in services.PROTOCOLS:
        current = judge.rating_template if protocol == "rating" else judge.ranking_template
        form = template_forms.get(protocol) or TemplateForm(
            initial={"protocol": protocol, "system": current.system, "user": current.user}
        )
        sections.append({
            "protocol": protocol, "current": current, "form": form,
            "versions": PromptTemplate.objects.filter(name=current.name).order_by("-version"),
            "placeholders": sorted(prompts.PLACEHOLDERS[protocol]),
            "preview": prompts.template_preview(
                protocol=protocol, system=current.system, user=current.user, rationale=judge.rationale
            ),
        })
    failed = settings_form is not None and bool(settings_form.errors) or any(f.errors for f in template_forms.values())
    context = {
        "judge": judge,
        "form": settings_form or JudgeForm(initial=_settings_initial(judge), editing=True, user=request.user),
        "editable": access.judge_editable(request.user, judge),
        "sections": sections, "runs": access.runs_visible(request.user).filter(judge=judge)[:10],
        "model_found": selectors.judge_model_found(judge=judge),
        **(JUDGE_CARD[0](request, judge) if JUDGE_CARD else {}),
    }
    return render(request, "judges/judge.html", context, status=422 if failed else 200)


@login_required
@require_POST
def judge_archive(request: HttpRequest, judge_id: int) -> HttpResponse:
    """Archive, never delete: the judge's runs, judgments and annotations are research data."""
    judge = services.judge_archive(judge=access.judge_for(request.user, judge_id, need="edit"))
    messages.success(request, f"Judge {judge.rater.name} archived; its runs and judgments stay in the reports.")
    return redirect("judges:judges")


@login_required
@require_POST
def judge_template(request: HttpRequest, judge_id: int) -> HttpResponse:
    """Save an edited template as a new version (the judge uses it from its next judgment on)."""
    judge = access.judge_for(request.user, judge_id, need="edit")
    form = TemplateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        previous = judge.rating_template if data["protocol"] == "rating" else judge.ranking_template
        try:
            template = services.judge_template_edit(
                judge=judge, protocol=data["protocol"], system=data["system"], user=data["user"]
            )
        except ValidationError as exc:
            _add_error(form, exc)
        else:
            if template.pk == previous.pk:
                messages.info(request, f"No change: the {data['protocol']} template stays {template}.")
            else:
                messages.success(request, f"The {data['protocol']} template is now {template}; "
                                          f"judgments made with {previous} keep pointing at it.")
            return redirect("judges:judge", judge_id=judge.pk)
    return _judge_page(request, judge, template_forms={form.data.get("protocol", "ranking"): form})


@login_required
@require_POST
def template_preview(request: HttpRequest, judge_id: int) -> HttpResponse:
    """The edited template filled with a fixed example, or what is wrong with it (htmx, as you type)."""
    judge = access.judge_for(request.user, judge_id, need="use")
    protocol = request.POST.get("protocol", "")
    if protocol not in services.PROTOCOLS:
        return HttpResponse(status=400)
    preview = prompts.template_preview(
        protocol=protocol, system=request.POST.get("system", ""), user=request.POST.get("user", ""),
        rationale=judge.rationale,
    )
    return render(request, "judges/_preview.html", {"preview": preview})
