"""Plain data passed between the judges app and its inference backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Message = dict[str, str]
Status = Literal["ok", "unparseable", "error"]
Source = Literal["logits", "logprobs", "text"]


@dataclass(frozen=True)
class BackendConfig:
    """Everything needed to load a model; frozen so it can key the per-process model cache."""

    backend: str  # "transformers" | "openai"
    model_ref: str
    gguf_file: str = ""
    revision: str = ""
    dtype: str = "auto"
    device: str = "auto"
    base_url: str = ""
    api_key: str = ""
    # Batch shaping for the transformers backend: a batch holds at most this many padded tokens.
    batch_tokens: int = 16384
    max_batch_size: int = 64
    # Most pad tokens a batch may hold, as a share of its padded size; None: 0.1 on a CPU (a
    # bigger batch buys little there, every pad costs its FLOPs), 0.3 on a GPU.
    max_padding: float | None = None


@dataclass(frozen=True)
class ScoreRequest:
    """One prompt whose answer is one of `labels`, read at the position right after `cue`.

    `labels` are the answer strings in scale order (e.g. "A", "B", "C" or "0".."4"); the
    backend returns a probability for each.
    """

    messages: tuple[Message, ...]
    labels: tuple[str, ...]
    cue: str = "[["
    key: object = None
    # Requests with the same (non-None) group share a long prompt prefix, e.g. the attributes
    # of one rated response: a local backend runs that prefix once for the whole group.
    prefix_group: object = None


@dataclass
class ScoreResult:
    key: object
    status: Status
    # Probability of each label, softmax over the labels' logits only (METRICS.md); None when
    # the backend could not read token probabilities.
    probabilities: dict[str, float] | None = None
    label: str | None = None
    raw_text: str = ""
    latency_ms: int = 0
    source: Source = "logits"
    # Share of the full next-token distribution that falls on valid labels: how sure the model
    # is that it answers inside the scale at all.
    valid_mass: float | None = None
    note: str = ""
    error: str = ""
    # What the judge wrote before its verdict (rationale judges only): kept as the
    # justification of its preference, whichever backend wrote it.
    rationale: str = ""
    # Tokens the judge read (the rendered prompt, cue included) and wrote for this judgment:
    # the transformers backend counts its input ids, the openai backend reads the server's
    # `usage`. None where the backend could not tell (a server that sends no usage).
    prompt_tokens: int | None = None
    generated_tokens: int | None = None

    def expected(self, values: Sequence[float]) -> float | None:
        """The expected score sum_s s * p(s), with `values` aligned to the request's labels."""
        if self.probabilities is None:
            return None
        probs = list(self.probabilities.values())
        return float(sum(v * p for v, p in zip(values, probs, strict=True)))


@dataclass
class GenerateResult:
    key: object
    text: str
    latency_ms: int
    error: str = ""
    # As ScoreResult's: the prompt's tokens and the answer's (end token not counted, as the
    # run's live count of written tokens).
    prompt_tokens: int | None = None
    generated_tokens: int | None = None


@dataclass
class Decoding:
    max_new_tokens: int = 256
    rationale: bool = False
    rationale_tokens: int = 160
    temperature: float = 0.0
    # When an answer read from token probabilities counts as given (see `answer_given`): None
    # asks the greedy next token to be a valid label itself; a number t accepts the argmax over
    # the valid labels whenever they hold at least t of the next-token mass (0: always, as
    # METRICS.md's argmax-over-valid-tokens reads).
    min_valid_mass: float | None = None
    # openai backend: prefill the answer with the cue (continue_final_message); off for a server
    # that does not continue a final assistant message.
    prefill: bool = True
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    config: BackendConfig

    def score(self, requests: Sequence[ScoreRequest], *, decoding: Decoding) -> list[ScoreResult]: ...

    def generate(
        self, prompts: Sequence[tuple[object, tuple[Message, ...]]], *, decoding: Decoding,
        on_tokens: Callable[[int], None] | None = None, on_result: Callable[[GenerateResult], None] | None = None,
    ) -> list[GenerateResult]:
        """Answers in prompt order; `on_tokens(n)` hears of new tokens as they are written (where
        the backend sees them) and `on_result` of each answer once it is complete."""
        ...


def answer_given(*, greedy_is_label: bool, valid_mass: float, min_valid_mass: float | None) -> bool:
    """Whether the model answered inside the scale; if not the answer is stored as unparseable.

    By default the model's own greedy token must be a label. A judge may instead set a floor
    on the probability mass of the valid labels (METRICS.md's argmax over the valid tokens is
    the floor 0): a small model that puts 30% on "A"/"B"/"C" and 45% on "The" then gets its
    verdict, and the mass it gave the scale is stored beside it.
    """
    if min_valid_mass is None:
        return greedy_is_label
    return valid_mass >= min_valid_mass


def label_argmax(probabilities: dict[str, float]) -> str:
    return max(probabilities.items(), key=lambda kv: kv[1])[0]
