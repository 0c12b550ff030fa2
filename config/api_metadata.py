"""What OPTIONS answers on the API (REST_FRAMEWORK["DEFAULT_METADATA_CLASS"])."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.metadata import SimpleMetadata

if TYPE_CHECKING:  # rest_framework.views imports this module while it loads
    from rest_framework.request import Request
    from rest_framework.views import APIView


class OptionsMetadata(SimpleMetadata):
    """OPTIONS answers name, description, renderers and parsers, without the per-method form
    description: DRF builds that from `get_serializer()`, which our views (one serializer per
    method, declared with extend_schema) do not have. The schema at /api/schema/ describes them."""

    def determine_metadata(self, request: Request, view: APIView) -> dict:
        metadata = super().determine_metadata(request, view)
        metadata.pop("actions", None)
        return metadata

    def determine_actions(self, request: Request, view: APIView) -> dict:
        return {}
