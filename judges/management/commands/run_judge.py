"""python manage.py run_judge PROJECT JUDGE [--protocol rating --protocol ranking] [--limit N]
    [--role gold] [--item ID ...] [--model M ...] [--unjudged-only]

Starts a run (work goes to the Celery workers). PROJECT is a project id or name; JUDGE a judge
id or rater name, or "default" for the SmolLM2 judge. --wait polls until the run finishes.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.errors import ValidationError
from annotate.models import Project
from judges import selectors, services
from judges.models import Judge, Run


class Command(BaseCommand):
    help = "Start a judge run over a project (workers do the work)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project id or name")
        parser.add_argument("judge", help='judge id, rater name, or "default" (SmolLM2-135M-Instruct)')
        parser.add_argument("--protocol", action="append", choices=["rating", "ranking"], dest="protocols")
        parser.add_argument("--limit", type=int, default=None, help="at most this many items")
        parser.add_argument("--kind", choices=Run.Kind.values, default=Run.Kind.JUDGE)
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--lease-seconds", type=int, default=300,
                            help="a claim older than this is taken to be lost and handed out again")
        parser.add_argument("--role", action="append", dest="roles", choices=["task", "gold", "attention"],
                            help="only items of this role (repeatable)")
        parser.add_argument("--item", action="append", dest="items", help="only this item external id (repeatable)")
        parser.add_argument("--model", action="append", dest="models",
                            help="only responses by this model, and pairs holding one (repeatable)")
        parser.add_argument("--unjudged-only", action="store_true",
                            help="skip what this judge has already annotated")
        parser.add_argument("--wait", action="store_true", help="wait for the run to finish")

    def handle(self, *args: Any, **options: Any) -> None:
        project = _project(str(options["project"]))
        judge = _judge(str(options["judge"]))
        try:
            run = services.run_start(
                judge=judge, project=project, protocols=options["protocols"] or ["rating", "ranking"],
                kind=str(options["kind"]), limit=options["limit"], batch_size=int(options["batch_size"]),
                lease_seconds=int(options["lease_seconds"]),
                # Not a web request: plan here and say how many judgments were queued.
                plan_now=True,
                filters={"roles": options["roles"] or [], "items": options["items"] or [],
                         "models": options["models"] or [], "unjudged_only": bool(options["unjudged_only"])},
            )
        except (ValidationError, services.BrokerUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"run {run.pk}: {run.total} judgments queued ({judge} on {project})")
        while options["wait"] and not run.is_finished:
            time.sleep(2)
            run.refresh_from_db()
            p = selectors.run_progress(run=run)
            self.stdout.write(f"  {p.done}/{p.total} done, {p.unparseable} unparseable, {p.error} errors")
        if options["wait"]:
            self.stdout.write(f"run {run.pk}: {run.status}")


def _project(ref: str) -> Project:
    found = Project.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    found = found or Project.objects.filter(name=ref).first()
    if found is None:
        raise CommandError(f"No project {ref!r}.")
    return found


def _judge(ref: str) -> Judge:
    if ref == "default":
        return services.judge_get_or_create_default()
    found = Judge.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    found = found or Judge.objects.filter(rater__name=ref).first()
    if found is None:
        raise CommandError(f"No judge {ref!r} (use \"default\" for SmolLM2).")
    return found
