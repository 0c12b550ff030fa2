"""The upload page: the same import as `manage.py import_pairs` and POST /api/projects/import/."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .bounds import name_problem
from .errors import ImportFileError, ValidationError
from .importers import FORMATS, import_files
from .roles import is_researcher
from .selectors import projects_for_user

FORMAT_HELP: dict[str, str] = {
    "jsonl": "One item per line: id, prompt, context?, responses [{id, model, text}], pairs?, ratings?, preferences?.",
    "csv": "One response per row: item_id, prompt, context?, response_id, model?, text.",
    "pandalm": "testset-v1.json, then optionally gpt-3.5-turbo-testset-v1.json and pandalm-7b-testset-v1.json.",
    "autoj": "autoj_pairwise.jsonl, then optionally the original-order and swapped-order verdict files.",
    "sparse-feedback": "The ratings CSV, then the rankings CSV (Peering Through Preferences).",
    "helpsteer2": "HelpSteer2 JSONL: prompt, response and the five attribute scores.",
    "helpsteer2-preference": "HelpSteer2-Preference JSONL: prompt, response_1, response_2, preference_strength, ...",
}


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    if not is_researcher(request.user):
        raise PermissionDenied
    context: dict[str, Any] = {
        "formats": [(f, FORMAT_HELP.get(f, "")) for f in FORMATS],
        "projects": projects_for_user(request.user),
        "error": None,
        "result": None,
    }
    if request.method == "POST":
        name = (request.POST.get("project") or "").strip()
        fmt = request.POST.get("format") or ""
        files = request.FILES.getlist("files")
        if not name or not files:
            context["error"] = "Name a project and choose at least one file."
        elif problem := name_problem(name):
            # Checked before the lookup below: PostgreSQL cannot even compare a name with a NUL.
            context["error"] = f"Import failed, nothing was written. A project name {problem}."
        else:
            existing = projects_for_user(request.user).filter(name=name).exists()
            from .models import Project

            if not existing and Project.objects.filter(name=name).exists():
                raise PermissionDenied  # a project of someone else's: don't write into it
            with tempfile.TemporaryDirectory() as tmp:
                paths = []
                for upload in files:
                    path = Path(tmp) / Path(cast(str, upload.name)).name  # uploads always carry a name
                    with path.open("wb") as fh:
                        for chunk in upload.chunks():
                            fh.write(chunk)
                    paths.append(path)
                try:
                    result = import_files(project_name=name, fmt=fmt, paths=paths, user=request.user)
                except (ImportFileError, ValidationError) as exc:
                    context["error"] = f"Import failed, nothing was written. {exc}"
                else:
                    messages.success(request, f"Imported into {result.project.name}: {result.counts}")
                    context["result"] = result.as_dict()
                    if request.headers.get("HX-Request"):
                        return render(request, "annotate/import.html", context)
                    return redirect("import")
    return render(request, "annotate/import.html", context)
