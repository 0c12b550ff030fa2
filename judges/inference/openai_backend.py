"""Any OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp's server): chat completions.

Without a rationale, the answer is prefilled with the cue "[[" as a final assistant message
(`continue_final_message`, as vLLM names it), so the verdict is the first token the server
writes, as in the transformers backend. Not every server continues it: llama-cpp-python's closes
the message and starts a new answer, and reading that answer's first token as "the token after
[[" would read the wrong position. So each backend first asks the server once
(`prefill_honoured`): the same prompt with and without the prefilled cue, one token each, and
compares `usage.prompt_tokens`. A server that continues the message adds only the cue's tokens;
one that starts a new turn adds an end-of-turn and a new header as well. Where the prefill is not
honoured the model writes the cue itself and the answer is read after it (or is unparseable), and
the result's note says so. A judge can also turn the prefill off (decoding `prefill: false`).

Verdicts come from `logprobs`/`top_logprobs` at the token after the cue when the server returns
them; otherwise the verdict is parsed from the text and the result says so (`source="text"`, a
note, no probabilities). Requests go out concurrently: the server batches.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from .base import (
    BackendConfig,
    Decoding,
    GenerateResult,
    Message,
    ScoreRequest,
    ScoreResult,
    answer_given,
    label_argmax,
)

TOP_LOGPROBS = 20
# Tokens allowed for the answer itself ("[[", the label, "]]") when no rationale comes first.
ANSWER_TOKENS = 4
# Without the prefill the model writes the cue itself, perhaps after a word or two ("Verdict: [[A]]").
UNPREFILLED_ANSWER_TOKENS = 16
TEXT_FALLBACK_NOTE = "server returned no logprobs: verdict parsed from the text"
PREFILL_IGNORED_NOTE = "server does not continue a prefilled answer: read after the cue the model wrote"
# A continuation adds the cue's own tokens to the prompt (1 or 2 for "[["); a new turn adds an
# end-of-turn and an assistant header too (4 or more in every chat format we know).
MAX_PREFILL_TOKENS = 2


class ServerError(ConnectionError):
    """A 5xx, a 429 or an unreachable server: transient, the task retries with backoff. Its
    message is a summary (status code and reason class), never the server's reply."""


class UpstreamError(Exception):
    """A reply that retrying will not change (a 4xx other than 429, a redirect, a reply that is
    not a chat completion): the judgments fail with this summary, never the server's body."""


# What a status code means for the researcher reading the run page; the body is never shown:
# the server is the researcher's choice, and its reply could carry anything.
HTTP_REASONS = {
    400: "bad request", 401: "unauthorized: check the judge's API key", 403: "forbidden",
    404: "not found: check base_url and the model name", 405: "method not allowed", 408: "request timeout",
    413: "request too large", 422: "request not understood", 429: "rate limited",
}


def http_summary(code: int) -> str:
    if code in HTTP_REASONS:
        reason = HTTP_REASONS[code]
    elif 300 <= code < 400:
        reason = "redirect refused: base_url must be the server's final address"
    elif code >= 500:
        reason = "server error"
    else:
        reason = "client error"
    return f"HTTP {code} ({reason})"


