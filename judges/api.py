"""REST API for judges and runs: one APIView per action, nested serializers, services do the work."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate.errors import ValidationError
from annotate.roles import authenticated, is_researcher

from . import selectors, services
from .models import Judge, PromptTemplate, Run


class BrokerDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "broker_unavailable"


def _researcher(request: Request) -> None:
    if not is_researcher(request.user):
        raise PermissionDenied("Judges and runs are for researchers and admins.")


def _invalid(exc: ValidationError) -> DRFValidationError:
    return DRFValidationError({exc.field or "non_field_errors": [str(exc)]})


class JudgeOutput(serializers.ModelSerializer):
    name = serializers.CharField(source="rater.name")
    response_model = serializers.CharField(source="rater.model")
    rater = serializers.IntegerField(source="rater_id")
    rating_template: serializers.StringRelatedField = serializers.StringRelatedField()
    ranking_template: serializers.StringRelatedField = serializers.StringRelatedField()

    class Meta:
        model = Judge
        fields = [
            "id", "rater", "name", "response_model", "backend", "model_ref", "gguf_file", "revision", "dtype",
            "device", "base_url", "api_key_env", "decoding", "rationale", "rating_template", "ranking_template",
            "created_at",
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
    decoding = serializers.JSONField(required=False)
    rationale = serializers.BooleanField(required=False)


class JudgeUpdateInput(JudgeInput):
    name = None  # type: ignore[assignment]  # a judge's name is its rater's: fixed once created
    model_ref = serializers.CharField(max_length=500, required=False)
    response_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    backend = serializers.ChoiceField(choices=Judge.Backend.choices, required=False)


class JudgeListApi(APIView):
    @extend_schema(responses=JudgeOutput(many=True))
    def get(self, request: Request) -> Response:
        _researcher(request)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(selectors.judges_list(), request, view=self)
        return paginator.get_paginated_response(JudgeOutput(page, many=True).data)

    @extend_schema(request=JudgeInput, responses={201: JudgeOutput})
    def post(self, request: Request) -> Response:
        _researcher(request)
        data = JudgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            judge = services.judge_create(**fields)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return Response(JudgeOutput(judge).data, status=status.HTTP_201_CREATED)


class JudgeDetailApi(APIView):
    @extend_schema(responses=JudgeOutput)
    def get(self, request: Request, judge_id: int) -> Response:
        _researcher(request)
        return Response(JudgeOutput(get_object_or_404(selectors.judges_list(), pk=judge_id)).data)

    @extend_schema(request=JudgeUpdateInput, responses=JudgeOutput)
    def patch(self, request: Request, judge_id: int) -> Response:
        _researcher(request)
        judge = get_object_or_404(selectors.judges_list(), pk=judge_id)
        data = JudgeUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            judge = services.judge_update(judge=judge, **data.validated_data)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return Response(JudgeOutput(judge).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, judge_id: int) -> Response:
        _researcher(request)
        judge = get_object_or_404(Judge, pk=judge_id)
        # The rater goes too only if it has no annotations: they are research data.
        rater = judge.rater
        judge.delete()
        if not rater.ratings.exists() and not rater.preferences.exists():
            rater.delete()
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
        _researcher(request)
        judge = get_object_or_404(selectors.judges_list(), pk=judge_id)
        names = {judge.rating_template.name, judge.ranking_template.name}
        versions = PromptTemplate.objects.filter(name__in=names).order_by("protocol", "-version")
        return Response(TemplateOutput(versions, many=True).data)

    @extend_schema(request=TemplateInput, responses={201: TemplateOutput, 200: TemplateOutput})
    def post(self, request: Request, judge_id: int) -> Response:
        """201 with the new version; 200 with the current one when nothing changed."""
        _researcher(request)
        judge = get_object_or_404(selectors.judges_list(), pk=judge_id)
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
            "id", "judge", "judge_name", "project", "kind", "protocols", "limit", "filters", "status", "total",
            "progress", "error", "created_at", "started_at", "finished_at",
        ]

    def get_progress(self, run: Run) -> dict:
        p = selectors.run_progress(run=run)
        return {
            "done": p.done, "pending": p.pending, "claimed": p.claimed, "ok": p.ok,
            "unparseable": p.unparseable, "error": p.error, "per_second": p.per_second,
            "eta_seconds": p.eta_seconds, "mean_valid_mass": p.mean_valid_mass,
        }


class RunStartInput(serializers.Serializer):
    judge = serializers.PrimaryKeyRelatedField(queryset=Judge.objects.select_related("rater"))
    project = serializers.IntegerField()
    protocols = serializers.ListField(
        child=serializers.ChoiceField(choices=["rating", "ranking"]), default=["rating", "ranking"]
    )
    kind = serializers.ChoiceField(choices=Run.Kind.choices, default=Run.Kind.JUDGE)
    limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    filters = serializers.JSONField(
        required=False, default=dict,
        help_text='Subset of the project: {"roles": ["gold"], "items": ["q1"], "models": ["m1"], '
                  '"unjudged_only": true}; empty: everything.',
    )


class RunListApi(APIView):
    @extend_schema(responses=RunOutput(many=True))
    def get(self, request: Request) -> Response:
        runs = selectors.runs_for_user(request.user)
        project = request.query_params.get("project")
        if project:
            runs = runs.filter(project_id=project)
        status_ = request.query_params.get("status")
        if status_:
            runs = runs.filter(status=status_)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(RunOutput(page, many=True).data)

    @extend_schema(request=RunStartInput, responses={201: RunOutput, 503: None})
    def post(self, request: Request) -> Response:
        data = RunStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = selectors.project_get_for_researcher(request.user, v["project"])
        try:
            run = services.run_start(
                judge=v["judge"], project=project, protocols=v["protocols"], kind=v["kind"],
                limit=v.get("limit"), created_by=authenticated(request.user), filters=v.get("filters"),
            )
        except ValidationError as exc:
            raise _invalid(exc) from exc
        except services.BrokerUnavailable as exc:
            raise BrokerDown(str(exc)) from exc
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOutput(selectors.run_get_for_user(request.user, run_id)).data)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request: Request, run_id: int) -> Response:
        run = services.run_cancel(run=selectors.run_get_for_user(request.user, run_id))
        return Response(RunOutput(run).data)


class RunResumeApi(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request: Request, run_id: int) -> Response:
        run = services.run_resume(run=selectors.run_get_for_user(request.user, run_id))
        return Response(RunOutput(run).data)
