"""Gold from a dataset's own human labels: `mark_gold(parsed, share)` turns a share of the
imported items into gold items whose known answer is what the dataset's humans said (HelpSteer2's
aggregated ratings, PandaLM's three annotators, HelpSteer2-Preference's strengths).

The items are chosen by a hash of their external id, not at random: importing the same file
with the same share again picks the same items, so a re-import changes nothing."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from ..errors import ValidationError
from ..verdicts import gold_strength_from, round_ratio
from .spec import GoldPairSpec, GoldRatingSpec, ParsedImport

FIELD = "gold_share"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rank(external_id: str) -> str:
    return hashlib.sha1(external_id.encode("utf-8")).hexdigest()


def check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValidationError("gold_share is a share of the items, from 0 to 1.", field=FIELD)
    return float(share)


def gold_candidates(parsed: ParsedImport) -> list[str]:
    """The task items of one batch with at least one human label (an integer one: values that
    are not integers are left out here, and the writer's checks then name them with file and
    line). A batch holds its items' labels (a jsonl item's are on its line)."""
    labelled = {r.item for r in parsed.ratings if r.rater[0] == "human" and _is_int(r.value)}
    labelled.update(p.item for p in parsed.preferences if p.rater[0] == "human" and _is_int(p.strength))
    return [i for i, spec in parsed.items.items() if spec.role == "task" and i in labelled]


def choose_gold(candidates: list[str], share: float) -> set[str]:
    """round(share x candidates) of them, the same ones on every import of the same file."""
    share = check_share(share)
    if share == 0:
        return set()
    if not candidates:
        raise ValidationError("This import has no human labels to make gold items from.", field=FIELD)
    return set(sorted(candidates, key=_rank)[: round(share * len(candidates))])


def apply_gold(parsed: ParsedImport, chosen: set[str]) -> int:
    """Make the chosen items of this batch gold, their known answer what its humans said;
    returns how many."""
    mine = [i for i in parsed.items if i in chosen]
    if not mine:
        return 0
    wanted = set(mine)
    ratings: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in parsed.ratings:
        if r.item in wanted and r.rater[0] == "human" and _is_int(r.value):
            ratings[r.item][(r.response, r.attribute)].append(r.value)  # type: ignore[arg-type]
    strengths: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(list))
    for p in parsed.preferences:
        if p.item in wanted and p.rater[0] == "human" and _is_int(p.strength):
            strengths[p.item][p.pair].append(p.strength)  # type: ignore[arg-type]
    for item_id in mine:
        item = parsed.items[item_id]
        item.role = "gold"
        for (response, attribute), values in ratings.get(item_id, {}).items():
            # Several humans: their mean, rounded half away from zero (the exports' rule).
            value = round_ratio(sum(values), len(values))
            item.gold_ratings.append(GoldRatingSpec(response, attribute, value, attribute))
        for pair, votes in strengths.get(item_id, {}).items():
            item.gold_pairs.append(GoldPairSpec(pair, gold_strength_from(votes), "strength"))
    return len(mine)


def mark_gold(parsed: ParsedImport, share: float) -> int:
    """Make round(share x candidates) items of one whole import gold, where a candidate is a
    task item with at least one human label; returns how many."""
    return apply_gold(parsed, choose_gold(gold_candidates(parsed), share))