def network_summary(reason: object) -> str:
    """A short class for why a connection failed (URLError.reason or the exception itself)."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, ssl.SSLError):
        return "TLS error"
    if isinstance(reason, ConnectionError):
        return "connection lost"
    return "server unreachable"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib follows redirects by default, with the Authorization header: a server could send
    # the judge's key on to any host. A 3xx becomes an HTTPError instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class OpenAIBackend:
    def __init__(self, config: BackendConfig) -> None:
        if not config.base_url:
            raise ValueError("The openai backend needs a base_url (e.g. http://127.0.0.1:8000/v1).")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.workers = max(1, min(config.max_batch_size, 16))
        self._prefill: bool | None = None  # unknown until the first scored request asks
        self._prefill_lock = threading.Lock()

    def prefill_honoured(self, request: ScoreRequest) -> bool:
        """Whether the server continues a final assistant message (asked once, then remembered)."""
        with self._prefill_lock:
            if self._prefill is None:
                base = {"model": self.config.model_ref, "max_tokens": 1, "temperature": 0}
                plain = self._post(base | {"messages": list(request.messages)})
                prefilled = self._post(base | {
                    "messages": [*request.messages, {"role": "assistant", "content": request.cue}],
                    "continue_final_message": True, "add_generation_prompt": False,
                })
                try:
                    added = prefilled["usage"]["prompt_tokens"] - plain["usage"]["prompt_tokens"]
                except (KeyError, TypeError):
                    # No token counts: trust the server; a reply that writes "[" again still shows it.
                    added = 0
                self._prefill = 0 <= added <= MAX_PREFILL_TOKENS
            return self._prefill

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        try:
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        except ValueError as exc:
            raise UpstreamError("base_url is not a valid http(s) URL") from exc
        try:
            with _OPENER.open(request, timeout=300) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500 or exc.code == 429:
                raise ServerError(http_summary(exc.code)) from None
            raise UpstreamError(http_summary(exc.code)) from None
        except urllib.error.URLError as exc:
            raise ServerError(network_summary(exc.reason)) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise ServerError(network_summary(exc)) from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise UpstreamError("the server's reply is not JSON") from None
        if not isinstance(payload, dict):
            raise UpstreamError("the server's reply is not a JSON object")
        return payload

    @staticmethod
    def _choice(payload: dict) -> dict:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise UpstreamError("the server's reply holds no completion (no choices)")
        return choices[0]

    def score(self, requests: Sequence[ScoreRequest], *, decoding: Decoding) -> list[ScoreResult]:
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda r: self._score_one(r, decoding), requests))

    def _score_one(self, request: ScoreRequest, decoding: Decoding) -> ScoreResult:
        started = time.perf_counter()
        prefill = decoding.prefill and not decoding.rationale
        declined = False
        if prefill:
            try:
                declined = not self.prefill_honoured(request)
            except UpstreamError as exc:
                return ScoreResult(key=request.key, status="error", error=str(exc), source="text")
            prefill = not declined
        messages = list(request.messages)
        if prefill:
            messages.append({"role": "assistant", "content": request.cue})
        body = {
            "model": self.config.model_ref,
            "messages": messages,
            "max_tokens": (ANSWER_TOKENS if prefill else UNPREFILLED_ANSWER_TOKENS)
            + (decoding.rationale_tokens if decoding.rationale else 0),
            "temperature": decoding.temperature,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        if prefill:
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        try:
            payload = self._post(body)
            choice = self._choice(payload)
        except UpstreamError as exc:
            return ScoreResult(key=request.key, status="error", error=str(exc), source="text")
        latency_ms = int((time.perf_counter() - started) * 1000)
        content = choice.get("message", {}).get("content") or ""
        # A continuation of "[[" never starts with "[": a server that wrote one began a new answer.
        ignored = prefill and content.lstrip().startswith(request.cue[:1])
        prefilled = prefill and not ignored
        text = (request.cue if prefilled else "") + content
        tokens = ((choice.get("logprobs") or {}).get("content")) or []
        if tokens and all("top_logprobs" in t for t in tokens):
            result = read_logprobs(tokens, request, prefilled=prefilled, min_valid_mass=decoding.min_valid_mass)
        else:
            result = read_text(text, request)
        if ignored or declined:
            result.note = "; ".join(n for n in (PREFILL_IGNORED_NOTE, result.note) if n)
        result.raw_text, result.latency_ms = text, latency_ms
        result.prompt_tokens, result.generated_tokens = usage_tokens(payload)
        if decoding.rationale:
            result.rationale = rationale_of(content, request.cue)
        return result

    def generate(
        self, prompts: Sequence[tuple[object, tuple[Message, ...]]], *, decoding: Decoding,
        on_tokens: Callable[[int], None] | None = None, on_result: Callable[[GenerateResult], None] | None = None,
    ) -> list[GenerateResult]:
        def one(prompt: tuple[object, tuple[Message, ...]]) -> GenerateResult:
            started = time.perf_counter()
            body = {
                "model": self.config.model_ref, "messages": list(prompt[1]),
                "max_tokens": decoding.max_new_tokens, "temperature": decoding.temperature,
            }
            payload = self._post(body)
            text = self._choice(payload).get("message", {}).get("content") or ""
            prompt_tokens, generated_tokens = usage_tokens(payload)
            return GenerateResult(key=prompt[0], text=text.strip(), latency_ms=int((time.perf_counter() - started) * 1000),
                                  prompt_tokens=prompt_tokens, generated_tokens=generated_tokens)

        with ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(one, p) for p in prompts]
            # Reported from this thread (the caller stores them), as each answer arrives.
            for future in as_completed(futures):
                if on_result is not None:
                    on_result(future.result())
            return [f.result() for f in futures]


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_tokens(payload: dict) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) from the reply's `usage`, None for what the server
    did not send (usage is optional for OpenAI-compatible servers)."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def rationale_of(content: str, cue: str) -> str:
    """What the model wrote before its verdict: the text before the last cue ("[["), as the
    transformers backend keeps the text it generated before its fixed cue."""
    at = content.rfind(cue)
    return content[:at].strip() if at > 0 else ""


def read_logprobs(
    tokens: list[dict], request: ScoreRequest, *, prefilled: bool = False, min_valid_mass: float | None = None
) -> ScoreResult:
    """Probabilities of the labels at the first token written right after the last cue."""
    text = request.cue if prefilled else ""
    answer_at = None
    for i, token in enumerate(tokens):
        if text.endswith(request.cue):
            answer_at = i
        text += token.get("token", "")
    if answer_at is None:
        return ScoreResult(key=request.key, status="unparseable", source="logprobs", note="no cue in the answer")
    position = tokens[answer_at]
    logprobs: dict[str, float] = {}
    for alt in position.get("top_logprobs", []):
        label = alt.get("token", "")
        if label in request.labels and label not in logprobs:
            logprobs[label] = float(alt["logprob"])
    if not logprobs:
        return ScoreResult(key=request.key, status="unparseable", source="logprobs",
                           note="no valid answer among the top logprobs")
    # Labels outside the server's top-k get probability 0: their logits are below every
    # listed one, and the server gives no number for them.
    top = max(logprobs.values())
    weights = {label: math.exp(logprobs[label] - top) if label in logprobs else 0.0 for label in request.labels}
    total = sum(weights.values())
    probabilities = {label: w / total for label, w in weights.items()}
    valid_mass = sum(math.exp(v) for v in logprobs.values())
    parseable = answer_given(greedy_is_label=position.get("token", "") in request.labels, valid_mass=valid_mass,
                             min_valid_mass=min_valid_mass)
    return ScoreResult(
        key=request.key,
        status="ok" if parseable else "unparseable",
        probabilities=probabilities,
        label=label_argmax(probabilities) if parseable else None,
        source="logprobs",
        valid_mass=valid_mass,
        note="" if len(logprobs) == len(request.labels) else "some answers were outside the top logprobs",
    )


def read_text(text: str, request: ScoreRequest) -> ScoreResult:
    """The last "[[label]]" in the text; anything else is unparseable, never guessed."""
    pattern = re.escape(request.cue) + r"\s*(" + "|".join(re.escape(label) for label in request.labels) + r")\s*\]\]"
    matches = re.findall(pattern, text)
    if not matches:
        return ScoreResult(key=request.key, status="unparseable", source="text", note=TEXT_FALLBACK_NOTE)
    return ScoreResult(key=request.key, status="ok", label=matches[-1], source="text", note=TEXT_FALLBACK_NOTE)
