"""What every import format parses into, batch by batch, before the batch touches the database.

A parser yields ParsedImport batches (a few thousand items each for jsonl and csv, the whole
file for the published datasets' layouts), and one fast bulk writer writes them all in a single
transaction: a bad line anywhere (file, line, field) rolls every earlier batch back, and memory
is one batch plus a compact index of the ids seen, not the file.
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


# The item roles a file may name; a known answer ("gold") only on the checking roles.
ITEM_ROLES: tuple[str, ...] = ("task", "gold", "attention", "sanity")
CHECK_ROLES: tuple[str, ...] = ("gold", "attention", "sanity")


@dataclass
class GoldRatingSpec:
    """A known rating of one response on one attribute; `field` is how the file names it."""

    response: str
    attribute: str
    value: object
    field: str
    line: int | None = None  # None: the item's line


@dataclass
class GoldPairSpec:
    """A known strength of one pair, in the order the file names it (the writer maps it onto
    the stored order); `field` is how the file names it."""

    pair: tuple[str, str]
    strength: object
    field: str
    line: int | None = None  # None: the item's line


@dataclass
class ItemSpec:
    external_id: str
    prompt: str
    where: Where
    context: str = ""
    metadata: dict = field(default_factory=dict)
    role: str = "task"
    # The turns before and including `prompt` (annotate.conversation), or None for one prompt.
    conversation: list[dict] | None = None
    responses: dict[str, ResponseSpec] = field(default_factory=dict)
    # Pairs in stored order (response external ids); None = every two responses pair up.
    pairs: list[tuple[str, str]] | None = None
    gold_ratings: list[GoldRatingSpec] = field(default_factory=list)
    gold_pairs: list[GoldPairSpec] = field(default_factory=list)
    # Checklist questions (TICK), in order; empty: none imported.
    checklist: list[str] = field(default_factory=list)
    # An earlier batch of this import wrote the item's row (a csv item whose rows are not
    # together): this batch carries only its further responses, their pairs and gold.
    written: bool = False


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
