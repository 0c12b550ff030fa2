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


# Why a page is missing, for a person: the same answer whether the address is wrong or the
# project is one the user is not a member of (annotate.access answers 404 there, so that ids of
# other projects are not confirmed), and where to go instead.
NOT_FOUND_PAGE = (
    "There is nothing at this address for you: it may be mistyped or out of date, or it belongs to "
    "a project you are not a member of."
)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a URL no route matches (e.g. /api/items/abc/) answers like DRF's 404s; a page
    says why it may be missing and where to go."""
    if is_api(request):
        return error_response(request, status=404, title="Not found", detail="Not found.")
    return error_response(request, status=404, title="Page not found", detail=NOT_FOUND_PAGE)


# A form posted without a valid CSRF token is, for a person, almost always a stale page: a form
# left open across a logout, a login in another tab, or an expired session.
CSRF_PAGE = (
    "This form was sent from a page that is out of date (you may have logged out, or logged in "
    "again in another tab), so nothing was saved. Reload the page and send it again."
)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: Django's bare "403 Forbidden" page, replaced by one in the app's layout
    that says what happened and what to do (the API answers JSON, like its other 403s)."""
    if is_api(request):
        return error_response(request, status=403, title="Forbidden", detail=f"CSRF check failed: {reason}")
    return error_response(request, status=403, title="This page had expired", detail=CSRF_PAGE)
