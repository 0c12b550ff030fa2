"""python manage.py export PROJECT --format FORMAT --out PATH [filters]"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.errors import ValidationError
from annotate.models import Project
from exports.formats import DPO_SOURCES
from exports.selectors import RATER_GROUPS, ExportFilters, parse_splits
from exports.services import FORMATS, ExportOptions, export_write


class Command(BaseCommand):
    help = "Export a project's annotations (HelpSteer2, HelpSteer2-Preference, DPO, raw, Parquet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project name or id")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument(
            "--out", required=True, type=Path,
            help="file for the JSONL formats, base name for annotations (.csv + .parquet), folder for parquet",
        )
        parser.add_argument("--raters", choices=RATER_GROUPS, default="humans", help="rater group")
        parser.add_argument("--judge", default=None, help="only this judge (required for dpo from a judge)")
        parser.add_argument("--min-agreement", type=float, default=0.0)
        parser.add_argument("--exclude-gold", action="store_true")
        parser.add_argument("--exclude-attention", action="store_true")
        parser.add_argument("--splits", default="train=1", help="e.g. train=0.9,validation=0.1 (by item)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
        parser.add_argument("--dpo-source", choices=DPO_SOURCES, default="human")
        parser.add_argument("--licence", default="other", help="licence field of the dataset card")

    def handle(self, *args: object, **opts: object) -> None:
        project = _project(str(opts["project"]))
        try:
            filters = ExportFilters(
                rater_group=opts["raters"],  # type: ignore[arg-type]
                judge=opts["judge"] or None,  # type: ignore[arg-type]
                min_agreement=float(opts["min_agreement"]),  # type: ignore[arg-type]
                exclude_gold=bool(opts["exclude_gold"]),
                exclude_attention=bool(opts["exclude_attention"]),
                splits=parse_splits(str(opts["splits"])),
                seed=int(opts["seed"]),  # type: ignore[call-overload]
            )
            options = ExportOptions(
                format=str(opts["fmt"]), filters=filters,
                dpo_source=opts["dpo_source"],  # type: ignore[arg-type]
                licence=str(opts["licence"]),
            )
            started = time.perf_counter()
            result = export_write(
                project=project, options=options, out=opts["out"],  # type: ignore[arg-type]
                progress=_stderr_progress() if sys.stderr.isatty() else None,
            )
        except (ValidationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        seconds = time.perf_counter() - started
        for path in result.files:
            self.stdout.write(str(path))
        for name, n in result.rows.items():
            self.stdout.write(f"  {name}: {n} rows")
        self.stdout.write(self.style.SUCCESS(f"Exported {result.format} in {seconds:.1f}s"))


def _project(ref: str) -> Project:
    project = Project.objects.filter(name=ref).first()
    if project is None and ref.isdigit():
        project = Project.objects.filter(pk=int(ref)).first()
    if project is None:
        raise CommandError(f"No project named {ref!r}.")
    return project


def _stderr_progress():
    def report(done: int, total: int) -> None:
        sys.stderr.write(f"\r{done}/{total} items")
        if done >= total:
            sys.stderr.write("\n")

    return report
