"""Global roles are Django groups; a superuser counts as admin. What a role may do is decided in
annotate.access, the one place; this module only stores the groups."""

from __future__ import annotations

from typing import Literal, cast

from django.contrib.auth.models import AnonymousUser, Group, User

Role = Literal["annotator", "reviewer", "researcher", "admin"]
ROLES: tuple[Role, ...] = ("annotator", "reviewer", "researcher", "admin")


def ensure_role_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def authenticated(user: User | AnonymousUser) -> User:
    """The user of a request that login_required or IsAuthenticated already let through.

    Only narrows the type for the checker; the view's guard is what keeps anonymous users out."""
    return cast(User, user)


def user_set_role(*, user: User, role: Role) -> None:
    ensure_role_groups()
    user.groups.set([Group.objects.get(name=role)])
    if hasattr(user, "_concordance_role"):
        delattr(user, "_concordance_role")  # annotate.access caches the role on the user
