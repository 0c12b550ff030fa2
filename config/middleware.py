"""The upload limit: a request body larger than CONCORDANCE["MAX_UPLOAD_MB"] is answered 413
before anything reads it (the import page and the import API take uploads; nothing else does)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .http_errors import error_response


def max_upload_bytes() -> int:
    return int(settings.CONCORDANCE["MAX_UPLOAD_MB"]) * 1024 * 1024


class UploadLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django itself treats an unreadable length as an empty body
        limit = max_upload_bytes()
        if length > limit:
            mb = settings.CONCORDANCE["MAX_UPLOAD_MB"]
            return error_response(
                request, status=413, title="Upload too large",
                detail=f"The upload is {length / 1024 / 1024:.0f} MB; this server takes at most {mb} MB "
                       "per request (CONCORDANCE_MAX_UPLOAD_MB). Split the files into several imports.",
                limit_mb=mb,
            )
        return self.get_response(request)
