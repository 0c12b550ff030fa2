"""The export page: a form that starts a background export and a progress partial polled by
htmx until the job ends (status 286 stops the polling)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotate import access
from annotate.errors import ValidationError
from annotate.models import Project, Rater
from config.celery import BrokerUnavailable

from .forms import ExportForm
from .jobs import export_job_file, export_job_start, export_job_status
from .selectors import ExportFilters, item_count

# htmx stops polling on this status (htmx docs, "hx-trigger" polling).
HTMX_STOP_POLLING = 286


def project_for_export(request: HttpRequest, project_id: int) -> Project:
    """Exports hold every annotation of a project: its researchers (archived projects too)."""
    return access.project_for(request.user, project_id, need="research", archived=True)


def _judges(project: Project) -> list[str]:
    # A judge that only rated responses is as much a choice as one that ranked pairs.
    ranked = Rater.objects.filter(kind=Rater.Kind.JUDGE, preferences__pair__item__project=project)
    rated = Rater.objects.filter(kind=Rater.Kind.JUDGE, ratings__response__item__project=project)
    return sorted(set(ranked.values_list("name", flat=True)) | set(rated.values_list("name", flat=True)))


@login_required
@require_http_methods(["GET", "POST"])
def project(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_export(request, project_id)
    form = ExportForm(request.POST or None, judges=_judges(project))
    code = 200
    if request.method == "POST" and form.is_valid():
        try:
            job_id = export_job_start(project=project, options=form.options(), user_id=request.user.pk)
        except ValidationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        except BrokerUnavailable as exc:
            form.add_error(None, str(exc))
            code = 503
        else:
            if request.headers.get("HX-Request"):
                return _job_partial(request, project, job_id)
            return redirect("exports:job", project_id=project.pk, job_id=job_id)
    context = {"project": project, "form": form, "items": item_count(project, ExportFilters()),
               "can_research": access.can_research_in(request.user, project)}
    return render(request, "exports/project.html", context, status=code)


def _job_or_404(project: Project, job_id: str) -> dict:
    try:
        status = export_job_status(job_id=job_id)
    except FileNotFoundError:
        status = None
    if status is None or status.get("project_id") != project.pk:
        raise Http404("No such export.")
    return status


def _job_partial(request: HttpRequest, project: Project, job_id: str) -> HttpResponse:
    status = _job_or_404(project, job_id)
    response = render(request, "exports/_job.html", {"project": project, "job": status})
    if status["state"] in ("done", "failed"):
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
def job(request: HttpRequest, project_id: int, job_id: str) -> HttpResponse:
    project = project_for_export(request, project_id)
    if request.headers.get("HX-Request"):
        return _job_partial(request, project, job_id)
    status = _job_or_404(project, job_id)
    return render(request, "exports/job.html",
                  {"project": project, "job": status, "can_research": access.can_research_in(request.user, project)})


@login_required
def job_file(request: HttpRequest, project_id: int, job_id: str, name: str) -> FileResponse:
    project = project_for_export(request, project_id)
    _job_or_404(project, job_id)
    try:
        path = export_job_file(job_id=job_id, name=name)
    except FileNotFoundError as exc:
        raise Http404("No such file.") from exc
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)
