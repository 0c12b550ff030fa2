"""What every import format parses into, before anything touches the database.

Parsing is separate from writing so that a bad file is rejected whole (with file, line and
field) before a single row is written, and so every format shares one fast bulk writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RaterKey = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Where:
    path: str
    line: int | None = None


@dataclass
class ResponseSpec:
    external_id: str
    text: str
    model: str = ""


@dataclass
class ItemSpec:
    external_id: str
    prompt: str
    where: Where
    context: str = ""
    metadata: dict = field(default_factory=dict)
    role: str = "task"
    responses: dict[str, ResponseSpec] = field(default_factory=dict)
    # Pairs in stored order (response external ids); None = every two responses pair up.
    pairs: list[tuple[str, str]] | None = None
    # Checklist questions (TICK), in order; empty: none imported.
    checklist: list[str] = field(default_factory=list)


@dataclass
class RatingSpec:
    rater: RaterKey
    item: str
    response: str
    attribute: str
    value: object
    where: Where


@dataclass
class PreferenceSpec:
    rater: RaterKey
    item: str
    pair: tuple[str, str]
    strength: object
    where: Where
    shown_order: str = "ab"
    justification: str = ""


@dataclass
class ProjectDefaults:
    """How a format defines a project the import creates (an existing project keeps its own)."""

    protocols: str = "both"
    ranking_scale: str = "strength"
    attributes: list[dict] | None = None  # None: HelpSteer2's five 0-4 attributes


@dataclass
class ParsedImport:
    defaults: ProjectDefaults = field(default_factory=ProjectDefaults)
    raters: dict[RaterKey, str] = field(default_factory=dict)  # key -> response model it is
    items: dict[str, ItemSpec] = field(default_factory=dict)
    ratings: list[RatingSpec] = field(default_factory=list)
    preferences: list[PreferenceSpec] = field(default_factory=list)

    def declare_rater(self, kind: str, name: str, model: str = "") -> RaterKey:
        key = (kind, name)
        if model or key not in self.raters:
            self.raters[key] = model
        return key
