"""Who may see and change what: the one place every page, API view, export and report asks.

Roles
    A user's *global* role is a Django group (annotate.roles): annotator, reviewer, researcher or
    admin; a superuser is an admin. It is the ceiling: it decides who may create projects and
    judges (researchers and admins), and a global annotator is never more than an annotator in
    any project. Admins see and change everything.

    A user's role *in a project* is their Membership's role, or their global role where the
    membership leaves it blank (what `project.members.add(user)` makes), capped by the global
    role. Someone who is not a member of a project does not see it: it answers 404, so ids of
    other projects are not confirmed to exist; a member asking for more than their role allows
    gets 403 with the reason.

    What each role may do in a project (`need`):
      annotate  the task queue, and reading the project's settings (every member);
      review    adjudication (reviewers and researchers; issue 12);
      research  dashboards, reports, exports, imports, judge runs, items, every rater's labels.

Judges
    A judge belongs to its owner (the researcher who made it). It can be used in the projects it
    is shared with by name, and, while `shared_with_owner_projects` is set, in every project its
    owner researches. Only its owner (and admins) may change it; others may use it where it is
    shared with them, read its settings, and see its runs there. A judge without an owner (the
    default SmolLM2 judge, and judges made before owners existed) is usable in every project and
    changed by admins only: it belongs to the installation, not to a researcher.

Archiving
    Nothing annotated is deleted from the UI or the API: a project or judge is archived
    (`archived_at`). Archived projects leave every list and queue but keep their reports and
    exports; archived judges leave the judge lists and cannot start runs, and their runs and
    judgments stay in the reports.

Invitations and study participants (issue 12)
    A project's researchers invite with a role no higher than their own global role
    (invite_roles); accepting raises the accepter's global role to the invited one where lower
    (global_role_on_accept), so the membership is not capped below what was offered. A crowd-study
    participant's account (annotate.crowd: a bearer link signs it in) is a global annotator with
    one membership, and never joins another project (is_participant: invitations refuse it).

Annotations
    A human writes annotations only as themselves (their own rater); a judge's annotations come
    only from its runs. Imported raters belong to the project they were imported into.
"""

from __future__ import annotations

from typing import Literal, cast

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from judges.models import Judge, Run

from . import compiled
from .models import Membership, Project, Rater, Study
from .roles import Role

Need = Literal["annotate", "review", "research"]
JudgeNeed = Literal["use", "edit"]
AnyUser = User | AnonymousUser

RANK: dict[str, int] = {"annotator": 0, "reviewer": 1, "researcher": 2, "admin": 3}
NEED_RANK: dict[Need, int] = {"annotate": 0, "review": 1, "research": 2}

NO_ROLE = "You have no role in Concordance yet: ask an admin to give you one."
NEED_MESSAGE: dict[Need, str] = {
    "annotate": "You are not a member of this project.",
    "review": "Reviewing is for the project's reviewers and researchers; annotators work in the task queue.",
    "research": "This is for the project's researchers; annotators work in the task queue.",
}
ARCHIVED = "This project is archived: its reports and exports stay, but it takes no new work."
RESEARCHERS_ONLY = "This is for researchers and admins; annotators work in the task queue."
_CACHE = "_concordance_role"


# --- Global role ----------------------------------------------------------------------------------


def global_role(user: AnyUser) -> Role | None:
    """The strongest role group the user holds (admin for a superuser), or None.

    Cached on the user object: one query per request, however many checks the request makes."""
    if not user.is_authenticated:
        return None
    cached = getattr(user, _CACHE, False)
    if cached is not False:
        return cast("Role | None", cached)
    role: Role | None = "admin" if user.is_superuser else None
    if role is None:
        # On every request: the groups' query compiled once per process (annotate.compiled).
        groups = compiled.many(("user_groups",), lambda user_id: Group.objects.filter(user=user_id).order_by("pk"),
                               user_id=_uid(user))
        names = {cast(Group, group).name for group in groups}
        strongest_first: tuple[Role, ...] = ("admin", "researcher", "reviewer", "annotator")
        role = next((r for r in strongest_first if r in names), None)
    setattr(user, _CACHE, role)
    return role


def _uid(user: AnyUser) -> int:
    # Only called once global_role found a role: the user is authenticated and saved.
    assert user.pk is not None
    return int(user.pk)


def forget_role(user: AnyUser) -> None:
    """Drop the cached role after the user's groups changed."""
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)


