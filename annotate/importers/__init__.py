"""Import prompts, responses and annotations: `import_files(project_name=, fmt=, paths=)` for files
on disk (the management command), `import_uploads(project_name=, fmt=, files=)` for uploads (the
import page and POST /api/projects/import/ both call it, so they handle uploads the same way)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..bounds import name_problem
from ..errors import ImportFileError, ValidationError
from .formats import PARSERS
from .gold import check_share, mark_gold
from .writer import ImportResult, write_import

FORMATS: tuple[str, ...] = tuple(PARSERS)

__all__ = ["FORMATS", "ImportFileError", "ImportResult", "import_files", "import_uploads", "parse_files"]


class Upload(Protocol):
    """What an uploaded file offers (Django's UploadedFile)."""

    name: str | None

    def chunks(self, chunk_size: int | None = None) -> Any: ...


def parse_files(*, fmt: str, paths: list[Path]):
    if fmt not in PARSERS:
        raise ImportFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path="-")
    if not paths:
        raise ImportFileError("no files given", path="-")
    for path in paths:
        if not Path(path).is_file():
            raise ImportFileError("no such file", path=str(path))
    return PARSERS[fmt]([Path(p) for p in paths])


def import_files(
    *, project_name: str, fmt: str, paths: list[Path], user: Any = None, gold_share: float = 0.0
) -> ImportResult:
    """Parse every file, check every value against the project's scales, then write it all in
    one transaction; raises ImportFileError (file, line, field) and writes nothing on bad input.

    gold_share: the share of items (with human labels) made gold items, their known answer
    what the file's humans said (importers.gold)."""
    problem = name_problem(project_name)
    if problem:
        raise ValidationError(f"A project name {problem}.", field="project")
    check_share(gold_share)
    parsed = parse_files(fmt=fmt, paths=paths)
    mark_gold(parsed, gold_share)
    return write_import(project_name=project_name, parsed=parsed, user=user)


def upload_name(upload: Upload, index: int) -> str:
    """The client's file name without any folder part (a name is only a label here)."""
    name = Path((upload.name or "").replace("\\", "/")).name
    return name if name not in ("", ".", "..") else f"file{index + 1}"


def import_uploads(
    *, project_name: str, fmt: str, files: Sequence[Upload], user: Any = None, gold_share: float = 0.0
) -> ImportResult:
    """import_files on uploaded files, in the order given. Each upload is written to a folder of
    its own, so two uploads with the same name never overwrite each other, and it keeps its
    client name, which an ImportFileError then names instead of the temporary path."""
    if not files:
        raise ImportFileError("no files given", path="-")
    with tempfile.TemporaryDirectory(prefix="concordance-import-") as tmp:
        paths: list[Path] = []
        names: dict[str, str] = {}
        for index, upload in enumerate(files):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            path = folder / upload_name(upload, index)
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            paths.append(path)
            names[str(path)] = path.name
        try:
            return import_files(project_name=project_name, fmt=fmt, paths=paths, user=user, gold_share=gold_share)
        except ImportFileError as exc:
            if str(exc.path) not in names:
                raise
            raise ImportFileError(exc.detail, path=names[str(exc.path)], line=exc.line, field=exc.field) from None
