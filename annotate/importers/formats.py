"""Parsers, one per import format. Each reads its files (in the order the format lists them)
into ParsedImport batches (jsonl and csv stream, a few thousand items a batch) and raises
ImportFileError naming file, line and field on bad input."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..bounds import EXTERNAL_ID_LENGTH, JSON_MAX_DEPTH, MODEL_LENGTH, NAME_LENGTH, json_problem, text_problem
from ..conversation import conversation_problem, from_helpsteer2, last_user_turn
from ..errors import ImportFileError
from .seen import SeenIds
from .spec import (
    CHECK_ROLES,
    ITEM_ROLES,
    GoldPairSpec,
    GoldRatingSpec,
    ItemSpec,
    ParsedImport,
    PreferenceSpec,
    ProjectDefaults,
    RatingSpec,
    ResponseSpec,
    Where,
)

csv.field_size_limit(1 << 28)

_BOM = b"\xef\xbb\xbf"
_TOO_DEEP = f"JSON nests too deeply to read (more than {JSON_MAX_DEPTH} levels is never annotation data)"


# --- Reading text: every decoding error becomes file:line ----------------------------------


def _decode_line(raw: bytes, path: Path, number: int) -> str:
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if b"\x00" in raw:
        # No UTF-8 text holds a NUL byte; an image, archive or spreadsheet does.
        raise ImportFileError("this is a binary file, not UTF-8 text (it holds NUL bytes)", path=str(path), line=number)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"not valid UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8",
            path=str(path), line=number,
        ) from None


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines (with their endings), decoded one at a time: constant memory, and a bad
    byte is reported with its line."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, _decode_line(raw, path, number)


def _csv_rows(path: Path, reader: Any) -> Iterator[Any]:
    """Rows of a csv reader (or DictReader) over _text_lines, with csv's own errors (a NUL, an
    unterminated quote, a quote inside a field) as ImportFileError at the line they stopped on."""
    try:
        yield from reader
    except csv.Error as exc:
        raise ImportFileError(f"malformed CSV: {exc}", path=str(path), line=reader.line_num or 1) from None


def _csv_lines(path: Path) -> Iterable[str]:
    return (text for _, text in _text_lines(path))


def _digest(*parts: str) -> str:
    """A stable external id for formats that identify things by their text."""
    h = hashlib.sha1()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def _require(row: dict, key: str, where: Where, kind: type | tuple[type, ...] = str) -> Any:
    if key not in row or row[key] is None:
        raise ImportFileError("missing required field", path=where.path, line=where.line, field=key)
    value = row[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int to isinstance; a JSON true is not a valid id or label.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ImportFileError(
            f"expected {names}, got {type(value).__name__} {value!r:.60}",
            path=where.path, line=where.line, field=key,
        )
    return value


def _text(row: dict, key: str, where: Where) -> str:
    value = _require(row, key, where, (str, int, float, bool))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=str(path), line=number) from exc
        except RecursionError:
            raise ImportFileError(_TOO_DEEP, path=str(path), line=number) from None
        if not isinstance(row, dict):
            raise ImportFileError("each line must be a JSON object", path=str(path), line=number)
        yield number, row


def _read_json_list(path: Path) -> list[dict]:
    """A JSON file holding one list of objects (PandaLM's layout); a row's 'line' is its position."""
    raw = path.read_bytes()
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise ImportFileError("this is a binary file, not UTF-8 text (it holds NUL bytes)", path=str(path), line=line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportFileError("not valid UTF-8 text; save the file as UTF-8", path=str(path), line=line) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc
    except RecursionError:
        raise ImportFileError(_TOO_DEEP, path=str(path), line=1) from None
    if not isinstance(data, list):
        raise ImportFileError(f"expected a JSON list of objects, got {type(data).__name__}", path=str(path), line=1)
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise ImportFileError(f"expected an object, got {type(row).__name__}", path=str(path), line=index + 1)
    return data


def _parse_rater(text: object, where: Where, field: str) -> tuple[str, str]:
    if not isinstance(text, str) or ":" not in text:
        raise ImportFileError(
            f"a rater is written 'human:NAME' or 'judge:NAME', got {text!r}", path=where.path, line=where.line, field=field
        )
    kind, name = text.split(":", 1)
    if kind not in ("human", "judge") or not name:
        raise ImportFileError(
            f"a rater is written 'human:NAME' or 'judge:NAME', got {text!r:.80}", path=where.path, line=where.line, field=field
        )
    _check_name(name, where, field)
    return kind, name


def _check_name(name: str, where: Where, field: str) -> None:
    problem = text_problem(name) or (
        f"is longer than {NAME_LENGTH} characters" if len(name) > NAME_LENGTH else None
    )
    if problem:
        raise ImportFileError(f"a rater's name {problem}", path=where.path, line=where.line, field=field)


# --- jsonl --------------------------------------------------------------------------------


# Items a batch of a streaming import holds (jsonl items, csv rows): a few MB of text, and few
# enough round trips per batch that the writer's COPY dominates.
BATCH_ITEMS = 5000


def parse_jsonl(paths: list[Path]) -> Iterator[ParsedImport]:
    """The files' items in batches of BATCH_ITEMS; a line may declare raters."""
    parsed = ParsedImport()
    seen = SeenIds()
    for path in paths:
        for number, row in _read_jsonl(path):
            where = Where(str(path), number)
            if "raters" in row and "id" not in row:
                _jsonl_raters(parsed, row["raters"], where)
                continue
            _jsonl_item(parsed, row, where, seen)
            if len(parsed.items) >= BATCH_ITEMS:
                yield parsed
                parsed = ParsedImport()
    yield parsed


def _jsonl_raters(parsed: ParsedImport, raters: object, where: Where) -> None:
    if not isinstance(raters, list):
        raise ImportFileError("'raters' must be a list", path=where.path, line=where.line, field="raters")
    for i, rater in enumerate(raters):
        if not isinstance(rater, dict):
            raise ImportFileError("each rater must be an object", path=where.path, line=where.line, field=f"raters[{i}]")
        name = _require(rater, "name", where)
        _check_name(name, where, f"raters[{i}].name")
        kind = rater.get("kind", "human")
        if kind not in ("human", "judge"):
            raise ImportFileError(f"kind must be 'human' or 'judge', got {kind!r}", path=where.path, line=where.line, field=f"raters[{i}].kind")
        model = rater.get("model") or ""
        if model and kind != "judge":
            raise ImportFileError("only a judge has a response model of its own", path=where.path, line=where.line, field=f"raters[{i}].model")
        parsed.declare_rater(kind, name, model)


def _jsonl_item(parsed: ParsedImport, row: dict, where: Where, seen: SeenIds) -> None:
    item_id = str(_require(row, "id", where, (str, int)))
    first = seen.add(item_id, where.line or 0)
    if first is not None:
        raise ImportFileError(f"item id {item_id!r} appears twice (first at line {first})", path=where.path, line=where.line, field="id")
    role = row.get("role", "task")
    if role not in ITEM_ROLES:
        raise ImportFileError(f"role must be one of {', '.join(ITEM_ROLES)}, got {role!r}", path=where.path, line=where.line, field="role")
    prompt, conversation = _jsonl_conversation(row, where)
    item = ItemSpec(
        external_id=item_id, prompt=prompt, where=where,
        context=row.get("context") or "", metadata=row.get("metadata") or {}, role=role,
        conversation=conversation,
    )
    responses = _require(row, "responses", where, list)
    if len(responses) < 1:
        raise ImportFileError("an item needs at least one response", path=where.path, line=where.line, field="responses")
    for i, response in enumerate(responses):
        if not isinstance(response, dict):
            raise ImportFileError("each response must be an object", path=where.path, line=where.line, field=f"responses[{i}]")
        rid = str(_require(response, "id", where, (str, int)))
        if rid in item.responses:
            raise ImportFileError(f"response id {rid!r} appears twice in this item", path=where.path, line=where.line, field=f"responses[{i}].id")
        text = response.get("text")
        if not isinstance(text, str):
            raise ImportFileError("missing or non-string text", path=where.path, line=where.line, field=f"responses[{i}].text")
        model = response.get("model") or ""
        if not isinstance(model, str):
            raise ImportFileError("model must be a string", path=where.path, line=where.line, field=f"responses[{i}].model")
        item.responses[rid] = ResponseSpec(rid, text, model)
    if "pairs" in row:
        pairs = _require(row, "pairs", where, list)
        item.pairs = []
        for i, pair in enumerate(pairs):
            item.pairs.append(_jsonl_pair_ref(item, pair, where, f"pairs[{i}]"))
    if "gold" in row:
        _jsonl_gold(item, row["gold"], where)
    check_gold_role(item)
    item.checklist = checklist_field(row.get("checklist"), where)
    parsed.items[item_id] = item
    for i, rating in enumerate(row.get("ratings") or []):
        f = f"ratings[{i}]"
        if not isinstance(rating, dict):
            raise ImportFileError("each rating must be an object", path=where.path, line=where.line, field=f)
        rater = _parse_rater(rating.get("rater"), where, f + ".rater")
        parsed.declare_rater(*rater)
        rid = str(_require(rating, "response", where, (str, int)))
        if rid not in item.responses:
            raise ImportFileError(f"rating names unknown response {rid!r}", path=where.path, line=where.line, field=f + ".response")
        attribute = _require(rating, "attribute", where)
        parsed.ratings.append(RatingSpec(rater, item_id, rid, attribute, rating.get("value"), where))
    for i, pref in enumerate(row.get("preferences") or []):
        f = f"preferences[{i}]"
        if not isinstance(pref, dict):
            raise ImportFileError("each preference must be an object", path=where.path, line=where.line, field=f)
        rater = _parse_rater(pref.get("rater"), where, f + ".rater")
        parsed.declare_rater(*rater)
        a, b = _jsonl_pair_ref(item, pref.get("pair"), where, f + ".pair")
        strength = pref.get("strength")
        stored = _stored_pairs(item)
        if (a, b) not in stored and (b, a) in stored:
            # Written against the mirrored order: flip the sign so strength refers to stored A/B.
            a, b = b, a
            strength = -strength if isinstance(strength, int) and not isinstance(strength, bool) else strength
        elif (a, b) not in stored:
            raise ImportFileError(f"preference names pair {[a, b]} which this item does not have", path=where.path, line=where.line, field=f + ".pair")
        shown = pref.get("shown_order", "ab")
        if shown not in ("ab", "ba"):
            raise ImportFileError(f"shown_order must be 'ab' or 'ba', got {shown!r}", path=where.path, line=where.line, field=f + ".shown_order")
        justification = pref.get("justification") or ""
        if not isinstance(justification, str) or text_problem(justification):
            raise ImportFileError(
                "justification must be text without NUL characters", path=where.path, line=where.line,
                field=f + ".justification",
            )
        parsed.preferences.append(PreferenceSpec(rater, item_id, (a, b), strength, where, shown, justification))


def _checked_conversation(value: object, where: Where, field: str = "conversation") -> list[dict]:
    problem = conversation_problem(value)
    if problem:
        raise ImportFileError(problem.message, path=where.path, line=where.line, field=field + problem.where)
    assert isinstance(value, list)
    return value


def _jsonl_conversation(row: dict, where: Where) -> tuple[str, list[dict] | None]:
    """An item's prompt and conversation: `conversation` (a list of turns) instead of, or beside,
    `prompt`; the prompt is then the last user turn, and a `prompt` that says otherwise is refused
    rather than one of the two silently winning."""
    if row.get("conversation") is None:
        return _require(row, "prompt", where), None
    turns = _checked_conversation(row["conversation"], where)
    prompt = last_user_turn(turns)
    if row.get("prompt") is not None and row["prompt"] != prompt:
        raise ImportFileError(
            "prompt differs from the conversation's last user turn; give one of them, or the same text",
            path=where.path, line=where.line, field="prompt",
        )
    return prompt, turns


def _jsonl_gold(item: ItemSpec, gold: object, where: Where) -> None:
    """`"gold": {"ratings": [{"response", "attribute", "value"}], "pairs": [{"pair": [id, id],
    "strength"}]}`: the known answer of a gold, attention or sanity item."""
    if not isinstance(gold, dict):
        raise ImportFileError("gold must be an object with ratings and/or pairs", path=where.path, line=where.line, field="gold")
    unknown = sorted(set(gold) - {"ratings", "pairs"})
    if unknown:
        raise ImportFileError(f"unknown key(s) {', '.join(unknown)}; gold holds ratings and pairs", path=where.path, line=where.line, field="gold")
    ratings = gold.get("ratings") or []
    if not isinstance(ratings, list):
        raise ImportFileError("gold.ratings must be a list", path=where.path, line=where.line, field="gold.ratings")
    seen: set[tuple[str, str]] = set()
    for i, rating in enumerate(ratings):
        f = f"gold.ratings[{i}]"
        if not isinstance(rating, dict):
            raise ImportFileError("each gold rating must be an object", path=where.path, line=where.line, field=f)
        rid = str(_require(rating, "response", where, (str, int)))
        if rid not in item.responses:
            raise ImportFileError(f"gold rating names unknown response {rid!r}", path=where.path, line=where.line, field=f + ".response")
        attribute = _require(rating, "attribute", where)
        if (rid, attribute) in seen:
            raise ImportFileError(f"gold names response {rid!r}'s {attribute} twice", path=where.path, line=where.line, field=f + ".attribute")
        seen.add((rid, attribute))
        if "value" not in rating:
            raise ImportFileError("missing required field", path=where.path, line=where.line, field=f + ".value")
        item.gold_ratings.append(GoldRatingSpec(rid, attribute, rating["value"], f + ".value"))
    pairs = gold.get("pairs") or []
    if not isinstance(pairs, list):
        raise ImportFileError("gold.pairs must be a list", path=where.path, line=where.line, field="gold.pairs")
    stored = _stored_pairs(item)
    named: set[frozenset[str]] = set()
    for i, entry in enumerate(pairs):
        f = f"gold.pairs[{i}]"
        if not isinstance(entry, dict):
            raise ImportFileError("each gold pair must be an object", path=where.path, line=where.line, field=f)
        a, b = _jsonl_pair_ref(item, entry.get("pair"), where, f + ".pair")
        if (a, b) not in stored and (b, a) not in stored:
            raise ImportFileError(f"gold names pair {[a, b]} which this item does not have", path=where.path, line=where.line, field=f + ".pair")
        if frozenset((a, b)) in named:
            raise ImportFileError(f"gold names pair {[a, b]} twice", path=where.path, line=where.line, field=f + ".pair")
        named.add(frozenset((a, b)))
        if "strength" not in entry:
            raise ImportFileError("missing required field", path=where.path, line=where.line, field=f + ".strength")
        item.gold_pairs.append(GoldPairSpec((a, b), entry["strength"], f + ".strength"))


def check_gold_role(item: ItemSpec, field: str = "gold", has_gold: bool | None = None) -> None:
    """A known answer belongs to a checking item, and a checking item needs one: a gold item
    without an answer would count every annotator as failing (or passing) nothing. has_gold:
    whether it has one, where its answers are not all on `item` (csv, in batches)."""
    w = item.where
    if has_gold is None:
        has_gold = bool(item.gold_ratings or item.gold_pairs)
    if has_gold and item.role not in CHECK_ROLES:
        raise ImportFileError(
            f"item {item.external_id!r} has a known answer but role {item.role!r}; give it role gold, attention or sanity",
            path=w.path, line=w.line, field="role",
        )
    if item.role in CHECK_ROLES and not has_gold:
        raise ImportFileError(
            f"a {item.role} item needs its known answer (gold ratings or a gold pair strength)",
            path=w.path, line=w.line, field=field,
        )


CHECKLIST_MAX_QUESTIONS = 50


def checklist_field(value: object, where: Where) -> list[str]:
    """An item's checklist (TICK): a list of yes/no questions, each one line of text; a CSV cell
    holds them one per line. Absent or empty: no checklist."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [q for q in value.splitlines() if q.strip()]
    if not isinstance(value, list):
        raise ImportFileError("checklist must be a list of questions", path=where.path, line=where.line, field="checklist")
    if len(value) > CHECKLIST_MAX_QUESTIONS:
        raise ImportFileError(f"a checklist holds at most {CHECKLIST_MAX_QUESTIONS} questions", path=where.path,
                              line=where.line, field="checklist")
    out = []
    for i, q in enumerate(value):
        if not isinstance(q, str) or not q.strip() or "\n" in q.strip() or text_problem(q):
            raise ImportFileError("each checklist question must be one line of text", path=where.path, line=where.line,
                                  field=f"checklist[{i}]")
        out.append(q.strip())
    return out


def _jsonl_pair_ref(item: ItemSpec, pair: object, where: Where, field: str) -> tuple[str, str]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise ImportFileError("a pair is a list of two response ids", path=where.path, line=where.line, field=field)
    a, b = str(pair[0]), str(pair[1])
    for rid in (a, b):
        if rid not in item.responses:
            raise ImportFileError(f"unknown response id {rid!r}", path=where.path, line=where.line, field=field)
    if a == b:
        raise ImportFileError("a pair needs two different responses", path=where.path, line=where.line, field=field)
    return a, b


def _stored_pairs(item: ItemSpec) -> set[tuple[str, str]]:
    if item.pairs is not None:
        return set(item.pairs)
    ids = list(item.responses)
    return {(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]}


# --- csv ----------------------------------------------------------------------------------

CSV_COLUMNS = ("item_id", "prompt", "response_id", "text")


class _CsvSeen:
    """What a csv import keeps of an item once its batch is written: enough to check its later
    rows (same prompt, conversation and role; new response ids) and, at the end, its gold pairs
    and role; digests instead of texts."""

    __slots__ = ("where", "prompt", "conversation", "role", "responses", "has_gold", "gold_pairs")

    def __init__(self, item: ItemSpec) -> None:
        self.where = item.where
        self.prompt = _digest(item.prompt)
        self.conversation = _conversation_digest(item.conversation)
        self.role = item.role
        self.responses: list[str] = []
        self.has_gold = False
        self.gold_pairs: list[GoldPairSpec] = []


def _conversation_digest(conversation: list[dict] | None) -> str | None:
    return None if conversation is None else _digest(json.dumps(conversation, sort_keys=True, ensure_ascii=False))


def parse_csv(paths: list[Path]) -> Iterator[ParsedImport]:
    """One response a row: item_id, prompt, context?, conversation?, response_id, model?, text
    (conversation: the item's turns as JSON text, its last user turn the prompt), and optionally
    role, gold_<attribute>, gold_pair_with and gold_strength (_csv_role_and_gold).

    Batches of about BATCH_ITEMS rows, cut between items; an item whose rows are not together
    continues in a later batch (ItemSpec.written), paired with its earlier responses there.
    Gold pairs may name a response of a later row, so they are checked and written last."""
    parsed = ParsedImport()
    seen: dict[str, _CsvSeen] = {}
    rows_in_batch = 0
    for path in paths:
        reader = csv.DictReader(_csv_lines(path), strict=True)
        try:
            fieldnames = reader.fieldnames or []
        except csv.Error as exc:
            raise ImportFileError(f"malformed CSV header: {exc}", path=str(path), line=1) from None
        missing = [c for c in CSV_COLUMNS if c not in fieldnames]
        if missing:
            raise ImportFileError(f"missing column(s) {', '.join(missing)}; the header must name {', '.join(CSV_COLUMNS)} (context, conversation, model optional)", path=str(path), line=1, field=missing[0])
        for row in _csv_rows(path, reader):
            where = Where(str(path), reader.line_num)
            for column in CSV_COLUMNS:
                if row.get(column) is None:
                    raise ImportFileError("missing value: the row has fewer columns than the header", path=where.path, line=where.line, field=column)
                if not row[column].strip() and column != "text":
                    raise ImportFileError("empty value", path=where.path, line=where.line, field=column)
            for column, limit in (("item_id", EXTERNAL_ID_LENGTH), ("response_id", EXTERNAL_ID_LENGTH), ("model", MODEL_LENGTH)):
                if len(row.get(column) or "") > limit:
                    raise ImportFileError(f"longer than {limit} characters", path=where.path, line=where.line, field=column)
            item_id = row["item_id"]
            if rows_in_batch >= BATCH_ITEMS and item_id not in parsed.items:
                yield parsed
                parsed, rows_in_batch = ParsedImport(), 0
            rows_in_batch += 1
            conversation = _csv_conversation(row, where)
            state = seen.get(item_id)
            item = parsed.items.get(item_id)
            if state is None:
                item = parsed.items[item_id] = ItemSpec(item_id, row["prompt"], where, context=row.get("context") or "",
                                                        conversation=conversation)
                # An optional checklist column: the item's questions, one per line (first row of the item).
                item.checklist = checklist_field(row.get("checklist"), where)
                state = seen[item_id] = _CsvSeen(item)
            elif state.prompt != _digest(row["prompt"]):
                raise ImportFileError(f"item {item_id!r} has a different prompt than at line {state.where.line}", path=where.path, line=where.line, field="prompt")
            elif state.conversation != _conversation_digest(conversation):
                raise ImportFileError(f"item {item_id!r} has a different conversation than at line {state.where.line}", path=where.path, line=where.line, field="conversation")
            elif item is None:  # its first rows went out in an earlier batch
                item = parsed.items[item_id] = ItemSpec(item_id, row["prompt"], state.where, role=state.role,
                                                        conversation=conversation, pairs=[], written=True)
            rid = row["response_id"]
            if rid in state.responses:
                raise ImportFileError(f"response id {rid!r} appears twice in item {item_id!r}", path=where.path, line=where.line, field="response_id")
            if item.written:
                assert item.pairs is not None
                item.pairs.extend((earlier, rid) for earlier in state.responses)
            item.responses[rid] = ResponseSpec(rid, row["text"], row.get("model") or "")
            _csv_role_and_gold(item, row, fieldnames, where, first=not state.responses)
            state.responses.append(rid)
            state.role = item.role
            state.has_gold = state.has_gold or bool(item.gold_ratings or item.gold_pairs)
            state.gold_pairs.extend(item.gold_pairs)
            item.gold_pairs = []
    last = _csv_gold_pairs(seen)  # its checks first, as when the whole file was parsed first
    yield parsed
    yield last


def _csv_gold_pairs(seen: dict[str, _CsvSeen]) -> ParsedImport:
    """The last batch: every item's gold pairs, now that all its responses are known, after the
    checks that needed the whole file (in item order, as the items came)."""
    last = ParsedImport()
    for item_id, state in seen.items():
        item = ItemSpec(item_id, "", state.where, role=state.role, pairs=[], gold_pairs=state.gold_pairs, written=True)
        _csv_gold_pairs_known(item, state.responses)
        check_gold_role(item, field="role", has_gold=state.has_gold)
        if item.gold_pairs:
            last.items[item_id] = item
    return last


def _csv_conversation(row: dict, where: Where) -> list[dict] | None:
    """The optional `conversation` column: the turns as JSON text (empty: a single prompt). Its
    last user turn must be the row's `prompt`, so the two columns cannot disagree."""
    raw = (row.get("conversation") or "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=where.path, line=where.line, field="conversation") from None
    except RecursionError:
        raise ImportFileError(_TOO_DEEP, path=where.path, line=where.line, field="conversation") from None
    turns = _checked_conversation(value, where)
    if last_user_turn(turns) != row["prompt"]:
        raise ImportFileError("the conversation's last user turn differs from the prompt column",
                              path=where.path, line=where.line, field="conversation")
    return turns
def _csv_role_and_gold(item: ItemSpec, row: dict, fieldnames: Sequence[str], where: Where, first: bool) -> None:
    """The csv equivalent of jsonl's role and gold, all optional: a `role` column (the same on
    every row of an item), `gold_<attribute>` columns (this row's response's known rating),
    and `gold_pair_with` (another response id of the item) with `gold_strength` (negative:
    this row's response is better)."""
    role = (row.get("role") or "").strip() or "task"
    if role not in ITEM_ROLES:
        raise ImportFileError(f"role must be one of {', '.join(ITEM_ROLES)}, got {role!r}", path=where.path, line=where.line, field="role")
    if first:
        item.role = role
    elif role != item.role:
        raise ImportFileError(f"item {item.external_id!r} has role {item.role!r} at line {item.where.line}; give every row of an item the same role", path=where.path, line=where.line, field="role")
    rid = row["response_id"]
    for column in fieldnames:
        if not column.startswith("gold_") or column in ("gold_pair_with", "gold_strength"):
            continue
        raw = (row.get(column) or "").strip()
        if raw:
            value = _csv_int(raw, where, column)
            item.gold_ratings.append(GoldRatingSpec(rid, column[len("gold_"):], value, column, where.line))
    other = (row.get("gold_pair_with") or "").strip()
    strength = (row.get("gold_strength") or "").strip()
    if bool(other) != bool(strength):
        missing = "gold_strength" if other else "gold_pair_with"
        raise ImportFileError("gold_pair_with and gold_strength go together", path=where.path, line=where.line, field=missing)
    if other:
        if other == rid:
            raise ImportFileError("a pair needs two different responses", path=where.path, line=where.line, field="gold_pair_with")
        # The other response may come on a later row: _csv_gold_pairs_known checks it at the end.
        item.gold_pairs.append(GoldPairSpec((rid, other), _csv_int(strength, where, "gold_strength"), "gold_strength", where.line))


def _csv_gold_pairs_known(item: ItemSpec, responses: list[str]) -> None:
    named: set[frozenset[str]] = set()
    known = set(responses)
    for gold in item.gold_pairs:
        if gold.pair[1] not in known:
            raise ImportFileError(f"gold_pair_with names {gold.pair[1]!r}, not a response of item {item.external_id!r}", path=item.where.path, line=gold.line, field="gold_pair_with")
        if frozenset(gold.pair) in named:
            raise ImportFileError(f"the gold strength of pair {list(gold.pair)} is given twice", path=item.where.path, line=gold.line, field="gold_strength")
        named.add(frozenset(gold.pair))


def _csv_int(raw: str, where: Where, column: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ImportFileError(f"expected an integer, got {raw!r:.60}", path=where.path, line=where.line, field=column) from None


# --- PandaLM ------------------------------------------------------------------------------

# PandaLM labels: 0 tie, 1 response1 better, 2 response2 better -> strength on A/tie/B.
PANDALM_STRENGTH = {0: 0, 1: -1, 2: 1}
PANDALM_GPT_STRENGTH = {"1": -1, "2": 1, "Tie": 0, "garbage": 0}  # publishers count garbage as tie


def parse_pandalm(paths: list[Path]) -> ParsedImport:
    if not 1 <= len(paths) <= 3:
        raise ImportFileError("pandalm takes testset-v1.json, then optionally the gpt-3.5-turbo and pandalm-7b verdict files", path=str(paths[0]) if paths else "-")
    parsed = ParsedImport(defaults=ProjectDefaults(protocols="ranking", ranking_scale="ternary", attributes=[]))
    rows = _read_json_list(paths[0])
    path = str(paths[0])
    annotators = [parsed.declare_rater("human", f"annotator{k}") for k in (1, 2, 3)]
    for index, row in enumerate(rows):
        where = Where(path, index + 1)  # the row's position in the list
        if not isinstance(row, dict):
            raise ImportFileError("expected an object", path=path, line=where.line)
        idx = str(_require(row, "idx", where, int))
        cmp_key = _require(row, "cmp_key", where)
        models = cmp_key.split("_")
        if len(models) != 2:
            raise ImportFileError(f"cmp_key must be '<model1>_<model2>', got {cmp_key!r}", path=path, line=where.line, field="cmp_key")
        if idx in parsed.items:
            raise ImportFileError(f"idx {idx} appears twice", path=path, line=where.line, field="idx")
        item = ItemSpec(idx, _require(row, "instruction", where), where, context=row.get("input") or "",
                        metadata={"motivation_app": row.get("motivation_app", "")})
        # A few responses were stored as JSON scalars (true, 3): they are text to the rater.
        item.responses["1"] = ResponseSpec("1", _text(row, "response1", where), models[0])
        item.responses["2"] = ResponseSpec("2", _text(row, "response2", where), models[1])
        item.pairs = [("1", "2")]
        parsed.items[idx] = item
        for k, rater in enumerate(annotators, start=1):
            label = _require(row, f"annotator{k}", where, int)
            if label not in PANDALM_STRENGTH:
                raise ImportFileError(f"label must be 0, 1 or 2, got {label!r}", path=path, line=where.line, field=f"annotator{k}")
            parsed.preferences.append(PreferenceSpec(rater, idx, ("1", "2"), PANDALM_STRENGTH[label], where))
    verdict_sources: list[tuple[str, str, dict]] = [
        ("gpt-3.5-turbo", "gpt_result", PANDALM_GPT_STRENGTH), ("pandalm-7b", "pandalm_result", PANDALM_STRENGTH)
    ]
    for verdicts, (name, key, mapping) in zip(paths[1:], verdict_sources, strict=False):
        _pandalm_verdicts(parsed, verdicts, name, key, mapping)
    return parsed


def _pandalm_verdicts(parsed: ParsedImport, path: Path, name: str, key: str, mapping: dict) -> None:
    rater = parsed.declare_rater("judge", name)
    for index, row in enumerate(_read_json_list(path)):
        where = Where(str(path), index + 1)
        idx = str(_require(row, "idx", where, int))
        if idx not in parsed.items:
            raise ImportFileError(f"idx {idx} is not in the test set", path=str(path), line=where.line, field="idx")
        if key not in row:
            raise ImportFileError(f"missing required field (is this the {name} file?)", path=str(path), line=where.line, field=key)
        verdict = row[key]
        if verdict not in mapping:
            raise ImportFileError(f"unknown verdict {verdict!r}; expected one of {sorted(map(str, mapping))}", path=str(path), line=where.line, field=key)
        reason = row.get("gpt_reason") or row.get("pandalm_reason") or ""
        parsed.preferences.append(PreferenceSpec(rater, idx, ("1", "2"), mapping[verdict], where, "ab", str(reason)))


# --- Auto-J -------------------------------------------------------------------------------

AUTOJ_LABEL_STRENGTH = {0: -1, 1: 1, 2: 0}
# A verdict in the swapped file names positions of the swapped order: its 0 is original response 2.
AUTOJ_SWAPPED_STRENGTH = {0: 1, 1: -1, 2: 0}


def parse_autoj(paths: list[Path]) -> ParsedImport:
    if len(paths) not in (1, 3):
        raise ImportFileError("autoj takes autoj_pairwise.jsonl, optionally followed by the original-order and swapped-order verdict files", path=str(paths[0]) if paths else "-")
    parsed = ParsedImport(defaults=ProjectDefaults(protocols="ranking", ranking_scale="ternary", attributes=[]))
    human = parsed.declare_rater("human", "autoj-human")
    order: list[str] = []
    for number, row in _read_jsonl(paths[0]):
        where = Where(str(paths[0]), number)
        item_id = str(number)
        item = ItemSpec(item_id, _require(row, "prompt", where), where, metadata={"scenario": row.get("scenario", "")})
        item.responses["1"] = ResponseSpec("1", _require(row, "response 1", where))
        item.responses["2"] = ResponseSpec("2", _require(row, "response 2", where))
        item.pairs = [("1", "2")]
        parsed.items[item_id] = item
        order.append(item_id)
        label = _require(row, "label", where, int)
        if label not in AUTOJ_LABEL_STRENGTH:
            raise ImportFileError(f"label must be 0, 1 or 2, got {label!r}", path=where.path, line=number, field="label")
        parsed.preferences.append(PreferenceSpec(human, item_id, ("1", "2"), AUTOJ_LABEL_STRENGTH[label], where))
    if len(paths) == 3:
        judge = parsed.declare_rater("judge", "autoj-13b")
        for path, shown, mapping in ((paths[1], "ab", AUTOJ_LABEL_STRENGTH), (paths[2], "ba", AUTOJ_SWAPPED_STRENGTH)):
            rows = list(_read_jsonl(path))
            if len(rows) != len(order):
                raise ImportFileError(f"has {len(rows)} verdicts but the pairwise file has {len(order)} rows", path=str(path))
            for (number, row), item_id in zip(rows, order, strict=True):
                where = Where(str(path), number)
                verdict = _require(row, "output", where, int)
                if verdict not in mapping:
                    raise ImportFileError(f"output must be 0, 1 or 2, got {verdict!r}", path=str(path), line=number, field="output")
                parsed.preferences.append(PreferenceSpec(judge, item_id, ("1", "2"), mapping[verdict], where, shown))
    return parsed


# --- Peering Through Preferences (sparse_feedback) ----------------------------------------

SPARSE_RANKING_STRENGTH = {"(a)": -1, "(b)": 1, "equal": 0}


def parse_sparse_feedback(paths: list[Path]) -> ParsedImport:
    """Ratings CSV (instruction, input, output, rating 1-7) then rankings CSV
    (instruction, input, output1, output2, ranking). Responses are identified by
    (instruction, input, text); duplicate rows keep their first occurrence."""
    if len(paths) != 2:
        raise ImportFileError("sparse-feedback takes the ratings CSV and then the rankings CSV", path=str(paths[0]) if paths else "-")
    parsed = ParsedImport(defaults=ProjectDefaults(
        protocols="both", ranking_scale="ternary",
        attributes=[{"name": "overall", "description": "Overall quality of the response (Peering Through Preferences).", "min_value": 1, "max_value": 7, "anchors": {"1": "very poor", "4": "acceptable", "7": "excellent"}}],
    ))
    judge = parsed.declare_rater("judge", "gpt-3.5-turbo")
    ratings: dict[tuple[str, str, str], tuple[int, Where]] = {}
    ratings_path, rankings_path = paths

    def item_for(instruction: str, inp: str, where: Where) -> ItemSpec:
        item_id = _digest(instruction, inp)
        if item_id not in parsed.items:
            parsed.items[item_id] = ItemSpec(item_id, instruction, where, context=inp, pairs=[])
        return parsed.items[item_id]

    def response_for(item: ItemSpec, text: str) -> str:
        rid = _digest(text)
        item.responses.setdefault(rid, ResponseSpec(rid, text))
        return rid

    for number, row in _read_csv_rows(ratings_path, 4):
        where = Where(str(ratings_path), number)
        instruction, inp, output, rating = row
        try:
            value = int(rating)
        except ValueError:
            raise ImportFileError(f"rating must be an integer 1-7, got {rating!r}", path=where.path, line=number, field="rating") from None
        ratings.setdefault((instruction, inp, output), (value, where))
    seen_pairs: set[tuple[str, str, str, str]] = set()
    for number, row in _read_csv_rows(rankings_path, 5):
        where = Where(str(rankings_path), number)
        instruction, inp, out1, out2, ranking = row
        if ranking not in SPARSE_RANKING_STRENGTH:
            raise ImportFileError(f"ranking must be (a), (b) or equal, got {ranking!r}", path=where.path, line=number, field="ranking")
        if (instruction, inp, out1, out2) in seen_pairs:
            continue
        seen_pairs.add((instruction, inp, out1, out2))
        item = item_for(instruction, inp, where)
        a = response_for(item, out1)
        if out1 == out2:
            # An output compared with itself: two responses with the same text (the published
            # figure keeps these pairs), each carrying the output's rating.
            b = a + "~twin"
            item.responses.setdefault(b, ResponseSpec(b, out2))
        else:
            b = response_for(item, out2)
        assert item.pairs is not None
        if (a, b) in item.pairs or (b, a) in item.pairs:
            continue
        item.pairs.append((a, b))
        parsed.preferences.append(PreferenceSpec(judge, item.external_id, (a, b), SPARSE_RANKING_STRENGTH[ranking], where))
    for (instruction, inp, output), (value, where) in ratings.items():
        item = item_for(instruction, inp, where)
        rid = response_for(item, output)
        for target in (rid, rid + "~twin"):
            if target in item.responses:
                parsed.ratings.append(RatingSpec(judge, item.external_id, target, "overall", value, where))
    return parsed


def _read_csv_rows(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(_csv_lines(path), strict=True)
    for row in _csv_rows(path, reader):
        if not row:
            continue
        if len(row) != width:
            raise ImportFileError(f"expected {width} columns, got {len(row)}", path=str(path), line=reader.line_num)
        yield reader.line_num, row


# --- HelpSteer2 and HelpSteer2-Preference -------------------------------------------------

HELPSTEER2_ATTRIBUTE_NAMES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _helpsteer2_item(item_id: str, prompt: str, where: Where, pairs: list | None = None) -> ItemSpec:
    """An item of either HelpSteer2 layout. A multi-turn prompt (its `<extra_id_1>` markers)
    becomes a conversation and the item's prompt its last user turn; the item id stays the digest
    of the whole prompt field, so a re-import of an older import still finds its items."""
    turns = from_helpsteer2(prompt)
    if turns is None or conversation_problem(turns) is not None:
        # No markers, or markers that do not make a chat ending with the user (a prompt that
        # merely mentions one): the prompt as it is, as before, rather than a refused file.
        return ItemSpec(item_id, prompt, where, pairs=pairs)
    return ItemSpec(item_id, last_user_turn(turns), where, pairs=pairs, conversation=turns)


def parse_helpsteer2(paths: list[Path]) -> ParsedImport:
    """The published HelpSteer2 layout: one response a line with its five aggregated ratings.
    Each line's ratings are stored as one human rater, 'helpsteer2'."""
    parsed = ParsedImport(defaults=ProjectDefaults(protocols="rating"))
    rater = parsed.declare_rater("human", "helpsteer2")
    for path in paths:
        for number, row in _read_jsonl(path):
            where = Where(str(path), number)
            prompt = _require(row, "prompt", where)
            text = _require(row, "response", where)
            item_id = _digest(prompt)
            item = parsed.items.setdefault(item_id, _helpsteer2_item(item_id, prompt, where))
            rid = _digest(text)
            if rid in item.responses:
                raise ImportFileError("this prompt and response appear twice", path=where.path, line=number, field="response")
            item.responses[rid] = ResponseSpec(rid, text, str(row.get("model") or ""))
            attributes = [k for k in row if k not in ("prompt", "response", "model", "split") and not k.endswith("_n")]
            for name in attributes:
                parsed.ratings.append(RatingSpec(rater, item_id, rid, name, row[name], where))
    return parsed


def parse_helpsteer2_preference(paths: list[Path]) -> ParsedImport:
    """The published HelpSteer2-Preference layout; preference_strength keeps its sign
    (-3 = response_1 much better), response_1 is stored as A."""
    parsed = ParsedImport(defaults=ProjectDefaults(protocols="ranking"))
    rater = parsed.declare_rater("human", "helpsteer2")
    for path in paths:
        for number, row in _read_jsonl(path):
            where = Where(str(path), number)
            prompt = _require(row, "prompt", where)
            r1 = _require(row, "response_1", where)
            r2 = _require(row, "response_2", where)
            item_id = _digest(prompt)
            item = parsed.items.setdefault(item_id, _helpsteer2_item(item_id, prompt, where, pairs=[]))
            if "split" in row:
                item.metadata["split"] = row["split"]
            a, b = _digest(r1), _digest(r2)
            if a == b:
                b = a + "~twin"
            item.responses.setdefault(a, ResponseSpec(a, r1))
            item.responses.setdefault(b, ResponseSpec(b, r2))
            assert item.pairs is not None
            if (a, b) in item.pairs:
                raise ImportFileError("this prompt and pair of responses appear twice", path=where.path, line=number, field="response_2")
            item.pairs.append((a, b))
            statement = row.get("preference_statement") or ""
            elaboration = row.get("preference_elaboration") or ""
            justification = "\n\n".join(part for part in (statement, elaboration) if part)
            parsed.preferences.append(PreferenceSpec(rater, item_id, (a, b), row.get("preference_strength"), where, "ab", justification))
    return parsed


# --- What the database can hold, for every format -----------------------------------------

# Field names as the jsonl format spells them; csv names its columns.
JSONL_FIELDS = {"id": "id", "prompt": "prompt", "context": "context", "metadata": "metadata", "conversation": "conversation",
                "response_id": "responses[{i}].id", "text": "responses[{i}].text", "model": "responses[{i}].model"}
CSV_FIELDS = {"id": "item_id", "prompt": "prompt", "context": "context", "metadata": "metadata", "conversation": "conversation",
              "response_id": "response_id", "text": "text", "model": "model"}


def check_bounds(parsed: ParsedImport, fields: dict[str, str] = JSONL_FIELDS) -> None:
    """Every parsed value fits its column (annotate.bounds), or ImportFileError at its line."""

    def fail(where: Where, key: str, message: str, i: int = 0) -> None:
        raise ImportFileError(message, path=where.path, line=where.line, field=fields[key].format(i=i))

    def text(value: object, where: Where, key: str, i: int = 0, limit: int | None = None) -> None:
        if not isinstance(value, str):
            fail(where, key, f"expected a string, got {type(value).__name__}", i)
            return
        problem = text_problem(value)
        if problem:
            fail(where, key, problem, i)
        if limit is not None and len(value) > limit:
            fail(where, key, f"longer than {limit} characters ({len(value)})", i)

    for item in parsed.items.values():
        w = item.where
        text(item.external_id, w, "id", limit=EXTERNAL_ID_LENGTH)
        text(item.prompt, w, "prompt")
        text(item.context, w, "context")
        if not isinstance(item.metadata, dict):
            fail(w, "metadata", f"expected an object, got {type(item.metadata).__name__}")
        problem = json_problem(item.metadata)
        if problem:
            fail(w, "metadata", problem)
        if item.conversation is not None:
            turns = conversation_problem(item.conversation)
            if turns:
                fail(w, "conversation", f"{turns.where} {turns.message}".strip())
        for i, response in enumerate(item.responses.values()):
            text(response.external_id, w, "response_id", i, EXTERNAL_ID_LENGTH)
            text(response.text, w, "text", i)
            text(response.model, w, "model", i, MODEL_LENGTH)
    for preference in parsed.preferences:
        if not isinstance(preference.justification, str) or text_problem(preference.justification):
            raise ImportFileError("justification must be text without NUL characters",
                                  path=preference.where.path, line=preference.where.line, field="justification")


Batches = Iterator[ParsedImport]


def _checked(parse: Callable[[list[Path]], ParsedImport | Batches], fields: dict[str, str] = JSONL_FIELDS
             ) -> Callable[[list[Path]], Batches]:
    """The parser's batches (a whole-file parser's one ParsedImport is one batch), each checked
    against the database's bounds before it is handed on."""

    @functools.wraps(parse)
    def run(paths: list[Path]) -> Batches:
        try:
            batches = parse(paths)
            for parsed in [batches] if isinstance(batches, ParsedImport) else batches:
                check_bounds(parsed, fields)
                yield parsed
        except RecursionError:  # a safety net: the readers catch it where they know the line
            raise ImportFileError(_TOO_DEEP, path=str(paths[0]) if paths else "-") from None

    return run


PARSERS: dict[str, Callable[[list[Path]], Batches]] = {
    "jsonl": _checked(parse_jsonl),
    "csv": _checked(parse_csv, CSV_FIELDS),
    "pandalm": _checked(parse_pandalm),
    "autoj": _checked(parse_autoj),
    "sparse-feedback": _checked(parse_sparse_feedback),
    "helpsteer2": _checked(parse_helpsteer2),
    "helpsteer2-preference": _checked(parse_helpsteer2_preference),
}
