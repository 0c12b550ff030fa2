"""One data model for human and model raters.

A Rater is either a human user or a model judge; Ratings and Preferences point at a Rater, so
every report can put any two raters side by side and a judge is "a rater like a human".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest, Least

# HelpSteer2's attribute definitions (Wang et al., 2024), the default rating protocol.
HELPSTEER2_ATTRIBUTES: list[dict] = [
    {
        "name": "helpfulness",
        "description": "Overall helpfulness of the response to the prompt.",
        "anchors": {"0": "not helpful", "2": "partly helpful", "4": "perfectly helpful"},
    },
    {
        "name": "correctness",
        "description": "Inclusion of all pertinent facts without errors.",
        "anchors": {"0": "mostly wrong", "2": "some errors or omissions", "4": "fully correct"},
    },
    {
        "name": "coherence",
        "description": "Consistency and clarity of expression.",
        "anchors": {"0": "incoherent", "2": "some unclear parts", "4": "perfectly clear"},
    },
    {
        "name": "complexity",
        "description": "Intellectual depth required to write the response "
        "(basic competency versus deep domain expertise).",
        "anchors": {"0": "anyone could write it", "2": "some expertise", "4": "deep expertise"},
    },
    {
        "name": "verbosity",
        "description": "Amount of detail included, relative to what the prompt asks for.",
        "anchors": {"0": "terse", "2": "about right", "4": "very verbose"},
    },
]

# The seven points of HelpSteer2-Preference's strength scale; A and B are the pair's stored order.
STRENGTH_LABELS: dict[int, str] = {
    -3: "A is much better",
    -2: "A is better",
    -1: "A is slightly better",
    0: "About the same",
    1: "B is slightly better",
    2: "B is better",
    3: "B is much better",
}


# Where reports and exports take gold from (annotate.verdicts.GOLD_SOURCES and with_adjudicated):
# one list of choices for the Project field, the API serializers and the forms.
GOLD_SOURCE_CHOICES: list[tuple[str, str]] = [
    ("majority", "Majority of the humans"), ("adjudicated", "Adjudicated where reviewed"),
]


class Project(models.Model):
    class Protocols(models.TextChoices):
        RATING = "rating", "Rating only"
        RANKING = "ranking", "Ranking only"
        BOTH = "both", "Rating and ranking"

    class RankingScale(models.TextChoices):
        STRENGTH = "strength", "Strength -3..3"
        TERNARY = "ternary", "A / tie / B"

    name = models.CharField(max_length=200, unique=True)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators.")
    protocols = models.CharField(max_length=10, choices=Protocols.choices, default=Protocols.BOTH)
    ranking_scale = models.CharField(
        max_length=10, choices=RankingScale.choices, default=RankingScale.STRENGTH
    )
    overlap = models.PositiveSmallIntegerField(
        default=3, help_text="Human annotations wanted per task."
    )
    justification_required_above = models.PositiveSmallIntegerField(
        default=2, help_text="A justification is required when |strength| exceeds this."
    )
    gold_rate = models.FloatField(default=0.0, help_text="Share of served tasks that are gold.")
    attention_rate = models.FloatField(default=0.0, help_text="Share of served attention checks.")
    claim_seconds = models.PositiveIntegerField(
        default=900, help_text="How long a task handed out stays held for its annotator."
    )
    same_rater_both_protocols = models.BooleanField(
        default=False,
        help_text="The annotator who rates an item's responses also ranks its pair.",
    )
    # Onboarding and the continuous check (annotate.training).
    training_size = models.PositiveSmallIntegerField(
        default=0, help_text="Gold tasks in the training round before the main queue; 0: no training round."
    )
    qualification_bar = models.FloatField(
        default=0.0, help_text="Share of gold passed needed to leave training, and to stay in the queue; 0: no bar."
    )
    gold_window = models.PositiveSmallIntegerField(
        default=10, help_text="The continuous check looks at an annotator's last this many gold tasks."
    )
    # Adjudication (annotate.adjudication).
    review_agreement_below = models.FloatField(
        default=0.7,
        help_text="A pair goes to review when the share of human verdicts agreeing with the majority is below this.",
    )
    gold_source = models.CharField(
        max_length=12, choices=GOLD_SOURCE_CHOICES,
        default="majority", help_text="What reports and exports use as gold.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="projects", through="Membership"
    )
    # Archived, not deleted: its annotations stay for reports and exports (annotate.access).
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"
            ),
            models.CheckConstraint(
                condition=Q(attention_rate__gte=0) & Q(attention_rate__lte=1),
                name="project_attention_rate_0_1",
            ),
            models.CheckConstraint(
                condition=Q(qualification_bar__gte=0) & Q(qualification_bar__lte=1), name="project_qualification_bar_0_1"
            ),
            models.CheckConstraint(condition=Q(gold_window__gte=1), name="project_gold_window_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def uses_rating(self) -> bool:
        return self.protocols in (self.Protocols.RATING, self.Protocols.BOTH)

    @property
    def uses_ranking(self) -> bool:
        return self.protocols in (self.Protocols.RANKING, self.Protocols.BOTH)

    @property
    def strength_bounds(self) -> tuple[int, int]:
        return (-1, 1) if self.ranking_scale == self.RankingScale.TERNARY else (-3, 3)


class Membership(models.Model):
    """A user's role in one project. `project.members.add(user)` makes a membership whose role
    is blank: the user's global role, whatever it later becomes. The global role is the ceiling
    (a global annotator is never more than an annotator anywhere); annotate.access decides."""

    class Role(models.TextChoices):
        GLOBAL = "", "As the user's global role"
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"
        RESEARCHER = "researcher", "Researcher"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, blank=True, default=Role.GLOBAL)

    class Meta:
        # The table Django made for the plain many-to-many, kept: no copy of the rows.
        db_table = "annotate_project_members"
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.project_id} ({self.role or 'global role'})"


class Attribute(models.Model):
    """A rating attribute of a project, on an integer scale [min_value, max_value]."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="attributes")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    min_value = models.SmallIntegerField(default=0)
    max_value = models.SmallIntegerField(default=4)
    anchors = models.JSONField(default=dict, blank=True, help_text='{"0": "label", ...}')
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["project", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="attribute_unique_name"),
            models.CheckConstraint(
                condition=Q(max_value__gt=F("min_value")), name="attribute_scale_nonempty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.min_value}-{self.max_value})"


class Item(models.Model):
    class Role(models.TextChoices):
        TASK = "task", "Task"
        GOLD = "gold", "Gold (known answer)"
        ATTENTION = "attention", "Attention check"
        # A pair with an objectively correct answer (JudgeBench-style): a probe of judges.
        SANITY = "sanity", "Sanity (objectively correct answer)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200)
    prompt = models.TextField()
    # A multi-turn conversation, when the item has one: [{"role": "user"|"assistant"|"system",
    # "content": str}, ...], the last turn the one the responses answer. `prompt` then holds
    # that last user turn, so every reader of `prompt` keeps working.
    conversation = models.JSONField(null=True, blank=True)
    context = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.TASK)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_unique_external_id")
        ]
        indexes = [models.Index(fields=["project", "role"])]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.external_id}"


