"""REST API for judges and runs: one APIView per action, nested serializers, services do the work."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import access
from annotate.bounds import INTEGER_MAX
from annotate.errors import ValidationError
from annotate.filters import Filter, choice, filter_queryset, lookup, openapi_parameters, parse_id
from annotate.models import Project
from annotate.roles import authenticated
from annotate.serializers import IdField, storable_json

from . import selectors, services
from .models import Judge, PromptTemplate, Run


class BrokerDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "broker_unavailable"


def _invalid(exc: ValidationError) -> DRFValidationError:
    return DRFValidationError({exc.field or "non_field_errors": [str(exc)]})


class JudgeOutput(serializers.ModelSerializer):
    name = serializers.CharField(source="rater.name")
    owner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    shared_with: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    response_model = serializers.CharField(source="rater.model")
    rater = serializers.IntegerField(source="rater_id")
    rating_template: serializers.StringRelatedField = serializers.StringRelatedField()
    ranking_template: serializers.StringRelatedField = serializers.StringRelatedField()

    class Meta:
        model = Judge
        fields = [
            "id", "rater", "name", "response_model", "backend", "model_ref", "gguf_file", "revision", "dtype",
            "device", "base_url", "api_key_env", "decoding", "rationale", "rating_template", "ranking_template",
            "owner", "shared_with", "shared_with_owner_projects", "created_at",
        ]


class JudgeInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    response_model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    backend = serializers.ChoiceField(choices=Judge.Backend.choices, default=Judge.Backend.TRANSFORMERS)
    model_ref = serializers.CharField(max_length=500)
    gguf_file = serializers.CharField(max_length=300, required=False, allow_blank=True)
    revision = serializers.CharField(max_length=100, required=False, allow_blank=True)
    dtype = serializers.ChoiceField(choices=Judge.Dtype.choices, required=False)
    device = serializers.CharField(max_length=20, required=False)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
    decoding = serializers.JSONField(required=False, validators=[storable_json])
    rationale = serializers.BooleanField(required=False)
    shared_with = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        help_text="Ids of projects you research whose researchers may use (not change) this judge.",
    )
    shared_with_owner_projects = serializers.BooleanField(
        required=False, help_text="Usable in every project its owner researches (default true)."
    )

    def sharing(self) -> dict | None:
        """The validated sharing fields, or None when the request leaves sharing as it is."""
        data = self.validated_data
        if "shared_with" not in data and "shared_with_owner_projects" not in data:
            return None
        return {"shared_with": data.get("shared_with"), "owner_projects": data.get("shared_with_owner_projects")}

    def settings(self) -> dict:
        return {k: v for k, v in self.validated_data.items() if k not in ("shared_with", "shared_with_owner_projects")}


def _apply_sharing(request: Request, judge: Judge, data: JudgeInput) -> None:
    sharing = data.sharing()
    if sharing is None:
        return
    ids = sharing["shared_with"]
    if ids is None:
        projects: list[Project] = list(judge.shared_with.all())
    else:
        projects = list(access.projects_visible(request.user, need="research").filter(pk__in=ids))
        missing = sorted(set(ids) - {p.pk for p in projects})
        if missing:
            raise DRFValidationError({"shared_with": [f"Not projects you research: {missing}."]})
    owner_projects = sharing["owner_projects"]
    services.judge_share(
        judge=judge, projects=projects,
        owner_projects=judge.shared_with_owner_projects if owner_projects is None else owner_projects,
    )


class JudgeUpdateInput(JudgeInput):
    name = None  # type: ignore[assignment]  # a judge's name is its rater's: fixed once created
    model_ref = serializers.CharField(max_length=500, required=False)
    response_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    backend = serializers.ChoiceField(choices=Judge.Backend.choices, required=False)


class JudgeListApi(APIView):
    pagination_class = PageNumberPagination  # read by the schema: the list is a page, not an array

    @extend_schema(responses=JudgeOutput(many=True))
    def get(self, request: Request) -> Response:
        access.require_researcher(request.user)
        paginator = PageNumberPagination()
        judges = access.judges_visible(request.user).prefetch_related("shared_with")
        page = paginator.paginate_queryset(judges, request, view=self)
        return paginator.get_paginated_response(JudgeOutput(page, many=True).data)

    @extend_schema(request=JudgeInput, responses={201: JudgeOutput})
    def post(self, request: Request) -> Response:
        access.require_researcher(request.user)
        data = JudgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                judge = services.judge_create(owner=authenticated(request.user), **data.settings())
                _apply_sharing(request, judge, data)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return Response(JudgeOutput(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    @extend_schema(responses=JudgeOutput)
    def get(self, request: Request, judge_id: int) -> Response:
        return Response(JudgeOutput(access.judge_for(request.user, judge_id)).data)

    @extend_schema(request=JudgeUpdateInput, responses=JudgeOutput)
    def patch(self, request: Request, judge_id: int) -> Response:
        judge = access.judge_for(request.user, judge_id, need="edit")
        data = JudgeUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                judge = services.judge_update(judge=judge, **data.settings())
                _apply_sharing(request, judge, data)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return Response(JudgeOutput(judge).data)

    @extend_schema(responses={204: None}, description="Archives the judge (its owner or an admin): it leaves "
                   "the lists and can start no run; its runs, judgments and annotations stay.")
    def delete(self, request: Request, judge_id: int) -> Response:
        services.judge_archive(judge=access.judge_for(request.user, judge_id, need="edit"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = PromptTemplate
        fields = ["id", "name", "version", "protocol", "system", "user", "created_at"]


class TemplateInput(serializers.Serializer):
    protocol = serializers.ChoiceField(choices=PromptTemplate.Protocol.choices)
    system = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    user = serializers.CharField(trim_whitespace=False)


class JudgeTemplatesApi(APIView):
    """A judge's templates: every version of both, and a new version by POST."""

    @extend_schema(responses=TemplateOutput(many=True))
    def get(self, request: Request, judge_id: int) -> Response:
        judge = access.judge_for(request.user, judge_id)
        names = {judge.rating_template.name, judge.ranking_template.name}
        versions = PromptTemplate.objects.filter(name__in=names).order_by("protocol", "-version")
        return Response(TemplateOutput(versions, many=True).data)

    @extend_schema(request=TemplateInput, responses={201: TemplateOutput, 200: TemplateOutput})
    def post(self, request: Request, judge_id: int) -> Response:
        """201 with the new version; 200 with the current one when nothing changed."""
        judge = access.judge_for(request.user, judge_id, need="edit")
        data = TemplateInput(data=request.data)
        data.is_valid(raise_exception=True)
        protocol = data.validated_data["protocol"]
        before = judge.rating_template_id if protocol == "rating" else judge.ranking_template_id
        try:
            template = services.judge_template_edit(judge=judge, **data.validated_data)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        code = status.HTTP_200_OK if template.pk == before else status.HTTP_201_CREATED
        return Response(TemplateOutput(template).data, status=code)


