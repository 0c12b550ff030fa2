"""The project's routing page: pick a policy, preview its expected cost, turn it on or off."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .access import can_research_in, judges_usable, project_for
from .errors import ValidationError
from .models import RoutingDecision, RoutingPolicy
from .routing_services import latest_qualifications, routing_judge_check, routing_policy_save, routing_preview


class RoutingForm(forms.Form):
    kind = forms.ChoiceField(choices=RoutingPolicy.Kind.choices)
    k = forms.IntegerField(min_value=1, max_value=10, initial=2, label="Agreeing humans that close a pair (k)")
    judge = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, choices=[])
    threshold = forms.FloatField(min_value=0, max_value=1, initial=0.7, label="Judge confidence needed")
    spot_check_rate = forms.FloatField(min_value=0, max_value=1, initial=0.1, label="Spot-check rate")
    unsure = forms.ChoiceField(choices=RoutingPolicy.Unsure.choices, label="Pairs the judge is unsure of get")

    def __init__(self, *args: object, judges: dict[int, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["judge"].choices = [("", "(none)"), *judges.items()]  # type: ignore[attr-defined]


@login_required
@require_http_methods(["GET", "POST"])
def routing_page(request: HttpRequest, project_id: int) -> HttpResponse:
    # An archived project's decisions stay readable; its policy no longer changes.
    project = project_for(request.user, project_id, need="research", archived=request.method == "GET")
    # Only a judge the researcher may use on this project can route it (annotate.access).
    usable = {j.rater_id: j.rater.name for j in judges_usable(request.user, project)}
    panels = list(project.panels.select_related("rater").prefetch_related("members__rater"))
    # A panel of the project can route it too, once qualified (routing_judge_check says why not).
    usable.update({p.rater_id: f"{p.rater.name} (panel)" for p in panels})
    current = RoutingPolicy.objects.filter(project=project).first() or RoutingPolicy(project=project)
    initial = {"kind": current.kind, "k": current.k, "judge": current.judge_id, "threshold": current.threshold,
               "spot_check_rate": current.spot_check_rate, "unsure": current.unsure}  # fmt: skip
    form = RoutingForm(request.POST or None, initial=initial, judges=usable)
    preview = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            judge = None
            if data["judge"] is not None:
                from .models import Rater

                judge = Rater.objects.get(pk=data["judge"])
                if data["kind"] == RoutingPolicy.Kind.JUDGE:
                    try:
                        routing_judge_check(project, judge)
                    except ValidationError as exc:
                        form.add_error("judge", str(exc))
                        status = 422
            candidate = RoutingPolicy(project=project, kind=data["kind"], k=data["k"], judge=judge,
                                      threshold=data["threshold"], spot_check_rate=data["spot_check_rate"],
                                      unsure=data["unsure"])  # fmt: skip
            if status == 200 and request.POST.get("action") == "save":
                try:
                    routing_policy_save(project=project, kind=data["kind"], k=data["k"], judge=judge,
                                        threshold=data["threshold"], spot_check_rate=data["spot_check_rate"],
                                        unsure=data["unsure"])  # fmt: skip
                except ValidationError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, str(exc))
                    status = 422
                else:
                    messages.success(request, f"Routing saved: {candidate.get_kind_display()}.")
                    return redirect("annotate_routing", project_id=project.pk)
            if status == 200:
                preview = routing_preview(project=project, row=candidate)
        else:
            status = 422
    decisions = RoutingDecision.objects.filter(pair__item__project=project).order_by("-at", "-id")[:20]
    latest = latest_qualifications(project)
    qualifications = [
        {"judge": j, "latest": latest.get(j.rater_id)} for j in judges_usable(request.user, project)
    ]
    panel_qualifications = [{"panel": p, "latest": latest.get(p.rater_id)} for p in panels]
    return render(
        request,
        "annotate/routing.html",
        {"project": project, "can_research": can_research_in(request.user, project), "form": form,
         "current": current, "preview": preview, "decisions": decisions,
         "qualifications": qualifications, "bar": current,
         "panel_qualifications": panel_qualifications, "panels": panels},  # fmt: skip
        status=status,
    )


class PanelForm(forms.Form):
    name = forms.CharField(max_length=150)
    rule = forms.ChoiceField(choices=[("majority", "Majority vote"), ("mean", "Mean of calibrated probabilities")])
    members = forms.TypedMultipleChoiceField(coerce=int, choices=[], label="Judges")

    def __init__(self, *args: object, judges: dict[int, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["members"].choices = list(judges.items())  # type: ignore[attr-defined]


@login_required
@require_http_methods(["POST"])
def panel_create_view(request: HttpRequest, project_id: int) -> HttpResponse:
    """Create a panel from judges usable on the project, and compute its verdicts."""
    from judges.panels import panel_create, panel_refresh

    project = project_for(request.user, project_id, need="research")
    # Only judges the researcher may use on this project can sit on its panel (annotate.access).
    usable = {j.pk: j for j in judges_usable(request.user, project)}
    form = PanelForm(request.POST, judges={pk: j.rater.name for pk, j in usable.items()})
    if not form.is_valid():
        return HttpResponse(f"Invalid panel: {form.errors.as_text()}", status=422, content_type="text/plain")
    data = form.cleaned_data
    try:
        panel = panel_create(project=project, name=data["name"], rule=data["rule"],
                             members=[usable[pk] for pk in data["members"]],
                             user=request.user if isinstance(request.user, User) else None)  # fmt: skip
    except ValidationError as exc:
        return HttpResponse(str(exc), status=422, content_type="text/plain")
    written = panel_refresh(panel)
    messages.success(request, f"Panel {panel.rater.name} created: {written} pair verdicts.")
    return redirect("annotate_routing", project_id=project.pk)
