"""An item's conversation: the one place that says what a valid list of turns is, how a
HelpSteer2 prompt splits into turns, and which turns the workspace folds.

A conversation is `[{"role": "system"|"user"|"assistant", "content": str}, ...]` ending with the
user turn the responses answer; `Item.prompt` holds that last turn's content, so every reader of
`prompt` (exports, reports, single-turn judge templates) keeps working. No ORM here: the import
parsers, the API serializer and the views all call these on plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .bounds import text_problem

ROLES: tuple[str, ...] = ("system", "user", "assistant")
# What the workspace calls each role (a word beside every turn: colour is never the only signal).
ROLE_LABELS: dict[str, str] = {"system": "System", "user": "User", "assistant": "Assistant"}
TURN_KEYS = frozenset({"role", "content"})
# A conversation longer than this is no chat anyone annotates; it only costs memory and page size.
MAX_TURNS = 200


# {"role": ..., "content": ...}, as stored in Item.conversation (JSON).
Turn = dict[str, str]


@dataclass(frozen=True)
class ConversationProblem:
    """What is wrong, and where inside the conversation ("[2].role"), for file/line/field errors."""

    where: str
    message: str


def conversation_problem(value: object) -> ConversationProblem | None:
    """Why `value` is not a storable conversation, or None.

    The last turn must be the user's: the responses answer it. A system turn may only open the
    conversation (that is where every chat template puts it)."""
    if not isinstance(value, list):
        return ConversationProblem("", f"a conversation is a list of turns, got {type(value).__name__}")
    if not value:
        return ConversationProblem("", "a conversation needs at least one turn")
    if len(value) > MAX_TURNS:
        return ConversationProblem("", f"a conversation has at most {MAX_TURNS} turns, got {len(value)}")
    for i, turn in enumerate(value):
        at = f"[{i}]"
        if not isinstance(turn, dict):
            return ConversationProblem(at, f'each turn is an object {{"role", "content"}}, got {type(turn).__name__}')
        unknown = sorted(set(turn) - TURN_KEYS)
        if unknown:
            return ConversationProblem(at, f"a turn has only role and content; unknown key(s) {', '.join(map(repr, unknown))}")
        role = turn.get("role")
        if role not in ROLES:
            return ConversationProblem(at + ".role", f"role must be one of {', '.join(ROLES)}, got {role!r:.40}")
        if role == "system" and i != 0:
            return ConversationProblem(at + ".role", "a system turn may only be the first turn")
        content = turn.get("content")
        if not isinstance(content, str):
            return ConversationProblem(at + ".content", f"content must be a string, got {type(content).__name__}")
        problem = text_problem(content)
        if problem:
            return ConversationProblem(at + ".content", problem)
    if value[-1]["role"] != "user":
        return ConversationProblem(f"[{len(value) - 1}].role", "the last turn must be the user's (the responses answer it)")
    return None


def last_user_turn(turns: list[Turn]) -> str:
    """What `Item.prompt` holds for a conversation (checked by conversation_problem first)."""
    return turns[-1]["content"]


def is_multi_turn(turns: list[Turn] | None) -> bool:
    """Whether there is anything to show besides the last user turn."""
    return turns is not None and len(turns) > 1


# HelpSteer2 writes a multi-turn prompt as one string in NeMo-Aligner's SteerLM layout: the first
# user turn bare, each later turn introduced by "<extra_id_1>User" or "<extra_id_1>Assistant" on
# its own line (and a system turn, where there is one, by "<extra_id_0>System").
_HELPSTEER2_MARKER = re.compile(r"(?:^|\n)<extra_id_[01]>(User|Assistant|System)\n?")
_HELPSTEER2_ROLES = {"User": "user", "Assistant": "assistant", "System": "system"}


def from_helpsteer2(prompt: str) -> list[Turn] | None:
    """The turns of a HelpSteer2 prompt, or None for a single-turn prompt (no markers)."""
    parts = _HELPSTEER2_MARKER.split(prompt)
    if len(parts) == 1:
        return None
    turns: list[Turn] = []
    head = parts[0]
    if head.strip():
        turns.append({"role": "user", "content": head})
    # Contents are kept exactly (no stripping), so to_helpsteer2 gives the same string back: an
    # export in HelpSteer2's layout re-imports to the same items (their ids digest this string).
    for marker, content in zip(parts[1::2], parts[2::2], strict=True):
        turns.append({"role": _HELPSTEER2_ROLES[marker], "content": content})
    return turns


def to_helpsteer2(turns: list[Turn]) -> str:
    """A conversation as one prompt string in HelpSteer2's layout (the inverse of from_helpsteer2):
    what a text-only export (HelpSteer2, HelpSteer2-Preference, DPO rows) writes as its prompt."""
    parts: list[str] = []
    for i, turn in enumerate(turns):
        role = turn["role"]
        if i == 0 and role == "user":
            parts.append(turn["content"])  # HelpSteer2 writes the first user turn bare
            continue
        marker = "<extra_id_0>System" if role == "system" else f"<extra_id_1>{role.capitalize()}"
        parts.append(("\n" if parts else "") + f"{marker}\n{turn['content']}")
    return "".join(parts)


def prompt_text(prompt: str, turns: list[Turn] | None) -> str:
    """An item's prompt as one string: the prompt, or a multi-turn conversation in HelpSteer2's
    layout, so a flat export keeps the earlier turns."""
    return to_helpsteer2(turns) if turns is not None and is_multi_turn(turns) else prompt
