from __future__ import annotations


class ConcordanceError(Exception):
    """A user-facing error: the message says what is wrong and where."""


class ValidationError(ConcordanceError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ImportFileError(ConcordanceError):
    """Bad input in an import file: names the file, line (1-based, or row) and field."""

    def __init__(self, message: str, *, path: str, line: int | None = None, field: str | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        if field:
            where += f" (field {field!r})"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
