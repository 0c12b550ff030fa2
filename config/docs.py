"""Who may read the API schema and its docs pages.

With DEBUG on (a developer's machine) anyone may; on a server they are for signed-in users:
the schema lists every route and field, which an outsider has no need to read. Decided per
request, so a test (or a server) flipping DEBUG is obeyed at once.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


def docs_open_to(user: object) -> bool:
    return settings.DEBUG or bool(getattr(user, "is_authenticated", False))


class DocsPermission(BasePermission):
    """The schema endpoint's rule (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]); a token works too."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return docs_open_to(request.user)


def docs_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A docs page sends a signed-out browser to the login page rather than a bare 403."""

    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not docs_open_to(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
