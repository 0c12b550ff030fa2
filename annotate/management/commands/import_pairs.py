from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.errors import ImportFileError
from annotate.importers import FORMATS, import_files


class Command(BaseCommand):
    help = "Import prompts, responses, pairs and annotations into a project (created if new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project name")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("paths", nargs="+", type=Path, help="files, in the order the format lists them")

    def handle(self, *args, project: str, fmt: str, paths: list[Path], **options) -> None:
        try:
            result = import_files(project_name=project, fmt=fmt, paths=paths)
        except ImportFileError as exc:
            raise CommandError(f"import failed, nothing was written: {exc}") from exc
        self.stdout.write(json.dumps(result.as_dict(), indent=2))
