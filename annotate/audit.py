"""The audit trail: who changed what, when, and the values before and after.

One function, `audit_record`, writes every event; the services call it on each write path
(annotations submitted, replaced and undone; projects, their membership, judges and their
templates created and changed), and the admin calls it for what it saves itself. An admin reads
the trail in the Django admin (Audit events), per object and per user.

Who: the services do not take a user, so the actor is the signed-in user of the request being
served (AuditActorMiddleware keeps it in a context variable; DRF's token users land on the same
request) unless the caller names one. Outside a request (a judge worker, a management command)
the actor is the system, recorded as no user.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import AuditEvent, Membership, Project

_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditActorMiddleware:
    """Makes the request's user the actor of what the services record while it is served."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_actor() -> Any:
    """The signed-in user of the request being served, or None (the system)."""
    request = _request.get()
    # Read now, not when the request came in: DRF authenticates a token inside the view.
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _json(value: object) -> Any:
    # What a JSONField stores: dates as ISO strings, decimals and UUIDs as strings.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's stored values by column, as JSON; auto-updated timestamps left out (the
    event has its own time, and they would make every replay look like a change)."""
    values = {
        field.attname: field.value_from_object(obj)
        for field in obj._meta.concrete_fields
        if not getattr(field, "auto_now", False)
    }
    return _json(values)


def audit_snapshots(objects: Iterable[models.Model]) -> dict[Any, dict[str, Any]]:
    """Snapshots by primary key, for a write that changes several rows at once."""
    return {obj.pk: audit_snapshot(obj) for obj in objects}


def _event(*, actor: Any, action: str, obj: models.Model, before: object, after: object) -> AuditEvent | None:
    """The unsaved event of one change, or None when before and after are equal."""
    before, after = _json(before), _json(after)
    if before == after:
        return None
    if actor is None:
        actor = current_actor()
    meta = obj._meta
    return AuditEvent(
        at=timezone.now(),
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        action=action,
        object_type=f"{meta.app_label}.{meta.model_name}",
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )


def audit_record(
    *, actor: Any = None, action: str, obj: models.Model, before: object, after: object
) -> AuditEvent | None:
    """Record one change of `obj`. `before` is None for a creation, `after` None for a removal.

    Nothing is recorded when before and after are equal: a replayed submission that stores
    the same values is not a change. `actor=None` means the current request's user (or the
    system outside a request)."""
    event = _event(actor=actor, action=action, obj=obj, before=before, after=after)
    if event is not None:
        event.save()
    return event


def audit_record_many(
    *, actor: Any = None, action: str, changes: Iterable[tuple[models.Model, object, object]]
) -> list[AuditEvent]:
    """`audit_record` for several objects changed by one write, as (obj, before, after), in one
    INSERT: a rating submit changes one row per attribute, and five inserts were a sixth of
    the submit's queries."""
    events = [e for obj, before, after in changes
              if (e := _event(actor=actor, action=action, obj=obj, before=before, after=after)) is not None]
    return AuditEvent.objects.bulk_create(events) if events else []


def _member_names(project: Project) -> list[str]:
    return sorted(project.members.values_list("username", flat=True))


@receiver(m2m_changed, sender=Project.members.through, dispatch_uid="audit_project_members")
def _members_changed(
    sender: type, instance: models.Model, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: object
) -> None:
    """Membership changes, whichever side and path made them (services, admin, API)."""
    if action == "pre_clear":
        # After a clear the removed members are gone from the database: keep them to record.
        cleared = [instance] if not reverse else list(Project.objects.filter(members__pk=instance.pk))
        instance._audit_cleared = {  # type: ignore[attr-defined]
            p.pk: (p, _member_names(p)) for p in cleared if isinstance(p, Project)
        }
        return
    if action == "post_clear":
        for project, before in getattr(instance, "_audit_cleared", {}).values():
            audit_record(action="project.members", obj=project, before={"members": before},
                         after={"members": _member_names(project)})
        return
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    if reverse:
        # user.projects.add(...): pk_set are projects; the user is the one member changed.
        changed = {str(instance.get_username())}  # type: ignore[attr-defined]
        projects = list(Project.objects.filter(pk__in=pk_set))
    else:
        assert isinstance(instance, Project)
        changed = set(get_user_model().objects.filter(pk__in=pk_set).values_list("username", flat=True))
        projects = [instance]
    for project in projects:
        after = _member_names(project)
        before = sorted(set(after) - changed) if action == "post_add" else sorted(set(after) | changed)
        audit_record(action="project.members", obj=project, before={"members": before}, after={"members": after})


def _membership_state(membership: Membership) -> dict[str, str]:
    return {"user": membership.user.get_username(), "role": membership.role or "global"}


# Membership rows saved one by one (the admin's inline, a role change) send no m2m_changed;
# `project.members.add()` bulk-creates its rows and sends only m2m_changed, so nothing is
# recorded twice.
@receiver(pre_save, sender=Membership, dispatch_uid="audit_membership_before")
def _membership_before(sender: type, instance: Membership, **kwargs: object) -> None:
    stored = Membership.objects.filter(pk=instance.pk).select_related("user").first() if instance.pk else None
    instance._audit_before = _membership_state(stored) if stored is not None else None  # type: ignore[attr-defined]


@receiver(post_save, sender=Membership, dispatch_uid="audit_membership_saved")
def _membership_saved(sender: type, instance: Membership, **kwargs: object) -> None:
    audit_record(action="project.membership", obj=instance.project,
                 before=getattr(instance, "_audit_before", None), after=_membership_state(instance))


@receiver(post_delete, sender=Membership, dispatch_uid="audit_membership_deleted")
def _membership_deleted(sender: type, instance: Membership, **kwargs: object) -> None:
    audit_record(action="project.membership", obj=instance.project, before=_membership_state(instance), after=None)
