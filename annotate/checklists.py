"""Checklists (TICK: Cook et al., 2024, "TICKing All the Boxes: Generated Checklists Improve LLM
Evaluation and Generation"): an item's yes/no questions, and raters' answers to them about a
response. Writes go through here (import, the researcher's page, the API, the judge's answers).

The checklist score of a response, by one rater, is the share of the item's live questions it
answered yes (TICK's "checklist pass rate"). Where the project has a rating attribute named
CHECKLIST_ATTRIBUTE, the score is also stored as that rater's rating on it, scaled to the
attribute's range and rounded half away from zero (annotate.verdicts.round_ratio), so every
rating figure (consistency, agreement, leaderboards) can use it like any other attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .audit import audit_record
from .bounds import text_problem
from .errors import ValidationError
from .models import Attribute, ChecklistAnswer, ChecklistQuestion, Item, Rater, Rating, Response
from .verdicts import round_ratio

CHECKLIST_ATTRIBUTE = "checklist"
MAX_QUESTIONS = 50
# One key per question in the rating task: letters the task's own shortcuts do not use
# (digits rate, j/k move, a/b/t rank, s skips, u undoes, g guidelines, Enter submits, ? helps).
QUESTION_KEYS = "qweryiophl"


# Set on an Item instance by a query that already asked whether it has live questions (the queue's
# task load, with has_live_questions): a task page then reads no checklist when there is none.
_NONE_LIVE = "_checklist_none_live"


def has_live_questions(item_ref: str = "item") -> Exists:
    """Whether the item at `item_ref` (an OuterRef path) has live questions: an annotation for a
    query that loads items anyway, so an item without a checklist costs no query of its own."""
    return Exists(ChecklistQuestion.objects.filter(item=OuterRef(item_ref), retired_at__isnull=True))


def mark_none_live(item: Item) -> None:
    item.__dict__[_NONE_LIVE] = True


def live_questions(item: Item | int) -> list[ChecklistQuestion]:
    if isinstance(item, Item) and item.__dict__.get(_NONE_LIVE):
        return []
    item_id = item if isinstance(item, int) else item.pk
    return list(ChecklistQuestion.objects.filter(item_id=item_id, retired_at__isnull=True).order_by("position", "id"))


def questions_clean(questions: Sequence[object]) -> list[str]:
    """Questions as stored: one line of text each, blanks dropped; errors name `checklist[i]`."""
    out: list[str] = []
    for i, q in enumerate(questions):
        if not isinstance(q, str):
            raise ValidationError("Each checklist question must be text.", field=f"checklist[{i}]")
        q = q.strip()
        if not q:
            continue
        if "\n" in q or text_problem(q):
            raise ValidationError("Each checklist question must be one line of printable text.", field=f"checklist[{i}]")
        out.append(q)
    if len(out) > MAX_QUESTIONS:
        raise ValidationError(f"A checklist holds at most {MAX_QUESTIONS} questions.", field="checklist")
    return out


def checklist_set(*, item: Item, questions: Sequence[object], source: str = ChecklistQuestion.Source.RESEARCHER) -> list[ChecklistQuestion]:
    """Make the item's live checklist `questions`, in order. A question kept word for word keeps
    its row (and its answers); a dropped or reworded question that has answers is retired, never
    deleted (its answers answer that wording); one without answers is deleted. Saving the same
    list again changes nothing."""
    wanted = questions_clean(questions)
    item.__dict__.pop(_NONE_LIVE, None)
    with transaction.atomic():
        Item.objects.select_for_update().filter(pk=item.pk).first()  # one editor at a time per item
        current = live_questions(item)
        before = [q.text for q in current]
        if before == wanted:
            return current
        by_text: dict[str, ChecklistQuestion] = {}
        for q in current:
            by_text.setdefault(q.text, q)
        kept: list[ChecklistQuestion] = []
        for position, text in enumerate(wanted):
            found = by_text.pop(text) if text in by_text else None
            if found is None:
                found = ChecklistQuestion.objects.create(item=item, text=text, position=position, source=source)
            elif found.position != position:
                found.position = position
                found.save(update_fields=["position"])
            kept.append(found)
        gone = [q.pk for q in current if q not in kept]
        answered = set(ChecklistAnswer.objects.filter(question_id__in=gone).values_list("question_id", flat=True))
        ChecklistQuestion.objects.filter(pk__in=answered).update(retired_at=timezone.now())
        ChecklistQuestion.objects.filter(pk__in=set(gone) - answered).delete()
        audit_record(action="item.checklist", obj=item, before={"checklist": before}, after={"checklist": wanted})
    return kept


def answers_submit(
    *, rater: Rater, response: Response, answers: Mapping[int, bool], probabilities: Mapping[int, float] | None = None,
) -> list[ChecklistAnswer]:
    """Store a rater's answers (question id -> yes) about a response; a replay stores the same
    rows (one per rater, question and response), a changed answer replaces the old one. Then the
    checklist score as a rating, where the project has the checklist attribute."""
    questions = {q.pk: q for q in live_questions(response.item_id)}
    unknown = [qid for qid in answers if qid not in questions]
    if unknown:
        raise ValidationError(f"Question {unknown[0]} is not on this item's checklist.", field="checklist")
    probabilities = probabilities or {}
    rows = [ChecklistAnswer(rater=rater, question_id=qid, response=response, answer=bool(yes),
                            probability=probabilities.get(qid)) for qid, yes in answers.items()]
    with transaction.atomic():
        ChecklistAnswer.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["rater", "question", "response"],
            update_fields=["answer", "probability", "updated_at"],
        )
        score_rating_store(rater=rater, response=response)
    return rows


def score(*, rater: Rater, response: Response) -> tuple[int, int] | None:
    """(yes answers, live questions) of the rater about the response, or None until it has
    answered every live question (a partial checklist has no score)."""
    live = [q.pk for q in live_questions(response.item_id)]
    if not live:
        return None
    answers = dict(ChecklistAnswer.objects.filter(rater=rater, response=response, question_id__in=live)
                   .values_list("question_id", "answer"))
    if len(answers) < len(live):
        return None
    return sum(answers.values()), len(live)


def scaled(yes: int, total: int, *, low: int, high: int) -> int:
    """The share yes/total on the integer scale [low, high]: low + (high - low) * yes / total,
    rounded half away from zero. 2 of 3 on 0..4 -> 8/3 = 2.67 -> 3; 1 of 2 on 0..3 -> 1.5 -> 2."""
    return low + round_ratio((high - low) * yes, total)


def score_rating_store(*, rater: Rater, response: Response) -> Rating | None:
    """The checklist score as the rater's rating on the project's checklist attribute, if the
    project has one and the rater has answered the whole checklist."""
    attribute = Attribute.objects.filter(project_id=response.item.project_id, name=CHECKLIST_ATTRIBUTE).first()
    result = score(rater=rater, response=response)
    if attribute is None or result is None:
        return None
    value = scaled(*result, low=attribute.min_value, high=attribute.max_value)
    rating, _ = Rating.objects.update_or_create(rater=rater, response=response, attribute=attribute,
                                                defaults={"value": value})
    return rating
