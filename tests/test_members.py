"""Project membership managed on the members page: invitations by link and by email, roles per
project, removal (annotations kept, claims released) and the audit trail of each."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotate.access import global_role, project_role, projects_visible
from annotate.members import InviteInvalid, invite_create, invite_from_token, invite_token
from annotate.models import Assignment, AuditEvent, Invite, Membership, Rating
from annotate.queue import assignment_claim_next
from annotate.services import project_create, rater_for_user, ratings_submit
from tests.conftest import _user

pytestmark = pytest.mark.django_db


@pytest.fixture
def small(researcher, annotator):
    project = project_create(name="Small", protocols="rating", overlap=1, attributes=[{"name": "helpfulness"}])
    Membership.objects.create(project=project, user=researcher, role="researcher")
    project.members.add(annotator)
    for n in range(3):
        project.items.create(external_id=f"i{n}", prompt=f"Q{n}").responses.create(external_id="a", text=f"A{n}")
    return project


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _link_invite(client: Client, project, role: str = "annotator", email: str = "") -> Invite:
    response = client.post(reverse("project_invite_create", args=[project.pk]),
                           {"role": role, "email": email, "days": 7})
    assert response.status_code == 302, response.content[:500]
    return Invite.objects.filter(project=project).latest("pk")


def test_a_link_invitation_makes_a_new_account_a_member_with_its_role(small, researcher):
    invite = _link_invite(_client(researcher), small, role="annotator")
    page = _client(researcher).get(reverse("project_members", args=[small.pk]))
    assert page.status_code == 200
    token = invite_token(invite)
    assert reverse("invite_accept", args=[token]) in page.content.decode()

    visitor = Client()
    form = visitor.get(reverse("invite_accept", args=[token]))
    assert form.status_code == 200 and "Join Small" in form.content.decode()
    response = visitor.post(reverse("invite_accept", args=[token]), {"username": "newbie", "password": "long-enough-pw"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    user = get_user_model().objects.get(username="newbie")
    assert global_role(user) == "annotator" and project_role(user, small) == "annotator"
    assert list(projects_visible(user)) == [small]
    # Signed in by the acceptance, straight to the queue.
    assert visitor.get(reverse("annotate_task", args=[small.pk])).status_code == 200
    # A link invite serves the next person too, until it expires or is withdrawn.
    second = Client().post(reverse("invite_accept", args=[token]), {"username": "second", "password": "long-enough-pw"})
    assert second.status_code == 302
    invite.refresh_from_db()
    assert invite.uses == 2
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"project.invite", "project.invite.accept", "project.membership"} <= actions


def test_an_email_invitation_is_mailed_and_used_once(small, researcher, annotator):
    invite = _link_invite(_client(researcher), small, role="reviewer", email="rev@example.org")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["rev@example.org"] and "Small" in message.subject
    url = re.search(r"http://testserver(/invites/\S+/)", message.body)
    assert url is not None and url.group(1) == reverse("invite_accept", args=[invite_token(invite)])

    existing = _user("colleague", "annotator")
    response = _client(existing).post(url.group(1))
    assert response.status_code == 302
    existing = get_user_model().objects.get(pk=existing.pk)
    # Accepting raises the global role to the invited one (it caps the membership otherwise).
    assert global_role(existing) == "reviewer" and project_role(existing, small) == "reviewer"
    again = _client(annotator).post(url.group(1))
    assert again.status_code == 410 and "used" in again.content.decode()


def test_withdrawn_expired_and_forged_invitations_do_not_work(small, researcher):
    client = _client(researcher)
    invite = _link_invite(client, small)
    token = invite_token(invite)
    assert client.post(reverse("project_invite_revoke", args=[small.pk, invite.pk])).status_code == 302
    response = Client().get(reverse("invite_accept", args=[token]))
    assert response.status_code == 410 and "withdrawn" in response.content.decode()

    old = _link_invite(client, small)
    Invite.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(InviteInvalid, match="expired"):
        invite_from_token(invite_token(old))
    with pytest.raises(InviteInvalid, match="not a valid"):
        invite_from_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    # The right row id with a wrong key (a token made for a guessed key) is refused too.
    other = Invite(pk=old.pk, key="guessed")
    with pytest.raises(InviteInvalid, match="not a valid"):
        invite_from_token(invite_token(other))


def test_a_researcher_invites_no_higher_than_their_own_role(small, researcher):
    response = _client(researcher).post(reverse("project_invite_create", args=[small.pk]),
                                        {"role": "admin", "email": "", "days": 7})
    assert response.status_code == 422
    reviewer = _user("rev", "reviewer")
    Membership.objects.create(project=small, user=reviewer, role="reviewer")
    with pytest.raises(Exception, match="cannot invite"):
        invite_create(inviter=reviewer, project=small, role="annotator")
    assert not Invite.objects.exists()


def test_roles_change_per_project_and_removal_keeps_annotations_and_frees_claims(small, researcher, annotator):
    client = _client(researcher)
    rater = rater_for_user(user=annotator)
    first = small.items.get(external_id="i0").responses.get()
    ratings_submit(rater=rater, response=first, values={"helpfulness": 3})
    held = assignment_claim_next(project=small, rater=rater)
    assert held is not None and held.status == "claimed"

    promoted = _user("promoted", "researcher")
    small.members.add(promoted)
    assert client.post(reverse("project_members", args=[small.pk]),
                       {"user_id": promoted.pk, "role": "annotator"}).status_code == 302
    assert project_role(promoted, small) == "annotator"  # per project: still a researcher globally
    assert global_role(promoted) == "researcher"

    response = client.post(reverse("project_member_remove", args=[small.pk, annotator.pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(project=small, user=annotator).exists()
    assert Rating.objects.filter(rater=rater).count() == 1  # nothing annotated is deleted
    held.refresh_from_db()
    assert held.status == "expired"  # the task is back in the pool now, not at the claim's timeout
    other = rater_for_user(user=_user("next", "annotator"))
    assert assignment_claim_next(project=small, rater=other).response_id == held.response_id  # type: ignore[union-attr]
    assert _client(annotator).get(reverse("annotate_task", args=[small.pk])).status_code == 404
    removed = AuditEvent.objects.filter(action="project.membership", after__isnull=True).get()
    assert removed.before == {"user": annotator.username, "role": "global"} and removed.actor == researcher
    assert Assignment.objects.filter(rater=rater).count() == 1


def test_a_researcher_cannot_remove_or_demote_themselves(small, researcher):
    client = _client(researcher)
    assert client.post(reverse("project_member_remove", args=[small.pk, researcher.pk])).status_code == 403
    assert client.post(reverse("project_members", args=[small.pk]),
                       {"user_id": researcher.pk, "role": "annotator"}).status_code == 403
    assert project_role(researcher, small) == "researcher"
