"""The upload page: the same import as `manage.py import_pairs` and POST /api/projects/import/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from . import access
from .bounds import name_problem
from .errors import ImportFileError, ValidationError
from .importers import FORMATS, import_uploads

if TYPE_CHECKING:
    from .models import Project

FORMAT_HELP: dict[str, str] = {
    "jsonl": "One item per line: id, prompt (or conversation [{role, content}], ending with the user's turn), context?, "
             "responses [{id, model, text}], pairs?, ratings?, preferences?, "
             "role? (task, gold, attention, sanity), gold? {ratings [{response, attribute, value}], pairs [{pair, strength}]}.",
    "csv": "One response per row: item_id, prompt, context?, conversation? (the turns as JSON), response_id, model?, text, "
           "role?, gold_<attribute>?, gold_pair_with? and gold_strength?.",
    "pandalm": "testset-v1.json, then optionally gpt-3.5-turbo-testset-v1.json and pandalm-7b-testset-v1.json.",
    "autoj": "autoj_pairwise.jsonl, then optionally the original-order and swapped-order verdict files.",
    "sparse-feedback": "The ratings CSV, then the rankings CSV (Peering Through Preferences).",
    "helpsteer2": "HelpSteer2 JSONL: prompt (multi-turn prompts become conversations), response and the five attribute scores.",
    "helpsteer2-preference": "HelpSteer2-Preference JSONL: prompt, response_1, response_2, preference_strength, ...",
}


def _gold_share(raw: str | None) -> float:
    """The form's share; an unreadable one is the import's own error (field gold_share)."""
    if not raw or not raw.strip():
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise ValidationError("gold_share is a share of the items, from 0 to 1.", field="gold_share") from None


def _project_from_query(request: HttpRequest) -> Project | None:
    ref = request.GET.get("project", "")
    return access.projects_visible(request.user, need="research").filter(pk=int(ref)).first() if ref.isdigit() and len(ref) < 10 else None


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    access.require_researcher(request.user)
    context: dict[str, Any] = {
        "formats": [(f, FORMAT_HELP.get(f, "")) for f in FORMATS],
        "projects": access.projects_visible(request.user, need="research"),
        "error": None,
        "result": None,
        # Reached from a project's header (?project=<id>): that project's header, its name filled in.
        "project": _project_from_query(request),
        "can_research": True,  # require_researcher let them in
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
            access.project_for_import(request.user, name)  # someone else's project: 403, nothing written
            try:
                result = import_uploads(
                    project_name=name, fmt=fmt, files=files, user=request.user,
                    gold_share=_gold_share(request.POST.get("gold_share")),
                )
            except (ImportFileError, ValidationError) as exc:
                context["error"] = f"Import failed, nothing was written. {exc}"
            else:
                messages.success(request, f"Imported into {result.project.name}: {result.counts}")
                context["result"] = result.as_dict()
                if request.headers.get("HX-Request"):
                    return render(request, "annotate/import.html", context)
                return redirect("import")
    return render(request, "annotate/import.html", context)
