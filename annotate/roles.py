"""Roles are Django groups; a superuser counts as admin."""

from __future__ import annotations

from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

Role = Literal["annotator", "researcher", "admin"]
ROLES: tuple[Role, ...] = ("annotator", "researcher", "admin")


def ensure_role_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def user_role(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    """The strongest role the user holds, or None."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    for role in ("admin", "researcher", "annotator"):
        if role in names:
            return role  # type: ignore[return-value]
    return None


def is_researcher(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user_role(user) in ("researcher", "admin")


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user_role(user) == "admin"


def user_set_role(*, user: AbstractBaseUser, role: Role) -> None:
    ensure_role_groups()
    user.groups.set([Group.objects.get(name=role)])  # type: ignore[attr-defined]
