"""File names of exports, safe on every OS: every download and every written file takes its
name from here, so a project called "HS2: v1/test" never yields a colon (Windows and macOS
Finder refuse it), a slash (a folder) or a quote (which would end the Content-Disposition value).
"""

from __future__ import annotations

import re
import unicodedata

# Windows refuses these as a file's stem whatever the extension (Microsoft, "Naming Files, Paths,
# and Namespaces").
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{dev}{i}" for dev in ("com", "lpt") for i in range(1, 10)}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Room for a suffix such as ".disagreements.jsonl" under the common 255-byte limit.
MAX_STEM = 120


def safe_filename(name: str, *, fallback: str = "export") -> str:
    """`name` reduced to ASCII letters, digits, dot, dash and underscore; runs of anything else
    become one underscore; no leading dot (hidden on POSIX), no trailing dot (dropped by Windows),
    never a reserved device name, never empty."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._-")[:MAX_STEM].strip("._-")
    if not cleaned:
        return fallback
    if cleaned.split(".")[0].lower() in _RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


def export_stem(project_name: str, fmt: str) -> str:
    """The stem every export of `project_name` in format `fmt` is named with (no extension)."""
    return safe_filename(f"{project_name}-{fmt}")
