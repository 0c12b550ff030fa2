"""Default prompt templates and their rendering. No ORM here: templates arrive as strings.

Rating follows HelpSteer2's attribute definitions (one attribute per prompt, its scale and
anchors spelled out); pairwise follows MT-Bench's pairwise judge (FastChat `pair-v2`), whose
verdicts are "[[A]]", "[[B]]" and "[[C]]" for a tie. The answer is read from the token right
after the cue "[[".
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence

CUE = "[["
# MT-Bench's three verdicts, in this order: the first response, the second, a tie.
VERDICT_LABELS: tuple[str, str, str] = ("A", "B", "C")

RATING_SYSTEM = (
    "Please act as an impartial judge and evaluate one attribute of the response an AI assistant "
    "gave to the user question displayed below. Be as objective as possible and do not let the "
    "length of the response influence you beyond what the attribute asks."
)
RATING_USER = (
    "[User Question]\n{prompt}\n{context_block}\n"
    "[The Start of Assistant's Answer]\n{response}\n[The End of Assistant's Answer]\n\n"
    "Rate the answer's {attribute}: {description}\n"
    "Use an integer from {min_value} to {max_value} ({anchors}).\n"
    "{answer_format}"
)

# MT-Bench's pair-v2 system prompt without its "provide a short explanation" and verdict-format
# sentences: how to answer (explanation first or verdict only, and the verdict codes) is the
# closing {answer_format}, which follows the judge's rationale setting, so a verdict-only prompt
# never asks for an explanation it will not read.
RANKING_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows "
    "the user's instructions and answers the user's question better. Your evaluation should "
    "consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of "
    "detail of their responses. Avoid any position biases and ensure that the order in which the "
    "responses were presented does not influence your decision. Do not allow the length of the "
    "responses to influence your evaluation. Do not favor certain names of the assistants. Be as "
    "objective as possible. Answer in the format given at the end of the question."
)
RANKING_USER = (
    "[User Question]\n{prompt}\n{context_block}\n"
    "[The Start of Assistant A's Answer]\n{response_first}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{response_second}\n[The End of Assistant B's Answer]\n\n"
    "{answer_format}"
)

GENERATE_SYSTEM = "You are a helpful assistant."

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "rating": {"name": "helpsteer2-rating", "system": RATING_SYSTEM, "user": RATING_USER},
    "ranking": {"name": "mtbench-pairwise", "system": RANKING_SYSTEM, "user": RANKING_USER},
}


def answer_format(*, protocol: str, rationale: bool, min_value: int = 0, max_value: int = 4) -> str:
    """The closing instruction, matched to how the answer is read (the `{answer_format}` placeholder).

    Without a rationale the verdict is read at the very first answer token, right after "[[": a
    prompt that asks for an explanation first (MT-Bench's system prompt does) makes a model start
    "The ..." there instead. Measured on SmolLM2-135M over 16 pairwise prompts: the valid verdicts
    held 24% of the first token's probability mass (greedy token a verdict in 0 of 16) with
    MT-Bench's wording alone, 72% (16 of 16) with the verdict-only instruction.
    """
    if protocol == "ranking":
        verdicts = '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better, or "[[C]]" for a tie'
        if rationale:
            return f"Give a short explanation first, then your final verdict: {verdicts}."
        return f"Output only your final verdict: {verdicts}."
    example = f'"[[{min_value}]]" or "[[{max_value}]]"'
    if rationale:
        return f"Give a short explanation first, then the integer in double brackets, for example {example}."
    return f"Output only the integer in double brackets, for example {example}."


# The placeholders each protocol's templates are filled with (judges.services.judgment_request),
# and those a template must use somewhere (system or user) to show the judge what it judges.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "rating": frozenset({"prompt", "context", "context_block", "response", "attribute", "description",
                         "min_value", "max_value", "anchors", "answer_format"}),
    "ranking": frozenset({"prompt", "context", "context_block", "response_first", "response_second",
                          "answer_format"}),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "rating": ("prompt", "response", "attribute"),
    "ranking": ("prompt", "response_first", "response_second"),
}


def template_problems(*, protocol: str, system: str, user: str) -> list[tuple[str, str]]:
    """What is wrong with an edited template, as (field, message); empty when it is usable.

    Unknown placeholders are refused rather than rendered empty: "{respones}" would otherwise
    silently show the judge no response at all.
    """
    problems: list[tuple[str, str]] = []
    used: set[str] = set()
    if not user.strip():
        problems.append(("user", "The user message is empty."))
    for field, text in (("system", system), ("user", user)):
        try:
            fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text)
                      if name is not None]
        except ValueError as exc:
            problems.append((field, f"{exc} (write a literal brace as {{{{ or }}}})."))
            continue
        for name, spec, conversion in fields:
            problem = _placeholder_problem(name, spec, conversion)
            if problem:
                problems.append((field, problem))
                continue
            base = name
            if base not in PLACEHOLDERS[protocol]:
                known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS[protocol]))
                problems.append((field, f"Unknown placeholder {{{name}}}; a {protocol} template knows {known}."))
            used.add(base)
    for name in REQUIRED[protocol]:
        if name not in used and not any(f == "user" and "empty" in m for f, m in problems):
            problems.append(("user", f"The template never shows {{{name}}} to the judge."))
    return problems


def _placeholder_problem(name: str, spec: str | None, conversion: str | None) -> str | None:
    """Only plain `{name}` is a placeholder: the rest of str.format's mini-language reaches into
    the values (`{prompt.__class__}`, `{prompt[0]}`) or can ask for any width (`{prompt:>999999999}`)."""
    shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    if not name or name.isdigit():
        return f"Placeholder {shown} is positional; name the value, e.g. {{prompt}}."
    if not name.isidentifier():
        return f"Placeholder {shown} uses attribute or index access; write a plain name such as {{prompt}}."
    if conversion:
        return f"Placeholder {shown} has a conversion (!{conversion}); write a plain {{{name}}}."
    if spec:
        return f"Placeholder {shown} has a format spec (:{spec}); write a plain {{{name}}}."
    return None


# A fixed example for previews of an edited template (the judge pages).
PREVIEW_VALUES: dict[str, dict[str, object]] = {
    "rating": {"prompt": "What is the boiling point of water at sea level?", "context": "",
               "response": "100 degrees Celsius (212 degrees Fahrenheit).", "attribute": "correctness",
               "description": "Inclusion of all pertinent facts without errors.", "min_value": 0, "max_value": 4,
               "anchors": "0 = very poor, 4 = excellent"},
    "ranking": {"prompt": "What is the boiling point of water at sea level?", "context": "",
                "response_first": "100 degrees Celsius.",
                "response_second": "It boils at 100 °C (212 °F) at standard atmospheric pressure."},
}


def normalise(text: str) -> str:
    """Template text as stored: a browser's textarea sends CRLF line ends."""
    return text.replace("\r\n", "\n")


def template_preview(*, protocol: str, system: str, user: str, rationale: bool) -> dict:
    """An edited template filled with PREVIEW_VALUES, or what is wrong with it (the judge page)."""
    system, user = normalise(system), normalise(user)
    problems = template_problems(protocol=protocol, system=system, user=user)
    if problems:
        return {"problems": problems, "messages": []}
    values = PREVIEW_VALUES[protocol] | {"answer_format": answer_format(protocol=protocol, rationale=rationale)}
    return {"problems": [], "messages": render_messages(system=system, user=user, values=values), "cue": CUE}


class _Blank(dict):
    """Unknown placeholders render empty instead of raising: an edited template may drop some."""

    def __missing__(self, key: str) -> str:
        return ""


def render_messages(*, system: str, user: str, values: Mapping[str, object]) -> tuple[dict[str, str], ...]:
    filled = _Blank({k: "" if v is None else str(v) for k, v in values.items()})
    context = filled.get("context", "")
    filled["context_block"] = f"\n[Context]\n{context}\n" if context else ""
    messages: list[dict[str, str]] = []
    if system.strip():
        messages.append({"role": "system", "content": system.format_map(filled)})
    messages.append({"role": "user", "content": user.format_map(filled)})
    return tuple(messages)


# How a conversation's roles read in a judge's prompt (plain text: a judge template is text).
TURN_HEADINGS: dict[str, str] = {"system": "[System]", "user": "[User]", "assistant": "[Assistant]"}


def conversation_text(prompt: str, conversation: Sequence[Mapping[str, str]] | None) -> str:
    """What `{prompt}` shows a judge: the prompt itself, or, for a multi-turn item, every turn
    under its role's heading, the last one being the user turn the responses answer. A judge that
    saw only the last turn ("what is it used for?") could not tell what the answer is about."""
    if not conversation or len(conversation) < 2:
        return prompt
    return "\n\n".join(f"{TURN_HEADINGS.get(turn['role'], turn['role'])}\n{turn['content']}" for turn in conversation)


def anchors_text(anchors: Mapping[str, str]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sorted(anchors.items(), key=lambda kv: int(kv[0])))


# A checklist question (TICK, Cook et al., 2024: "answer each question about the response with
# YES or NO"), read at the token after the cue as P(Yes) vs P(No): "Yes" and "No" are single tokens
# after "[[" in common vocabularies (SmolLM2's included), "YES" is not. The question comes last, so
# the questions of one response share everything before it (one prefix per response).
CHECKLIST_LABELS: tuple[str, str] = ("Yes", "No")
CHECKLIST_SYSTEM = (
    "Please act as an impartial judge. You are given a user question, an AI assistant's answer and "
    "one yes/no question from a checklist about what a good answer does. Answer the checklist "
    "question about this answer only, as strictly as it is written."
)
CHECKLIST_USER = (
    "[User Question]\n{prompt}\n{context_block}\n"
    "[The Start of Assistant's Answer]\n{response}\n[The End of Assistant's Answer]\n\n"
    "[Checklist Question]\n{question}\n\n"
    "Output only your answer, [[Yes]] or [[No]]."
)


# TICK's checklist generation (Cook et al., 2024, appendix: "write a checklist of YES/NO
# questions that a response must satisfy to follow the instruction"), shortened for small models.
CHECKLIST_GENERATE_SYSTEM = (
    "You write evaluation checklists. Given a user instruction, write a short list of yes/no questions "
    "that a good response to it must satisfy. Each question must be answerable with YES or NO, be "
    "specific to the instruction, and be on a line of its own. Write only the questions."
)