def is_admin(user: AnyUser) -> bool:
    return global_role(user) == "admin"


def can_research(user: AnyUser) -> bool:
    """Researchers and admins: may create projects and judges, and see the API and judge pages."""
    role = global_role(user)
    return role is not None and RANK[role] >= RANK["researcher"]


def require_role(user: AnyUser) -> Role:
    """The user's global role; 403 with the reason for a user without one.

    Anonymous users never get here: pages send them to the login page, the API answers 401."""
    role = global_role(user)
    if role is None:
        raise PermissionDenied(NO_ROLE)
    return role


def require_researcher(user: AnyUser) -> Role:
    role = require_role(user)
    if RANK[role] < RANK["researcher"]:
        raise PermissionDenied(RESEARCHERS_ONLY)
    return role


# --- Projects -------------------------------------------------------------------------------------


def _effective(global_: Role, member_role: str) -> Role:
    """A membership's role capped by the global role; blank means the global role."""
    if global_ == "admin" or not member_role:
        return global_
    return member_role if RANK[member_role] <= RANK[global_] else global_  # type: ignore[return-value]


def _memberships(user: User, global_: Role, need: Need) -> QuerySet[Membership]:
    """The user's memberships whose effective role meets `need` (in SQL: a subquery)."""
    if RANK[global_] < NEED_RANK[need]:
        return Membership.objects.none()
    enough = [r for r in Membership.Role.values if r and RANK[r] >= NEED_RANK[need]]
    return Membership.objects.filter(user=user).filter(Q(role="") | Q(role__in=enough))


def projects_visible(user: AnyUser, *, need: Need = "annotate", archived: bool = False) -> QuerySet[Project]:
    """The projects where the user's role meets `need`; archived ones only when asked for."""
    role = global_role(user)
    if role is None:
        return Project.objects.none()
    projects = Project.objects.all()
    if role != "admin":
        projects = projects.filter(pk__in=_memberships(user, role, need).values("project"))  # type: ignore[arg-type]
    return projects if archived else projects.filter(archived_at__isnull=True)


def projects_with_roles(user: AnyUser) -> list[tuple[Project, Role]]:
    """The user's live projects, each with the user's role in it (one query)."""
    role = global_role(user)
    if role is None:
        return []
    projects = Project.objects.filter(archived_at__isnull=True).order_by("name")
    if role == "admin":
        return [(p, role) for p in projects]
    member = Membership.objects.filter(project=OuterRef("pk"), user_id=_uid(user)).values("role")[:1]
    rows = projects.annotate(member_role=Subquery(member)).filter(member_role__isnull=False)
    return [(p, _effective(role, p.member_role)) for p in rows]


def project_role(user: AnyUser, project: Project) -> Role | None:
    role = global_role(user)
    if role is None:
        return None
    if role == "admin":
        return role
    member = Membership.objects.filter(project=project, user_id=_uid(user)).values_list("role", flat=True).first()
    return None if member is None else _effective(role, member)


def role_meets(role: Role | None, need: Need) -> bool:
    """Whether a project role (projects_with_roles, project_role) is enough for `need`."""
    return role is not None and RANK[role] >= NEED_RANK[need]


def can_research_in(user: AnyUser, project: Project) -> bool:
    """Whether the user researches this project: what its pages' header offers them."""
    role = project_role(user, project)
    return role is not None and RANK[role] >= RANK["researcher"]


def project_for(
    user: AnyUser, project_id: int, *, need: Need = "annotate", archived: bool = False,
    select_related: tuple[str, ...] = (),
) -> Project:
    """The project, if the user's role in it meets `need`.

    404 where the user is not a member (an admin is a member of everything); 403, saying why,
    where they are a member but the role falls short, or where the project is archived and
    `archived` (reports, exports, reading) does not allow it. `select_related`: relations of the
    project the caller reads next, loaded in the same query (the task pages' routing policy)."""
    role = require_role(user)
    admin = role == "admin"

    def build(project_id: int, user_id: int = 0) -> QuerySet[Project]:
        projects = Project.objects.filter(pk=project_id).select_related(*select_related)
        if not admin:
            member = Membership.objects.filter(project=OuterRef("pk"), user_id=user_id).values("role")[:1]
            projects = projects.annotate(member_role=Subquery(member)).filter(member_role__isnull=False)
        return projects.order_by("pk")[:1]

    # Every page and API request of a project asks this: SQL compiled once per process
    # (annotate.compiled), the same query and answer as through the ORM.
    ids = {"project_id": int(project_id)} if admin else {"project_id": int(project_id), "user_id": _uid(user)}
    project = cast("Project | None", compiled.first(("project_for", admin, select_related), build, **ids))
    if project is None:
        raise Http404("No such project among yours.")
    effective = _effective(role, getattr(project, "member_role", ""))
    if RANK[effective] < NEED_RANK[need]:
        raise PermissionDenied(NEED_MESSAGE[need])
    if project.archived_at is not None and not archived:
        raise PermissionDenied(ARCHIVED)
    return project


