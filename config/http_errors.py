"""Error answers outside DRF's views: JSON under /api/ (what API clients and the schema
expect), a page in the app's layout otherwise. Used by the upload limit and the 404 handler."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_response(request: HttpRequest, *, status: int, title: str, detail: str, **extra: object) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": detail, **extra}, status=status)
    html = render_to_string("error.html", {"title": title, "detail": detail, "status": status}, request=request)
    return HttpResponse(html, status=status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a URL no route matches (e.g. /api/items/abc/) answers like DRF's 404s."""
    return error_response(request, status=404, title="Not found", detail="Not found.")
