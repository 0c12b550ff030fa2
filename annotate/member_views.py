"""The members page of a project (its researchers): members and roles, invitations by link or
email, and the page where an invitation is accepted. Rules: annotate.access and annotate.members."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from .access import can_research_in, invite_roles, member_for, project_for
from .errors import ValidationError
from .members import (
    MAX_INVITE_DAYS,
    InviteInvalid,
    invite_accept,
    invite_create,
    invite_from_token,
    invite_revoke,
    invite_send_email,
    member_remove,
    member_set_role,
    members_of,
    open_invites,
)
from .members import (
    invite_token as token_for_invite,
)
from .models import Invite, Membership


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=[])
    email = forms.EmailField(required=False, help_text="Leave blank for a link you share yourself.")
    days = forms.IntegerField(min_value=1, max_value=MAX_INVITE_DAYS, initial=7)

    def __init__(self, *args: object, roles: Sequence[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        labels = dict(Membership.Role.choices)
        self.fields["role"].choices = [(r, labels[r]) for r in roles]  # type: ignore[attr-defined]


class RoleForm(forms.Form):
    user_id = forms.IntegerField()
    role = forms.ChoiceField(choices=Membership.Role.choices, required=False)


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8)

    def clean_username(self) -> str:
        name: str = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        user_model.username_validator(name)
        if user_model.objects.filter(username__iexact=name).exists():
            raise forms.ValidationError("That username is taken: choose another, or log in if it is yours.")
        return name

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        try:
            validate_password(password)
        except DjangoValidationError as exc:
            raise forms.ValidationError(list(exc.messages)) from exc
        return password


def _accept_url(request: HttpRequest, invite: Invite) -> str:
    return request.build_absolute_uri(reverse("invite_accept", args=[token_for_invite(invite)]))


def _members_page(request: HttpRequest, project_id: int, *, form: InviteForm | None = None,
                  status: int = 200) -> HttpResponse:
    project = project_for(request.user, project_id, need="research")
    roles = invite_roles(request.user, project)
    invites = [{"invite": i, "url": _accept_url(request, i)} for i in open_invites(project)]
    return render(
        request, "annotate/members.html",
        {
            "project": project, "can_research": can_research_in(request.user, project),
            "members": members_of(project), "invites": invites,
            "form": form or InviteForm(roles=roles), "role_choices": Membership.Role.choices,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the page. POST: change one member's role in this project."""
    if request.method == "GET":
        return _members_page(request, project_id)
    project_for(request.user, project_id, need="research")  # refuse before reading the form
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a member and a role.")
        return redirect("project_members", project_id=project_id)
    membership = member_for(request.user, project_id, form.cleaned_data["user_id"])
    member_set_role(membership=membership, role=form.cleaned_data["role"] or "")
    messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()} here.")
    return redirect("project_members", project_id=project_id)


@login_required
@require_POST
def member_remove_view(request: HttpRequest, project_id: int, user_id: int) -> HttpResponse:
    membership = member_for(request.user, project_id, user_id)
    name = membership.user.get_username()
    released = member_remove(membership=membership)
    note = f" {released} open task{'s' if released != 1 else ''} went back to the queue." if released else ""
    messages.success(request, f"{name} is no longer a member. Their annotations stay.{note}")
    return redirect("project_members", project_id=project_id)


@login_required
@require_POST
def invite_create_view(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request.user, project_id, need="research")
    form = InviteForm(request.POST, roles=invite_roles(request.user, project))
    if not form.is_valid():
        return _members_page(request, project_id, form=form, status=422)
    data = form.cleaned_data
    try:
        invite = invite_create(inviter=request.user, project=project, role=data["role"],  # type: ignore[arg-type]
                               email=data["email"] or "", days=data["days"])
    except ValidationError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _members_page(request, project_id, form=form, status=422)
    if invite.email:
        invite_send_email(invite=invite, accept_url=_accept_url(request, invite))
        messages.success(request, f"Invitation sent to {invite.email}.")
    else:
        messages.success(request, "Invitation link made: copy it from the list below.")
    return redirect("project_members", project_id=project_id)


@login_required
@require_POST
def invite_revoke_view(request: HttpRequest, project_id: int, invite_id: int) -> HttpResponse:
    project = project_for(request.user, project_id, need="research")
    invite = get_object_or_404(Invite, pk=invite_id, project=project)
    invite_revoke(invite=invite)
    messages.success(request, "Invitation withdrawn: its link no longer works.")
    return redirect("project_members", project_id=project_id)


@require_http_methods(["GET", "POST"])
def invite_accept_view(request: HttpRequest, invite_token: str) -> HttpResponse:
    token = invite_token
    """Anyone with the link: a signed-in user joins with one button; a visitor makes an account
    (username and password) or logs in first."""
    try:
        invite = invite_from_token(token)
    except InviteInvalid as exc:
        return render(request, "annotate/invite.html", {"error": str(exc)}, status=410)
    signup = SignupForm(request.POST if request.method == "POST" and not request.user.is_authenticated else None)
    context = {"invite": invite, "signup": signup, "token": token}
    if request.method == "GET":
        return render(request, "annotate/invite.html", context)
    if not request.user.is_authenticated and not signup.is_valid():
        return render(request, "annotate/invite.html", context, status=422)
    try:
        # One transaction: a new account is made only if it joins (no role-less leftovers).
        with transaction.atomic():
            if request.user.is_authenticated:
                user = request.user
            else:
                user = get_user_model().objects.create_user(
                    username=signup.cleaned_data["username"], password=signup.cleaned_data["password"],
                    email=invite.email,
                )
            accepted = invite_accept(invite=invite, user=user)
    except InviteInvalid as exc:
        return render(request, "annotate/invite.html", {"error": str(exc)}, status=410)
    if not request.user.is_authenticated:
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    verb = "joined" if accepted.joined else "are already in"
    messages.success(request, f"You {verb} {invite.project.name} as {invite.get_role_display().lower()}.")
    return redirect("home")