class RunOutput(serializers.ModelSerializer):
    judge_name = serializers.CharField(source="judge.rater.name")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "judge", "judge_name", "project", "kind", "protocols", "limit", "filters", "probe", "status", "total",
            "progress", "error", "created_at", "started_at", "finished_at",
        ]

    def get_progress(self, run: Run) -> dict:
        if hasattr(run, "n_ok"):  # the list's counts, annotated in one query (RunListApi)
            return _listed_progress(run)
        p = selectors.run_progress(run=run)
        return {
            "done": p.done, "pending": p.pending, "claimed": p.claimed, "ok": p.ok,
            "unparseable": p.unparseable, "error": p.error, "per_second": p.per_second,
            "eta_seconds": p.eta_seconds, "mean_valid_mass": p.mean_valid_mass,
        }


def _listed_progress(run: Run) -> dict:
    """A listed run's progress from selectors.runs_with_counts, by the run page's rate rule."""
    counts = {s: getattr(run, f"n_{s}") for s in ("pending", "claimed", "ok", "unparseable", "error")}
    done = counts["ok"] + counts["unparseable"] + counts["error"]
    # The annotations runs_with_counts added (not model fields, so read by name).
    first, last, mass = (getattr(run, name) for name in ("first_claim", "last_done", "mean_mass"))
    per_second, eta = selectors.rate_and_eta(
        run=run, done=done, begin=first or run.started_at, last=last, now=timezone.now()
    )
    return {"done": done, **counts, "per_second": per_second, "eta_seconds": eta, "mean_valid_mass": mass}