def project_for_import(user: AnyUser, name: str) -> Project | None:
    """The existing project an import of `name` writes into (its researchers only), or None when
    the import will create it (researchers and admins may create projects)."""
    require_researcher(user)
    project = Project.objects.filter(name=name).first()
    if project is None:
        return None
    if not projects_visible(user, need="research", archived=True).filter(pk=project.pk).exists():
        raise PermissionDenied("A project of this name exists and you are not one of its researchers.")
    if project.archived_at is not None:
        raise PermissionDenied(ARCHIVED)
    return project


# --- Judges ---------------------------------------------------------------------------------------


def _judge_usable_q(user: User, projects: QuerySet[Project]) -> Q:
    """Judges usable by `user` in any of `projects` (the user researches all of them)."""
    shared = Judge.shared_with.through.objects.filter(judge=OuterRef("pk"), project__in=projects)
    owner_member = Membership.objects.filter(
        user=OuterRef("owner"), project__in=projects, role__in=["", Membership.Role.RESEARCHER]
    )
    return (
        Q(owner__isnull=True)
        | Q(owner=user)
        | Q(Exists(shared))
        | (Q(shared_with_owner_projects=True) & Q(Exists(owner_member)))
    )


def judges_visible(user: AnyUser) -> QuerySet[Judge]:
    """The live judges the user may see: their own, the installation's, and those shared with a
    project they research. Annotators see none."""
    role = global_role(user)
    judges = Judge.objects.filter(archived_at__isnull=True).select_related(
        "rater", "owner", "rating_template", "ranking_template"
    )
    if role is None or RANK[role] < RANK["researcher"]:
        return judges.none()
    if role == "admin":
        return judges
    assert isinstance(user, User)
    return judges.filter(_judge_usable_q(user, projects_visible(user, need="research")))


def judges_usable(user: AnyUser, project: Project) -> QuerySet[Judge]:
    """The live judges the user may run on `project` (which the caller checked they research)."""
    judges = Judge.objects.filter(archived_at__isnull=True).select_related("rater")
    if is_admin(user):
        return judges
    if not can_research(user):
        return judges.none()
    assert isinstance(user, User)
    return judges.filter(_judge_usable_q(user, Project.objects.filter(pk=project.pk)))


def judge_editable(user: AnyUser, judge: Judge) -> bool:
    """Its owner and admins; a judge without an owner belongs to the installation: admins."""
    return is_admin(user) or (judge.owner_id is not None and judge.owner_id == user.pk)


def judge_for(user: AnyUser, judge_id: int, *, need: JudgeNeed = "use") -> Judge:
    """A judge the user may see (404 otherwise); with need="edit", 403 unless they may change it."""
    require_researcher(user)
    judge = judges_visible(user).filter(pk=judge_id).first()
    if judge is None:
        raise Http404("No such judge among those shared with you.")
    if need == "edit" and not judge_editable(user, judge):
        whose = f"{judge.owner.get_username()}'s" if judge.owner else "the installation's (admins change it)"
        raise PermissionDenied(f"This judge is {whose}: you may use it where it is shared with you, not change it.")
    return judge


def judge_check_usable(user: AnyUser, judge: Judge, project: Project) -> None:
    """403 unless `judge` may run on `project` for this user (the run start check)."""
    if not judges_usable(user, project).filter(pk=judge.pk).exists():
        raise PermissionDenied(f"Judge {judge.rater.name!r} is not shared with project {project.name!r}.")


# --- Runs -----------------------------------------------------------------------------------------


def runs_visible(user: AnyUser) -> QuerySet[Run]:
    """Runs in the projects the user researches (archived projects included: their history)."""
    return Run.objects.select_related("judge__rater", "project").filter(
        project__in=projects_visible(user, need="research", archived=True)
    )