class Response(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    external_id = models.CharField(max_length=200)
    text = models.TextField()
    model = models.CharField(max_length=200, blank=True, help_text="The model that wrote it.")
    # Known answer for gold/attention items: {attribute name: value}.
    gold_ratings = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "external_id"], name="response_unique_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.item_id}:{self.external_id}"


class Pair(models.Model):
    """Two responses to one item; A and B are the stored order (what strengths refer to).

    A pair is unordered: (a, b) and its mirror (b, a) are one pair, so the database holds at
    most one of them (services.pair_get_or_create maps a mirror onto it, strengths negated)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="pairs")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="pairs_as_a")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="pairs_as_b")
    # Known answer for gold/attention items, in stored order.
    gold_strength = models.SmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "id"]
        constraints = [
            models.UniqueConstraint(
                Least("response_a", "response_b"), Greatest("response_a", "response_b"),
                name="pair_unordered_unique",
            ),
            models.CheckConstraint(
                condition=~Q(response_a=F("response_b")), name="pair_two_distinct_responses"
            ),
            models.CheckConstraint(
                condition=Q(gold_strength__isnull=True)
                | (Q(gold_strength__gte=-3) & Q(gold_strength__lte=3)),
                name="pair_gold_strength_in_scale",
            ),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.response_a_id} vs {self.response_b_id})"


class Rater(models.Model):
    """A human user or a model judge: the one author of every annotation."""

    class Kind(models.TextChoices):
        HUMAN = "human", "Human"
        JUDGE = "judge", "Judge"

    kind = models.CharField(max_length=5, choices=Kind.choices)
    name = models.CharField(max_length=200)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="rater"
    )
    # For a judge: the response model it *is*, so its own responses can be found (self-preference).
    model = models.CharField(max_length=200, blank=True)
    # Set for a rater an import created: it exists only inside that project, so an imported
    # "human:alice" is never the user alice, nor another project's "human:alice" or a real judge.
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="imported_raters"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "name"], condition=Q(project__isnull=True), name="rater_unique_kind_name"
            ),
            models.UniqueConstraint(
                fields=["project", "kind", "name"], condition=Q(project__isnull=False),
                name="rater_unique_in_project",
            ),
            models.CheckConstraint(
                condition=Q(project__isnull=True) | Q(user__isnull=True), name="rater_imported_has_no_user"
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(kind="human"), name="rater_user_only_for_humans"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


class ShownOrder(models.TextChoices):
    AB = "ab", "A shown first"
    BA = "ba", "B shown first"


class Rating(models.Model):
    # PROTECT: deleting a rater never takes its annotations with it (they are the research data).
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="ratings")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="ratings")
    attribute = models.ForeignKey(Attribute, on_delete=models.CASCADE, related_name="ratings")
    value = models.SmallIntegerField()
    # A judge's probability for each valid score, {"0": p0, ...}, and its expected score.
    probabilities = models.JSONField(null=True, blank=True)
    expected_value = models.FloatField(null=True, blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "response", "attribute"], name="rating_one_per_rater_response_attribute"
            ),
            # The attribute's own scale is checked in services (a check constraint cannot join);
            # this is the outer bound no declared scale may leave.
            models.CheckConstraint(
                condition=Q(value__gte=-100) & Q(value__lte=100), name="rating_value_bounded"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rater_id} rates {self.response_id} {self.attribute_id}={self.value}"


class Preference(models.Model):
    # PROTECT: deleting a rater never takes its annotations with it (they are the research data).
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="preferences")
    # Copied from the rater so the database can hold humans and judges to different uniqueness.
    rater_kind = models.CharField(max_length=5, choices=Rater.Kind.choices)
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="preferences")
    # Sign convention of HelpSteer2-Preference: negative = A (stored order) better.
    strength = models.SmallIntegerField()
    shown_order = models.CharField(max_length=2, choices=ShownOrder.choices, default=ShownOrder.AB)
    justification = models.TextField(blank=True)
    # A judge's verdict probabilities in stored order, {"A": p, "tie": p, "B": p}.
    probabilities = models.JSONField(null=True, blank=True)
    # A verdict without a strength (A / tie / B: a judge's [[A]]/[[B]]/[[C]], a ternary project):
    # strength then holds only its sign (-1, 0, 1) for the figures and claims no "slightly".
    verdict_only = models.BooleanField(default=False)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "pair"],
                condition=Q(rater_kind="human"),
                name="preference_one_per_human_and_pair",
            ),
            # A judge judges both shown orders: one preference per order.
            models.UniqueConstraint(
                fields=["rater", "pair", "shown_order"], name="preference_one_per_rater_pair_order"
            ),
            models.CheckConstraint(
                condition=Q(strength__gte=-3) & Q(strength__lte=3), name="preference_strength_in_scale"
            ),
            models.CheckConstraint(
                condition=Q(shown_order__in=["ab", "ba"]), name="preference_shown_order_valid"
            ),
            models.CheckConstraint(
                condition=Q(verdict_only=False) | (Q(strength__gte=-1) & Q(strength__lte=1)),
                name="preference_verdict_only_is_a_sign",
            ),
        ]
        indexes = [models.Index(fields=["pair", "rater"])]

    def __str__(self) -> str:
        return f"{self.rater_id} on pair {self.pair_id}: {self.strength} ({self.shown_order})"


class Assignment(models.Model):
    """A task handed to a human annotator: one response to rate or one pair to rank.

    The queue claims tasks by inserting Assignments under row locks; the unique constraints
    are the last word against two claims of the same task by one annotator.
    """

    class Protocol(models.TextChoices):
        RATING = "rating", "Rating"
        RANKING = "ranking", "Ranking"

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="assignments")
    protocol = models.CharField(max_length=7, choices=Protocol.choices)
    response = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="assignments"
    )
    pair = models.ForeignKey(
        Pair, null=True, blank=True, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.CLAIMED)
    shown_order = models.CharField(max_length=2, choices=ShownOrder.choices, default=ShownOrder.AB)
    # One key per task view: a replayed or doubled submit of the same view stores one annotation.
    view_key = models.UUIDField(unique=True)
    # A training-round task (annotate.training): the annotator is shown the expected answer after it.
    training = models.BooleanField(default=False)
    skip_reason = models.TextField(blank=True)
    # The values of an undone submission, so the re-shown task opens with them filled in.
    draft = models.JSONField(null=True, blank=True)
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    claimed_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rater", "response"],
                condition=Q(response__isnull=False),
                name="assignment_once_per_rater_response",
            ),
            models.UniqueConstraint(
                fields=["rater", "pair"],
                condition=Q(pair__isnull=False),
                name="assignment_once_per_rater_pair",
            ),
            models.CheckConstraint(
                condition=(Q(protocol="rating") & Q(response__isnull=False) & Q(pair__isnull=True))
                | (Q(protocol="ranking") & Q(pair__isnull=False) & Q(response__isnull=True)),
                name="assignment_one_task",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "rater", "status"]),
            models.Index(fields=["status", "expires_at"]),
            # Undo and the dashboard read a rater's newest completed assignments.
            models.Index(fields=["rater", "project", "completed_at"]),
            # The claim's per-task count of live assignments: one index probe per candidate.
            models.Index(fields=["response", "status", "expires_at"]),
            models.Index(fields=["pair", "status", "expires_at"]),
            # The "You n / N" and project counters (queue.progress_for) on every task page: done
            # main-queue tasks of the project and of the annotator, each an index-only count of
            # just those rows instead of a read of every assignment of the project.
            models.Index(
                fields=["project", "rater"], condition=Q(status="done", training=False), name="assignment_done_main",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.protocol} task for {self.rater_id} ({self.status})"


class AuditEvent(models.Model):
    """One recorded change: who, when, what (type + id), the action and the values before and after.

    Written only by `annotate.audit.audit_record`. The object is named, not linked: the trail
    outlives an undone annotation or an archived judge, and one table serves every model. Rows are
    never updated or deleted by the application (the admin shows them read-only)."""

    at = models.DateTimeField(db_index=True)
    # Null for the system (a judge worker, a management command) or a user since deleted;
    # actor_name keeps the username either way ("" for the system).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=100, help_text="app_label.model, e.g. annotate.rating")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "at"]),
            models.Index(fields=["actor", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.object_type}:{self.object_id}"


class Invite(models.Model):
    """An invitation into one project with a role: a link anyone holding it may use until it
    expires or is revoked, or one sent to an email address (used once). The link carries a
    signed token (annotate.members.invite_token) naming this row and its random key."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=10, choices=[c for c in Membership.Role.choices if c[0]])
    email = models.EmailField(blank=True, help_text="Blank for a link invite.")
    key = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="invites_made"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(role=""), name="invite_has_a_role"),
        ]

    def __str__(self) -> str:
        return f"invite to {self.project_id} as {self.role}" + (f" for {self.email}" if self.email else "")


