"""What the database can hold: the one place API fields, query filters and import parsers check
a value against before it reaches a query, so bad input is a 400 naming the field, not a 500.

PostgreSQL refuses a NUL character in text and in jsonb strings, stores integer columns in
16, 32 or 64 bits, and a project's name ends up in file names and HTTP headers (exports), where a
newline or another control character breaks them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

# PostgreSQL's integer types (Django: Small*/Positive*/Integer/BigAutoField).
SMALLINT_MIN, SMALLINT_MAX = -(2**15), 2**15 - 1
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1
BIGINT_MAX = 2**63 - 1  # ids (DEFAULT_AUTO_FIELD is BigAutoField)

# Column lengths of the fields the API and imports write (annotate.models).
NAME_LENGTH = 200  # Project.name, Rater.name
EXTERNAL_ID_LENGTH = 200  # Item.external_id, Response.external_id
MODEL_LENGTH = 200  # Response.model, Rater.model
ATTRIBUTE_NAME_LENGTH = 100  # Attribute.name

# Deeper JSON than this is no annotation data anyone writes; it only costs recursion.
JSON_MAX_DEPTH = 32


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store this text, or None."""
    if "\x00" in value:
        return "must not contain NUL (\\x00) characters"
    return None


def json_problem(value: object, *, depth: int = 0) -> str | None:
    """Why this JSON value cannot be stored in a jsonb column (NUL in a key or string, or nesting
    deeper than JSON_MAX_DEPTH), or None."""
    if depth > JSON_MAX_DEPTH:
        return f"nests deeper than {JSON_MAX_DEPTH} levels"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            problem = text_problem(str(key)) or json_problem(inner, depth=depth + 1)
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for inner in value:
            problem = json_problem(inner, depth=depth + 1)
            if problem:
                return problem
    return None


def name_problem(value: str, *, max_length: int = NAME_LENGTH) -> str | None:
    """Why this is not a usable name (of a project): blank, too long, or holding a control or
    line-separator character (it is written into export file names and headers)."""
    if not value.strip():
        return "must not be blank"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in _BIDI_CONTROLS:
            return f"must be one line of printable text; it contains {char!r}"
    return None


# Explicit direction overrides and isolates: they make a file name read differently than it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
