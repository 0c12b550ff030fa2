"""Project membership managed by the project's researchers: invitations and roles.

An invitation is a row (project, role, expiry, revocation) and a signed token that names it:
`invite_token` signs the row's id and its random key with the secret key, so a link cannot be
forged or guessed, and it stops working when it expires (checked on the row) or is revoked. A link invite may be used by anyone holding it until then;
an invite sent to an email address is used once.

Who may invite with which role, and what accepting does to the global role, is decided in
annotate.access (invite_roles, global_role_on_accept). Every change is audited: invitations
here, memberships by annotate.audit's signals. Removing a member deletes the membership only:
their rater and annotations stay (research data), their open claims go back to the pool.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .access import (
    ARCHIVED,
    PARTICIPANT_NO_INVITE,
    forget_role,
    global_role,
    global_role_on_accept,
    invite_roles,
    is_participant,
)
from .audit import audit_record
from .errors import ValidationError
from .models import Invite, Membership, Project
from .queue import assignment_release_claims
from .roles import Role, user_set_role
from .services import rater_for_user

INVITE_SALT = "concordance.invite"
# The longest an invitation may stay open.
MAX_INVITE_DAYS = 90


class InviteInvalid(Exception):
    """The link is not an invitation of ours, or no longer open; the message says which."""


def _invite_state(invite: Invite) -> dict:
    return {
        "role": invite.role, "email": invite.email, "expires_at": invite.expires_at,
        "revoked_at": invite.revoked_at, "uses": invite.uses,
    }


def invite_token(invite: Invite) -> str:
    """The same token every time for one invitation (the members page shows it again); its
    expiry is the row's, checked on every use."""
    return signing.Signer(salt=INVITE_SALT).sign_object({"i": invite.pk, "k": invite.key}, compress=True)


def invite_create(
    *, inviter: User, project: Project, role: str, email: str = "", days: int = 7
) -> Invite:
    """A new invitation into `project` with `role`; 403 for a role above what the inviter may grant."""
    if role not in invite_roles(inviter, project):
        raise PermissionDenied(f"You cannot invite people as {role!r} in this project.")
    if project.archived_at is not None:
        raise PermissionDenied(ARCHIVED)
    if not 1 <= days <= MAX_INVITE_DAYS:
        raise ValidationError(f"An invitation stays open 1 to {MAX_INVITE_DAYS} days.", field="days")
    invite = Invite.objects.create(
        project=project, role=role, email=email.strip(), key=secrets.token_urlsafe(24),
        created_by=inviter, expires_at=timezone.now() + timedelta(days=days),
    )
    audit_record(action="project.invite", obj=invite, before=None, after=_invite_state(invite))
    return invite


def invite_send_email(*, invite: Invite, accept_url: str) -> None:
    """Mail the invitation's link to its address (settings.EMAIL_BACKEND: console in development,
    locmem in tests, SMTP by environment in production)."""
    inviter = invite.created_by.get_username() if invite.created_by else "A researcher"
    send_mail(
        subject=f"Invitation to {invite.project.name} on Concordance",
        message=(
            f"{inviter} invites you to the project {invite.project.name!r} as {invite.get_role_display().lower()}.\n\n"
            f"Accept the invitation here (open until {invite.expires_at:%Y-%m-%d %H:%M} UTC):\n{accept_url}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invite.email],
    )


def invite_revoke(*, invite: Invite) -> Invite:
    if invite.revoked_at is None:
        before = _invite_state(invite)
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        audit_record(action="project.invite", obj=invite, before=before, after=_invite_state(invite))
    return invite


def invite_from_token(token: str) -> Invite:
    """The open invitation a token names; InviteInvalid saying why otherwise."""
    try:
        data = signing.Signer(salt=INVITE_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError) as exc:
        raise InviteInvalid("This is not a valid invitation link.") from exc
    ok = isinstance(data, dict) and isinstance(data.get("i"), int) and isinstance(data.get("k"), str)
    invite = (
        Invite.objects.select_related("project", "created_by").filter(pk=data["i"], key=data["k"]).first()
        if ok else None
    )
    if invite is None:
        raise InviteInvalid("This is not a valid invitation link.")
    if invite.revoked_at is not None:
        raise InviteInvalid("This invitation was withdrawn: ask the researcher for a new one.")
    if invite.expires_at <= timezone.now():
        raise InviteInvalid("This invitation has expired: ask the researcher for a new one.")
    if invite.email and invite.uses > 0:
        raise InviteInvalid("This invitation was sent to one person and has been used.")
    if invite.project.archived_at is not None:
        raise InviteInvalid(ARCHIVED)
    return invite


@dataclass(frozen=True)
class Accepted:
    membership: Membership
    joined: bool  # False when the user was already a member (the role may still have changed)


def invite_accept(*, invite: Invite, user: User) -> Accepted:
    """Make `user` a member of the invitation's project with its role.

    Accepting twice is harmless; an existing member gets the invited role. A study participant's
    account never joins another project (access: bearer-link accounts annotate one project)."""
    if is_participant(user):
        raise PermissionDenied(PARTICIPANT_NO_INVITE)
    invited: Role = invite.role  # type: ignore[assignment]
    with transaction.atomic():
        locked = Invite.objects.select_for_update().get(pk=invite.pk)
        if locked.email and locked.uses > 0:
            raise InviteInvalid("This invitation was sent to one person and has been used.")
        current = global_role(user)
        new_global = global_role_on_accept(current, invited)
        if new_global != current and current != "admin":
            user_set_role(user=user, role=new_global)
            forget_role(user)
        membership, joined = Membership.objects.get_or_create(project=invite.project, user=user, defaults={"role": invited})
        if not joined and membership.role != invited:
            membership.role = invited
            membership.save(update_fields=["role"])
        before = _invite_state(locked)
        Invite.objects.filter(pk=locked.pk).update(uses=F("uses") + 1)
        locked.refresh_from_db()
        audit_record(action="project.invite.accept", obj=locked, before=before,
                     after=_invite_state(locked) | {"accepted_by": user.get_username()})
        rater_for_user(user=user)
    return Accepted(membership=membership, joined=joined)


def member_set_role(*, membership: Membership, role: str) -> Membership:
    """Change a member's role in the project (blank: their global role); audited by annotate.audit."""
    if role not in Membership.Role.values:
        raise ValidationError(f"Unknown role {role!r}.", field="role")
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def member_remove(*, membership: Membership) -> int:
    """Take a member out of the project. Their annotations stay (they are the research data, and
    Rating/Preference protect their rater); their open claims go back to the pool at once.
    Returns how many claims were released."""
    with transaction.atomic():
        rater = rater_for_user(user=membership.user)
        released = assignment_release_claims(project=membership.project, rater=rater)
        membership.delete()  # audited by annotate.audit's post_delete signal
    return released


def members_of(project: Project) -> list[Membership]:
    return list(
        Membership.objects.filter(project=project).select_related("user").prefetch_related("user__groups")
        .order_by("user__username")
    )


def open_invites(project: Project) -> list[Invite]:
    now = timezone.now()
    return [
        i for i in Invite.objects.filter(project=project, revoked_at__isnull=True, expires_at__gt=now)
        if not (i.email and i.uses)
    ]
