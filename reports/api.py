"""The report as JSON: GET /api/projects/<pk>/report/ (researchers and admins)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotate import access
from annotate.api import viewer_for
from annotate.bounds import SMALLINT_MAX
from annotate.models import GOLD_SOURCE_CHOICES

from .cache import cached_report
from .selectors import ReportFilters


class ProjectReportApi(APIView):
    class InputSerializer(serializers.Serializer):
        attribute = serializers.CharField(required=False, allow_blank=True)
        rater_group = serializers.CharField(required=False, allow_blank=True)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        exclude_gold = serializers.BooleanField(required=False, default=False)
        wildbench_k = serializers.IntegerField(required=False, min_value=0, max_value=SMALLINT_MAX)
        details = serializers.BooleanField(required=False, default=False)
        rounds = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
        seed = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)
        gold = serializers.ChoiceField(choices=GOLD_SOURCE_CHOICES, required=False)

    @extend_schema(
        parameters=[OpenApiParameter(name, str, required=False) for name in InputSerializer().fields.keys()],
        responses={200: dict},
        summary="The project's report: agreement, judge vs gold, consistency, bias audit, leaderboards.",
    )
    def get(self, request: Request, pk: int) -> Response:
        viewer_for(request)  # 401 without credentials, as the rest of the API
        project = access.project_for(request.user, pk, need="research", archived=True)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        filters = ReportFilters(
            attribute=data.get("attribute") or None,
            rater_group=data.get("rater_group") or None,
            since=data.get("since"),
            until=data.get("until"),
            exclude_gold=data["exclude_gold"],
        )
        options = {k: data[k] for k in ("rounds", "seed", "wildbench_k", "gold") if k in data}
        return Response(cached_report(project, filters, details=data["details"], **options))


__all__ = ["ProjectReportApi"]
