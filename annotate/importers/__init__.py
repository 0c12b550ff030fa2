"""Import prompts, responses and annotations: `import_files(project_name=, fmt=, paths=)` for files
on disk (the management command), `import_uploads(project_name=, fmt=, files=)` for uploads (the
import page and POST /api/projects/import/ both call it, so they handle uploads the same way)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..bounds import name_problem
from ..errors import ImportFileError, ValidationError
from .formats import PARSERS
from .gold import apply_gold, check_share, choose_gold, gold_candidates
from .spec import ParsedImport
from .writer import ImportResult, write_import

FORMATS: tuple[str, ...] = tuple(PARSERS)

__all__ = ["FORMATS", "ImportFileError", "ImportResult", "import_files", "import_uploads", "parse_batches", "parse_files"]


class Upload(Protocol):
    """What an uploaded file offers (Django's UploadedFile)."""

    name: str | None

    def chunks(self, chunk_size: int | None = None) -> Any: ...


def parse_batches(*, fmt: str, paths: list[Path]) -> Iterator[ParsedImport]:
    """The files parsed batch by batch (formats.PARSERS): a generator, so an error in the
    arguments is raised here, before the first batch is asked for."""
    if fmt not in PARSERS:
        raise ImportFileError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path="-")
    if not paths:
        raise ImportFileError("no files given", path="-")
    for path in paths:
        if not Path(path).is_file():
            raise ImportFileError("no such file", path=str(path))
    return PARSERS[fmt]([Path(p) for p in paths])


def parse_files(*, fmt: str, paths: list[Path]) -> ParsedImport:
    """The files parsed whole into one ParsedImport (for a look at a small file; the import
    itself streams)."""
    whole = ParsedImport()
    for parsed in parse_batches(fmt=fmt, paths=paths):
        whole.defaults = parsed.defaults
        for key, model in parsed.raters.items():
            whole.declare_rater(*key, model)
        for item_id, item in parsed.items.items():
            if not item.written:
                whole.items[item_id] = item
                continue
            earlier = whole.items[item_id]  # a csv item continued in a later batch
            earlier.responses.update(item.responses)
            earlier.gold_ratings += item.gold_ratings
            earlier.gold_pairs += item.gold_pairs
        whole.ratings += parsed.ratings
        whole.preferences += parsed.preferences
    return whole


def _with_gold(*, fmt: str, paths: list[Path], share: float) -> Iterator[ParsedImport]:
    """The batches with a share of the items made gold. Which items depends on all of them
    (the share of the candidates, ranked by a hash of their ids), so a first pass over the
    files finds the candidates and the second marks them as its batches go by."""
    candidates = [i for parsed in parse_batches(fmt=fmt, paths=paths) for i in gold_candidates(parsed)]
    chosen = choose_gold(candidates, share)
    del candidates
    for parsed in parse_batches(fmt=fmt, paths=paths):
        apply_gold(parsed, chosen)
        yield parsed


def import_files(
    *, project_name: str, fmt: str, paths: list[Path], user: Any = None, gold_share: float = 0.0
) -> ImportResult:
    """Parse the files batch by batch, check every value against the project's scales and
    write each batch, all in one transaction; raises ImportFileError (file, line, field) and
    writes nothing on bad input, wherever in the files it is. Memory is a batch and an index
    of the ids seen, not the files.

    gold_share: the share of items (with human labels) made gold items, their known answer
    what the file's humans said (importers.gold)."""
    problem = name_problem(project_name)
    if problem:
        raise ValidationError(f"A project name {problem}.", field="project")
    share = check_share(gold_share)
    batches = parse_batches(fmt=fmt, paths=paths)
    if share:
        batches = _with_gold(fmt=fmt, paths=paths, share=share)
    return write_import(project_name=project_name, parsed=batches, user=user)


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