class RunStartInput(serializers.Serializer):
    # Any live judge id; whether the caller may run it on the project is annotate.access's call.
    judge = serializers.PrimaryKeyRelatedField(queryset=Judge.objects.filter(archived_at__isnull=True).select_related("rater"))
    project = IdField()
    protocols = serializers.ListField(
        child=serializers.ChoiceField(choices=["rating", "ranking", "checklist"]), default=["rating", "ranking"]
    )
    kind = serializers.ChoiceField(choices=Run.Kind.choices, default=Run.Kind.JUDGE)
    limit = serializers.IntegerField(min_value=1, max_value=INTEGER_MAX, required=False, allow_null=True)
    filters = serializers.JSONField(
        required=False, default=dict, validators=[storable_json],
        help_text='Subset of the project: {"roles": ["gold"], "items": ["q1"], "models": ["m1"], '
                  '"unjudged_only": true}; empty: everything.',
    )
    probe = serializers.ChoiceField(
        choices=Run.Probe.choices, default=Run.Probe.NONE, required=False, allow_blank=True,
        help_text="A probe of the judge (judges.probes): injection or sanity; its verdicts stay in its judgments.",
    )


RUN_FILTERS: list[Filter] = [
    Filter("project", parse_id, lookup("project_id"), "Project id."),
    Filter("status", choice(Run.Status.values), lookup("status"), "Run status."),
]


class RunListApi(APIView):
    pagination_class = PageNumberPagination  # read by the schema: the list is a page, not an array

    @extend_schema(responses=RunOutput(many=True), parameters=openapi_parameters(RUN_FILTERS))
    def get(self, request: Request) -> Response:
        access.require_researcher(request.user)
        runs = filter_queryset(
            selectors.runs_with_counts(access.runs_visible(request.user)), request.query_params, RUN_FILTERS, researcher=True
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(RunOutput(page, many=True).data)

    @extend_schema(request=RunStartInput, responses={201: RunOutput, 503: None})
    def post(self, request: Request) -> Response:
        access.require_researcher(request.user)  # before the body is read: no hints for annotators
        data = RunStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = access.project_for(request.user, v["project"], need="research")
        access.judge_check_usable(request.user, v["judge"], project)
        try:
            run = services.run_start(
                judge=v["judge"], project=project, protocols=v["protocols"], kind=v["kind"],
                limit=v.get("limit"), created_by=authenticated(request.user), filters=v.get("filters"),
                probe=v.get("probe", ""),
            )
        except ValidationError as exc:
            raise _invalid(exc) from exc
        except services.BrokerUnavailable as exc:
            raise BrokerDown(str(exc)) from exc
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOutput(access.run_for(request.user, run_id)).data)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request: Request, run_id: int) -> Response:
        run = services.run_cancel(run=access.run_for(request.user, run_id))
        return Response(RunOutput(run).data)


class RunResumeApi(APIView):
    @extend_schema(request=None, responses={200: RunOutput, 503: None})
    def post(self, request: Request, run_id: int) -> Response:
        try:
            run = services.run_resume(run=access.run_for(request.user, run_id))
        except services.BrokerUnavailable as exc:
            raise BrokerDown(str(exc)) from exc
        return Response(RunOutput(run).data)
