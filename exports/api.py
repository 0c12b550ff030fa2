"""Export API: GET /api/projects/<id>/export/?format=... streams the export as it is written.

JSONL and CSV are streamed from the database in item batches (StreamingHttpResponse, constant
memory); the Parquet outputs need a seekable file, so they are written to a temporary folder
first and sent from there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from annotate import access
from annotate.errors import ValidationError
from annotate.models import GOLD_SOURCE_CHOICES, Project

from .filenames import export_stem
from .formats import DPO_SOURCES
from .selectors import RATER_GROUPS, ExportFilters, parse_splits
from .services import FORMATS, ExportOptions, export_stream, export_write


class _IgnoreFormatParam(DefaultContentNegotiation):
    """`?format=` names the export format here, not a DRF renderer; the response is a file."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = list(renderers)[0]
        return first, first.media_type


class ProjectExportApi(APIView):
    content_negotiation_class = _IgnoreFormatParam

    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=FORMATS)
        raters = serializers.ChoiceField(choices=RATER_GROUPS, default="humans")
        judge = serializers.CharField(required=False, allow_blank=True, default="")
        dpo_source = serializers.ChoiceField(choices=DPO_SOURCES, default="human")
        min_agreement = serializers.FloatField(min_value=0, max_value=1, default=0.0)
        exclude_gold = serializers.BooleanField(default=False)
        exclude_attention = serializers.BooleanField(default=False)
        gold = serializers.ChoiceField(choices=GOLD_SOURCE_CHOICES, default="majority",
                                       help_text="DPO from humans: majority gold, or adjudicated where decided")
        splits = serializers.CharField(default="train=1")
        seed = serializers.IntegerField(default=0)
        licence = serializers.CharField(default="other")
        part = serializers.ChoiceField(choices=["main", "disagreements"], default="main",
                                       help_text="helpsteer2: the aggregated rows or the lists")
        file = serializers.ChoiceField(choices=["csv", "parquet"], default="csv", help_text="annotations")

        def validate_splits(self, value: str) -> tuple[tuple[str, float], ...]:
            try:
                return parse_splits(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from exc

    @extend_schema(
        parameters=[InputSerializer, OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS))],
        responses={
            (200, media): OpenApiTypes.BINARY
            for media in ("text/csv", "application/jsonl", "application/zip", "application/vnd.apache.parquet")
        },
        summary="Download a project export (researchers and admins)",
    )
    def get(self, request: Request, pk: int) -> FileResponse | StreamingHttpResponse:
        # Exports hold every annotation of a project: its researchers (archived projects too).
        project = access.project_for(request.user, pk, need="research", archived=True)
        data_in = self.InputSerializer(data=request.query_params)
        data_in.is_valid(raise_exception=True)
        data = data_in.validated_data
        filters = ExportFilters(
            rater_group=data["raters"], judge=data["judge"] or None, min_agreement=data["min_agreement"],
            exclude_gold=data["exclude_gold"], exclude_attention=data["exclude_attention"],
            splits=data["splits"], seed=data["seed"], gold=data["gold"],
        )
        options = ExportOptions(format=data["format"], filters=filters, dpo_source=data["dpo_source"],
                                licence=data["licence"])
        try:
            if data["format"] == "parquet" or (data["format"] == "annotations" and data["file"] == "parquet"):
                return _file_download(project=project, options=options)
            stream = export_stream(project=project, options=options, part=data["part"])
        except ValidationError as exc:
            raise ApiValidationError({exc.field or "non_field_errors": [str(exc)]}) from exc
        response = StreamingHttpResponse(stream.chunks, content_type=stream.content_type)
        response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
        return response


def _file_download(*, project: Project, options: ExportOptions) -> FileResponse:
    tmp = Path(tempfile.mkdtemp(prefix="concordance-export-"))
    slug = export_stem(project.name, options.format)
    result = export_write(project=project, options=options, out=tmp / slug)
    if options.format == "parquet":
        path = Path(shutil.make_archive(str(tmp / slug), "zip", root_dir=tmp / slug))
        content_type = "application/zip"
    else:
        path = result.files[1]
        content_type = "application/vnd.apache.parquet"
    handle = path.open("rb")
    # The file stays readable through the open handle once its folder is gone (POSIX).
    shutil.rmtree(tmp, ignore_errors=True)
    return FileResponse(handle, as_attachment=True, filename=path.name, content_type=content_type)