class Study(models.Model):
    """A crowd-platform study (Prolific by default) that sends participants into one project.

    The platform opens the study link with the participant's id in a query parameter; the names
    of the parameters and the completion URL are per study, so any platform fits."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="studies")
    name = models.CharField(max_length=200)
    # The platform's own id of the study (Prolific's STUDY_ID); when set, a link whose study
    # parameter differs is refused.
    external_study_id = models.CharField(max_length=200, blank=True)
    pid_param = models.CharField(max_length=60, default="PROLIFIC_PID")
    study_param = models.CharField(max_length=60, default="STUDY_ID", blank=True)
    session_param = models.CharField(max_length=60, default="SESSION_ID", blank=True)
    quota = models.PositiveIntegerField(default=10, help_text="Tasks each participant does.")
    completion_code = models.CharField(max_length=100)
    # Where a participant who finished goes; "{code}" is replaced by the completion code.
    completion_url = models.CharField(
        max_length=500, default="https://app.prolific.com/submissions/complete?cc={code}"
    )
    # Where a participant who leaves without finishing goes (blank: a page of ours says so).
    return_url = models.CharField(max_length=500, blank=True)
    # The platform's code for a participant screened out (below the training round's bar, or held
    # back by the continuous check): sent through completion_url in place of the completion code
    # (Prolific: a completion code of type "screened out"). Blank: sent to return_url, else to a
    # page of ours that asks them to return the study.
    screened_out_code = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="studies_made"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Closed, not deleted: its participants and their annotations stay.
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quota__gte=1), name="study_quota_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Participant(models.Model):
    """One platform participant of a study: an account without a password, made on first visit.

    The same participant id in the same study is always the same participant (and account)."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="participants")
    external_id = models.CharField(max_length=64)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="participant")
    session_id = models.CharField(max_length=128, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    # Ended by the study, not by the participant: their standing (annotate.training) keeps them
    # out of the queue, so they left through the study's screened-out path.
    screened_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "started_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "external_id"], name="participant_once_per_study"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} in study {self.study_id}"


class Standing(models.Model):
    """Where an annotator stands in a project's onboarding and continuous check (annotate.training).

    No row: never started (training comes first where the project has one). Nothing annotated is
    ever deleted: "excluded" and "removed" only leave the annotator's annotations out of gold,
    reports and exports (and out of the queue); reinstating brings them back."""

    class State(models.TextChoices):
        TRAINING = "training", "In training"
        QUALIFIED = "qualified", "Qualified"
        FAILED = "failed", "Below the bar in training"
        PAUSED = "paused", "Paused by the continuous check"
        EXCLUDED = "excluded", "Excluded from gold and exports"
        REMOVED = "removed", "Removed (annotations kept, left out everywhere)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="standings")
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="standings")
    state = models.CharField(max_length=10, choices=State.choices, default=State.TRAINING)
    # The continuous check counts gold from here on: a reinstated annotator starts a fresh window.
    checked_since = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(auto_now=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["project", "rater"]
        constraints = [models.UniqueConstraint(fields=["project", "rater"], name="standing_once_per_rater")]

    def __str__(self) -> str:
        return f"{self.rater_id} in {self.project_id}: {self.state}"


class Adjudication(models.Model):
    """A reviewer's final verdict on a pair (annotate.adjudication). Never updated or deleted:
    a second decision is a new row, and the newest one counts."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="adjudications")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="adjudications"
    )
    # Stored order, like every strength: negative = A better.
    strength = models.SmallIntegerField()
    note = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pair", "-created_at", "-id"]
        indexes = [models.Index(fields=["pair", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(strength__gte=-3) & Q(strength__lte=3), name="adjudication_strength_in_scale"
            ),
        ]

    def __str__(self) -> str:
        return f"pair {self.pair_id} adjudicated {self.strength}"


class RoutingPolicy(models.Model):
    """How a project spends human labels on its regular pairs (annotate.routing). Off (uniform
    overlap, what every project did before) unless a researcher turns it on; the overlap cap is
    always the project's own `overlap`, so no policy can ask for more."""

    class Kind(models.TextChoices):
        UNIFORM = "uniform", "Off: uniform overlap"
        ADAPTIVE = "adaptive", "Adaptive overlap"
        JUDGE = "judge", "Judge routing"

    class Unsure(models.TextChoices):
        FULL = "full", "Full overlap"
        ADAPTIVE = "adaptive", "Adaptive overlap"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="routing_policy")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.UNIFORM)
    k = models.PositiveSmallIntegerField(default=2, help_text="Agreeing humans that close a pair.")
    # Judge routing: the judge (a rater of kind judge) whose calibrated confidence stands in for
    # one human, the confidence it needs, the share of confident pairs checked by humans anyway,
    # and what an unsure pair gets.
    judge = models.ForeignKey(Rater, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    threshold = models.FloatField(default=0.7)
    spot_check_rate = models.FloatField(default=0.1)
    unsure = models.CharField(max_length=8, choices=Unsure.choices, default=Unsure.FULL)
    # The bar a judge must meet on this project's human gold to route it (judge qualification).
    min_kappa = models.FloatField(default=0.4)
    min_consistency = models.FloatField(default=0.7)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=1), name="routing_k_positive"),
            models.CheckConstraint(
                condition=Q(threshold__gte=0) & Q(threshold__lte=1), name="routing_threshold_0_1"
            ),
            models.CheckConstraint(
                condition=Q(spot_check_rate__gte=0) & Q(spot_check_rate__lte=1), name="routing_spot_check_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}: {self.kind}"

    @property
    def active(self) -> bool:
        return self.kind != self.Kind.UNIFORM


class PairRouting(models.Model):
    """The current routing decision of a pair: the queue reads it (need_more, priority); the
    history of decisions, with their reasons, is RoutingDecision."""

    pair = models.OneToOneField(Pair, on_delete=models.CASCADE, related_name="routing")
    need_more = models.BooleanField(default=True)
    priority = models.FloatField(default=1.0)
    reason = models.CharField(max_length=32)
    humans = models.PositiveSmallIntegerField(default=0)
    # The judge signal the decision used, kept so that deciding again after one more human label
    # (on the submit path) need not refit the calibration over the whole project.
    judge_verdict = models.SmallIntegerField(null=True, blank=True)
    judge_confidence = models.FloatField(null=True, blank=True)
    judge_orders_agree = models.BooleanField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["need_more", "priority"])]

    def __str__(self) -> str:
        return f"pair {self.pair_id}: {self.reason}"


