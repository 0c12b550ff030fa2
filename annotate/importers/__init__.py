"""Import prompts, responses and annotations: `import_files(project_name=, fmt=, paths=)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bounds import name_problem
from ..errors import ImportFileError, ValidationError
from .formats import PARSERS
from .writer import ImportResult, write_import

FORMATS: tuple[str, ...] = tuple(PARSERS)

__all__ = ["FORMATS", "ImportFileError", "ImportResult", "import_files", "parse_files"]


def parse_files(*, fmt: str, paths: list[Path]):
    if fmt not in PARSERS:
        raise ImportFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path="-")
    if not paths:
        raise ImportFileError("no files given", path="-")
    for path in paths:
        if not Path(path).is_file():
            raise ImportFileError("no such file", path=str(path))
    return PARSERS[fmt]([Path(p) for p in paths])


def import_files(*, project_name: str, fmt: str, paths: list[Path], user: Any = None) -> ImportResult:
    """Parse every file, check every value against the project's scales, then write it all in
    one transaction; raises ImportFileError (file, line, field) and writes nothing on bad input."""
    problem = name_problem(project_name)
    if problem:
        raise ValidationError(f"A project name {problem}.", field="project")
    parsed = parse_files(fmt=fmt, paths=paths)
    return write_import(project_name=project_name, parsed=parsed, user=user)