def run_for(user: AnyUser, run_id: int) -> Run:
    """A run of a project the user researches: 404 outside their projects, 403 for its annotators."""
    require_role(user)
    run = (
        Run.objects.select_related("judge__rater", "project")
        .filter(pk=run_id, project__in=projects_visible(user, archived=True))
        .first()
    )
    if run is None:
        raise Http404("No such run among your projects.")
    project_for(user, run.project_id, need="research", archived=True)
    return run


# --- Raters and annotations -----------------------------------------------------------------------


def raters_visible(user: AnyUser) -> QuerySet[Rater]:
    """Admins: every rater. Annotators: their own. Researchers: their own, the judges they may
    see, and the raters of the projects they research (members, imported raters, and anyone who
    annotated there; Exists keeps this one row per rater on large tables)."""
    from .models import Preference, Rating

    role = global_role(user)
    if role is None:
        return Rater.objects.none()
    if role == "admin":
        return Rater.objects.all()
    assert isinstance(user, User)
    if RANK[role] < RANK["researcher"]:
        return Rater.objects.filter(user=user)
    projects = projects_visible(user, need="research", archived=True)
    return Rater.objects.filter(
        Q(user=user)
        | Q(pk__in=judges_visible(user).values("rater"))
        | Q(project__in=projects)
        | Q(user__isnull=False, user__in=Membership.objects.filter(project__in=projects).values("user"))
        | Q(Exists(Rating.objects.filter(rater=OuterRef("pk"), response__item__project__in=projects)))
        | Q(Exists(Preference.objects.filter(rater=OuterRef("pk"), pair__item__project__in=projects)))
    )


def rater_for_write(user: AnyUser, rater_id: int | None) -> Rater:
    """The rater an annotation written by `user` is stored under: always their own.

    Naming another rater (another human, a judge, an imported rater) is refused with 403: nobody
    writes in another's name, and a judge's annotations come only from its runs."""
    from .services import rater_for_user

    assert isinstance(user, User)
    own = rater_for_user(user=user)
    if rater_id is not None and rater_id != own.pk:
        raise PermissionDenied(
            "You write annotations only as yourself; leave out `rater` (a judge's come from its runs)."
        )
    return own


# --- Invitations and crowd studies (issue 12) -----------------------------------------------------

INVITE_ROLES: tuple[Role, ...] = ("annotator", "reviewer", "researcher")
PARTICIPANTS_ONLY = "This page is for the study's participants, through the study's own link."
PARTICIPANT_NO_INVITE = (
    "This is a study participant's account: it annotates one project only and cannot join others. "
    "Log in with your own account to accept the invitation."
)


def is_participant(user: AnyUser) -> bool:
    """A crowd-study participant's account (annotate.crowd): annotate, in its one project, only."""
    from .models import Participant

    return user.is_authenticated and Participant.objects.filter(user_id=user.pk).exists()


def invite_roles(user: AnyUser, project: Project) -> list[Role]:
    """The roles `user` may invite people into `project` with: none unless they research it, and
    never above their own global role (a researcher cannot mint an admin)."""
    role = project_role(user, project)
    if role is None or RANK[role] < RANK["researcher"]:
        return []
    ceiling = RANK[require_role(user)]
    return [r for r in INVITE_ROLES if RANK[r] <= ceiling]


def global_role_on_accept(current: Role | None, invited: Role) -> Role:
    """The global role of someone who accepts an invitation: raised to the invited role when
    below it (the membership alone would be capped by the global role, access's ceiling rule),
    never lowered. The inviter could grant no more than their own role (invite_roles)."""
    if current is None or RANK[current] < RANK[invited]:
        return invited
    return current


def member_for(user: AnyUser, project_id: int, member_user_id: int) -> Membership:
    """A membership of a project the user researches (404 for one that is not there)."""
    project = project_for(user, project_id, need="research")
    membership = Membership.objects.select_related("user").filter(project=project, user_id=member_user_id).first()
    if membership is None:
        raise Http404("No such member of this project.")
    if membership.user_id == user.pk:
        raise PermissionDenied("You cannot change or remove your own membership; ask another researcher of the project.")
    return membership


def study_for(user: AnyUser, study_id: int) -> Study:
    """A study of a project the user researches: 404 outside their projects, 403 for annotators."""
    require_role(user)
    study = Study.objects.select_related("project").filter(pk=study_id).first()
    if study is None:
        raise Http404("No such study among your projects.")
    project_for(user, study.project_id, need="research", archived=True)
    return study
