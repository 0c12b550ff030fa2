"""Reads, with the permission check in one place."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Project
from .roles import is_admin, user_role


def projects_for_user(user: User | AnonymousUser) -> QuerySet[Project]:
    """Admins see every project; researchers and annotators the projects they are members of."""
    if is_admin(user):
        return Project.objects.all()
    if not user.is_authenticated or user_role(user) is None:
        return Project.objects.none()
    return Project.objects.filter(members=user)


def project_get_for_user(user: User | AnonymousUser, project_id: int) -> Project:
    if not user.is_authenticated:
        raise PermissionDenied
    return get_object_or_404(projects_for_user(user), pk=project_id)
