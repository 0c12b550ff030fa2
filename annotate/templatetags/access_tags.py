"""What the navigation offers a user: only what their role can use (annotate.access decides)."""

from __future__ import annotations

from django import template
from django.contrib.auth.models import AnonymousUser, User

from annotate import access

register = template.Library()


@register.filter
def can_research(user: User | AnonymousUser) -> bool:
    """Researchers and admins: the judges pages, imports and the API docs."""
    return access.can_research(user)
