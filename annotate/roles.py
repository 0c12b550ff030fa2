"""Roles are Django groups; a superuser counts as admin."""

from __future__ import annotations

from typing import Literal, cast

from django.contrib.auth.models import AnonymousUser, Group, User

Role = Literal["annotator", "researcher", "admin"]
ROLES: tuple[Role, ...] = ("annotator", "researcher", "admin")


def ensure_role_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def authenticated(user: User | AnonymousUser) -> User:
    """The user of a request that login_required or IsAuthenticated already let through.

    Only narrows the type for the checker; the view's guard is what keeps anonymous users out."""
    return cast(User, user)


def user_role(user: User | AnonymousUser) -> Role | None:
    """The strongest role the user holds, or None."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    names = set(user.groups.values_list("name", flat=True))
    strongest_first: tuple[Role, ...] = ("admin", "researcher", "annotator")
    for role in strongest_first:
        if role in names:
            return role
    return None


def is_researcher(user: User | AnonymousUser) -> bool:
    return user_role(user) in ("researcher", "admin")


def is_admin(user: User | AnonymousUser) -> bool:
    return user_role(user) == "admin"


def user_set_role(*, user: User, role: Role) -> None:
    ensure_role_groups()
    user.groups.set([Group.objects.get(name=role)])