class RoutingDecision(models.Model):
    """Every routing decision, appended (never updated), so a report can say how each gold
    label was reached: the policy, the humans it had seen, the judge's confidence, the reason."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="routing_decisions")
    policy = models.CharField(max_length=10)
    humans = models.PositiveSmallIntegerField()
    need_more = models.BooleanField()
    priority = models.FloatField()
    reason = models.CharField(max_length=32)
    detail = models.CharField(max_length=200, blank=True)
    judge_confidence = models.FloatField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pair", "at", "id"]
        indexes = [models.Index(fields=["pair", "at"])]

    def __str__(self) -> str:
        return f"pair {self.pair_id} after {self.humans}: {self.reason}"


class ChecklistQuestion(models.Model):
    """One yes/no question of an item's checklist ("Does the response name three colours?").

    A checklist is imported with the item, written by a researcher, or generated by a judge model
    from the prompt (TICK); it is stored before use and editable. A question that has answers is
    never changed or deleted (its answers would then answer another question): editing retires
    it (`retired_at`) and adds the new wording."""

    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported with the item"
        RESEARCHER = "researcher", "Written by a researcher"
        GENERATED = "generated", "Generated by a judge model"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="checklist")
    text = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.RESEARCHER)
    retired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "position", "id"]
        indexes = [models.Index(fields=["item", "retired_at"])]

    def __str__(self) -> str:
        return f"{self.item_id} Q{self.position}: {self.text[:60]}"


class ChecklistAnswer(models.Model):
    """A rater's yes/no answer to one checklist question about one response: a human's from the
    rating task, a judge's read from the logits (P(yes) vs P(no), `probability` = P(yes))."""

    # PROTECT, as every annotation: deleting a rater never takes its answers along.
    rater = models.ForeignKey(Rater, on_delete=models.PROTECT, related_name="checklist_answers")
    question = models.ForeignKey(ChecklistQuestion, on_delete=models.PROTECT, related_name="answers")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="checklist_answers")
    answer = models.BooleanField()
    probability = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["rater", "question", "response"], name="checklist_answer_once"),
        ]

    def __str__(self) -> str:
        return f"{self.rater_id} on {self.question_id}/{self.response_id}: {'yes' if self.answer else 'no'}"
