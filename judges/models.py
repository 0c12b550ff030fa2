"""Model judges, their prompt templates, runs over a project, and every judgment they made.

A Judge is a Rater (one-to-one), so its ratings and preferences land in annotate's tables next
to the humans'; a Judgment keeps what only a model has: raw text, token probabilities, latency,
and the template version it used.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.models import (
    Attribute,
    ChecklistQuestion,
    Item,
    Pair,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
    ShownOrder,
)


class PromptTemplate(models.Model):
    """One version of a named template; editing a template writes a new version."""

    class Protocol(models.TextChoices):
        RATING = "rating", "Rating"
        RANKING = "ranking", "Ranking"

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    protocol = models.CharField(max_length=7, choices=Protocol.choices)
    system = models.TextField(blank=True)
    user = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="prompt_template_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Judge(models.Model):
    class Backend(models.TextChoices):
        TRANSFORMERS = "transformers", "transformers (local model)"
        OPENAI = "openai", "OpenAI-compatible server"

    class Dtype(models.TextChoices):
        AUTO = "auto", "auto (bf16/fp16 on GPU, fp32 on CPU)"
        FLOAT32 = "float32", "float32"
        BFLOAT16 = "bfloat16", "bfloat16"
        FLOAT16 = "float16", "float16"

    # The rater's `model` field holds the response model this judge *is* (self-preference).
    rater = models.OneToOneField(Rater, on_delete=models.CASCADE, related_name="judge")
    backend = models.CharField(max_length=12, choices=Backend.choices, default=Backend.TRANSFORMERS)
    model_ref = models.CharField(
        max_length=500, help_text="Local directory, cached hub id, or the model name on the server."
    )
    gguf_file = models.CharField(max_length=300, blank=True, help_text="GGUF file inside model_ref.")
    revision = models.CharField(max_length=100, blank=True)
    dtype = models.CharField(max_length=8, choices=Dtype.choices, default=Dtype.AUTO)
    device = models.CharField(max_length=20, default="auto", help_text="auto: cuda if present.")
    base_url = models.CharField(max_length=500, blank=True, help_text="OpenAI-compatible server.")
    # The name of an environment variable, never the key itself.
    api_key_env = models.CharField(max_length=100, blank=True)
    rating_template = models.ForeignKey(
        PromptTemplate, on_delete=models.PROTECT, related_name="+", limit_choices_to={"protocol": "rating"}
    )
    ranking_template = models.ForeignKey(
        PromptTemplate, on_delete=models.PROTECT, related_name="+", limit_choices_to={"protocol": "ranking"}
    )
    decoding = models.JSONField(
        default=dict, blank=True,
        help_text='{"max_new_tokens": 256, "rationale_tokens": 160, "temperature": 0, '
        '"batch_tokens": 16384, "max_batch_size": 64, "max_padding": null, "min_valid_mass": null}; '
        "min_valid_mass null: an answer counts only when the greedy next token is a valid label; "
        "a number t: the argmax over valid labels whenever they hold at least t of the mass (0: always).",
    )
    rationale = models.BooleanField(default=False, help_text="Write a rationale before the verdict.")
    # Who may edit it and where it may be used (annotate.access): the owner edits it; it is used
    # in the projects named here, or in every project of its owner's. No owner (the default
    # SmolLM2 judge, judges made before owners existed): usable in every project, edited by admins.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="judges"
    )
    shared_with = models.ManyToManyField(Project, blank=True, related_name="shared_judges")
    shared_with_owner_projects = models.BooleanField(
        default=True, help_text="Usable in every project its owner researches, not only those named."
    )
    # Archived, not deleted: its runs and judgments stay for reports; it leaves lists and runs.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rater__name"]

    def __str__(self) -> str:
        return self.rater.name


class Run(models.Model):
    class Kind(models.TextChoices):
        JUDGE = "judge", "Judge the project's responses and pairs"
        GENERATE = "generate", "Write new responses to the project's prompts"

    class Probe(models.TextChoices):
        # judges.probes: a probe run judges pairs to audit the judge, never to annotate them.
        NONE = "", "Not a probe"
        INJECTION = "injection", "Injection: an instruction to the judge appended to one response"
        SANITY = "sanity", "Sanity: pairs with an objectively correct answer"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    # PROTECT: a judge or project with runs is archived, never deleted out from under its judgments.
    judge = models.ForeignKey(Judge, on_delete=models.PROTECT, related_name="runs")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="judge_runs")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.JUDGE)
    protocols = models.JSONField(default=list)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many items.")
    # Which part of the project the run covers (judges.services.RUN_FILTERS): item roles, items
    # by external id, responses/pairs by the models that wrote them, and what the judge has not
    # judged yet. Empty: everything.
    filters = models.JSONField(default=dict, blank=True)
    # A probe run (judges.probes) stores verdicts in its judgments only, no ratings/preferences.
    probe = models.CharField(max_length=10, choices=Probe.choices, default=Probe.NONE, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    batch_size = models.PositiveIntegerField(default=16)
    # A claimed judgment whose worker has not finished it within this many seconds is taken to
    # be lost (killed worker) and handed out again.
    lease_seconds = models.PositiveIntegerField(default=300)
    # The current watchdog chain; a watchdog carrying another token stops (one chain per run).
    watch_token = models.CharField(max_length=32, blank=True)
    # Set when every judgment of the run exists (planning runs in a worker, judges.tasks.run_plan);
    # a run without it is still being planned, or its planner died and the watchdog plans it again.
    planned_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # A generate run's answer tokens so far, counted as they are written (the run page's
    # tokens per second while a batch is still in flight).
    generated_tokens = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"run {self.pk}: {self.judge} on {self.project} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.CANCELLED, self.Status.FAILED)


class Judgment(models.Model):
    """One unit of a run: a response on one attribute, a pair in one shown order, or an item
    to write a response for."""

    class Protocol(models.TextChoices):
        RATING = "rating", "Rating"
        RANKING = "ranking", "Ranking"
        GENERATE = "generate", "Generate"
        # A response against one checklist question (TICK), read as P(YES) vs P(NO).
        CHECKLIST = "checklist", "Checklist question"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CLAIMED = "claimed", "Claimed"
        OK = "ok", "OK"
        UNPARSEABLE = "unparseable", "Unparseable"
        ERROR = "error", "Error"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="judgments")
    protocol = models.CharField(max_length=9, choices=Protocol.choices)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    attribute = models.ForeignKey(Attribute, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    pair = models.ForeignKey(Pair, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    question = models.ForeignKey(ChecklistQuestion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    shown_order = models.CharField(max_length=2, choices=ShownOrder.choices, blank=True)
    # What a probe changed in the prompt (judges.probes.variant_parse): "" for the pair as it is,
    # "inject:a:2" for wording 2 appended to the stored response A.
    variant = models.CharField(max_length=40, blank=True, default="")
    # Prompt size in characters, known before tokenizing: batches are cut by it.
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=11, choices=Status.choices, default=Status.PENDING)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The claim holds until then; its worker renews it while the batch runs (a heartbeat), so
    # only the claims of a worker that died or hung run out and are handed out again.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    template = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    raw_text = models.TextField(blank=True)
    # Probability of each valid answer ({"0": p, ...} or {"A": p, "B": p, "C": p} in *shown*
    # order), and how they were read: logits, server logprobs, or text only.
    probabilities = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=8, blank=True)
    valid_mass = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=20, blank=True)
    expected_value = models.FloatField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Tokens read and written for this judgment, as the backend counted them (input ids, or the
    # server's `usage`); null for judgments stored before they were recorded or where a server
    # sends no usage. A run's live count of written tokens is Run.generated_tokens.
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    generated_tokens = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True)
    error = models.TextField(blank=True)
    rating = models.ForeignKey(Rating, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    preference = models.ForeignKey(Preference, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    generated = models.ForeignKey(Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        # A run holds each unit of work once, whatever the retries and redeliveries.
        constraints = [
            models.UniqueConstraint(
                fields=["run", "response", "attribute"], condition=Q(protocol="rating"),
                name="judgment_once_per_run_response_attribute",
            ),
            models.UniqueConstraint(
                fields=["run", "pair", "shown_order", "variant"], condition=Q(protocol="ranking"),
                name="judgment_once_per_run_pair_order",
            ),
            models.UniqueConstraint(
                fields=["run", "item"], condition=Q(protocol="generate"), name="judgment_once_per_run_item"
            ),
            models.UniqueConstraint(
                fields=["run", "response", "question"], condition=Q(protocol="checklist"),
                name="judgment_once_per_run_response_question",
            ),
            models.CheckConstraint(
                condition=(Q(protocol="rating") & Q(response__isnull=False) & Q(attribute__isnull=False))
                | (Q(protocol="ranking") & Q(pair__isnull=False) & Q(shown_order__in=["ab", "ba"]))
                | Q(protocol="generate")
                | (Q(protocol="checklist") & Q(response__isnull=False) & Q(question__isnull=False)),
                name="judgment_unit_complete",
            ),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"judgment {self.pk} ({self.protocol}, {self.status})"


class JudgeQualification(models.Model):
    """A judge or a panel measured against a project's human gold (gold items and pairs with
    enough human labels): accuracy, Cohen's kappa, position consistency and calibration error,
    each with its 95% bootstrap interval, and whether it met the project's bar on that date.
    Appended, never updated: the latest row is the rater's standing; the older ones its history.
    Exactly one of `judge` and `panel` is set (a panel is qualified as one rater, by the same
    figures and bar as a judge)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_qualifications")
    judge = models.ForeignKey(Judge, null=True, blank=True, on_delete=models.CASCADE, related_name="qualifications")
    panel = models.ForeignKey("Panel", null=True, blank=True, on_delete=models.CASCADE, related_name="qualifications")
    n = models.PositiveIntegerField(help_text="Pairs with human gold the judge was measured on.")
    accuracy = models.FloatField(null=True)
    accuracy_ci = models.JSONField(null=True)
    kappa = models.FloatField(null=True)
    kappa_ci = models.JSONField(null=True)
    consistency = models.FloatField(null=True, help_text="Share of pairs whose two shown orders agree.")
    consistency_ci = models.JSONField(null=True)
    ece = models.FloatField(null=True, help_text="Expected calibration error of the cross-fitted confidence.")
    ece_ci = models.JSONField(null=True)
    # The reliability diagram before (raw score) and after (cross-fitted isotonic) calibration.
    reliability = models.JSONField(default=dict)
    min_kappa = models.FloatField()
    min_consistency = models.FloatField()
    qualified = models.BooleanField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["project", "judge", "at"]), models.Index(fields=["project", "panel", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(judge__isnull=False, panel__isnull=True)
                | models.Q(judge__isnull=True, panel__isnull=False),
                name="judge_qualification_judge_xor_panel",
            )
        ]

    def __str__(self) -> str:
        who = f"judge {self.judge_id}" if self.judge_id is not None else f"panel {self.panel_id}"
        return f"{who} on {self.project_id}: {'qualified' if self.qualified else 'not qualified'}"

    @property
    def rater(self) -> Rater:
        """The rater qualified: the judge's or the panel's (routing and reports key by it)."""
        return self.judge.rater if self.judge is not None else self.panel.rater  # type: ignore[union-attr]


class Panel(models.Model):
    """Several judges acting as one rater on a project. Its verdicts are materialised as its own
    rater's Preferences (judges.panels.panel_refresh) so every report and export reads a panel
    as it reads a judge; they are recomputed whenever a member's run finishes."""

    class Rule(models.TextChoices):
        MAJORITY = "majority", "Majority vote of the members' verdicts"
        MEAN = "mean", "Mean of the members' calibrated probabilities"

    # kind "judge": a panel is a model rater, so it sits wherever judges sit (judge-vs-gold,
    # the evaluator leaderboard, exports' judge group); `project` scopes it to its project.
    rater = models.OneToOneField(Rater, on_delete=models.PROTECT, related_name="panel")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="panels")
    rule = models.CharField(max_length=8, choices=Rule.choices, default=Rule.MAJORITY)
    members = models.ManyToManyField(Judge, related_name="panels")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"{self.rater.name} ({self.get_rule_display()})"
