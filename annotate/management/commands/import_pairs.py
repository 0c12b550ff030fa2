from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.errors import ImportFileError, ValidationError
from annotate.importers import FORMATS, import_files


class Command(BaseCommand):
    help = "Import prompts, responses, pairs and annotations into a project (created if new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project name")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument(
            "--gold-share", type=float, default=0.0, dest="gold_share",
            help="share of the items with human labels to make gold items (0-1), their known answer the humans' labels",
        )
        parser.add_argument("paths", nargs="+", type=Path, help="files, in the order the format lists them")

    def handle(self, *args, project: str, fmt: str, paths: list[Path], gold_share: float = 0.0, **options) -> None:
        try:
            result = import_files(project_name=project, fmt=fmt, paths=paths, gold_share=gold_share)
        except (ImportFileError, ValidationError) as exc:
            raise CommandError(f"import failed, nothing was written: {exc}") from exc
        self.stdout.write(json.dumps(result.as_dict(), indent=2))
