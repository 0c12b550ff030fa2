"""django-axes' backend, minus its refusal of an authenticate() call without a request.

Every login that comes over HTTP passes its request (the login page, the admin's login, DRF), so
axes counts and locks all of them. Only code calls authenticate() without one (Django's test
client `login()`, a shell), and there is no client address to count: such a call goes on to the
password check as it would without axes, instead of raising AxesBackendRequestParameterRequired.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    def authenticate(self, request: Any = None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
