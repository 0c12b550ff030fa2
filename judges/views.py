"""Run pages: list and start runs of a project, watch one run's progress live (htmx)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate.errors import ValidationError
from annotate.roles import authenticated

from . import selectors, services
from .forms import RunStartForm
from .models import Judgment

# htmx stops polling when a response carries this status (htmx docs: "286 Stop Polling").
HTMX_STOP_POLLING = 286


@login_required
def runs(request: HttpRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_researcher(request.user, project_id)
    form = RunStartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = services.run_start(
                judge=data["judge"], project=project, protocols=data["protocols"] or ["rating", "ranking"],
                kind=data["kind"], limit=data["limit"], created_by=authenticated(request.user),
            )
        except ValidationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Run {run.pk} started: {run.total} judgments queued.")
            return redirect("judges:run", run_id=run.pk)
    project_runs = selectors.runs_for_user(request.user).filter(project=project)
    return render(request, "judges/runs.html", {"project": project, "runs": project_runs, "form": form})


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(request.user, run_id)
    judgments = run.judgments.exclude(status__in=[Judgment.Status.PENDING, Judgment.Status.CLAIMED]).order_by(
        "-completed_at"
    ).select_related("attribute", "pair", "response")[:25]
    context = {"run": run, "progress": selectors.run_progress(run=run), "judgments": judgments}
    return render(request, "judges/run.html", context)


@login_required
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(request.user, run_id)
    response = render(request, "judges/_progress.html", {"run": run, "progress": selectors.run_progress(run=run)})
    if run.is_finished:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(request.user, run_id)
    services.run_cancel(run=run)
    return redirect("judges:run", run_id=run.pk)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(request.user, run_id)
    services.run_resume(run=run)
    return redirect("judges:run", run_id=run.pk)
