"""Local Hugging Face models: verdicts and scores from the last position's logits.

Where the time goes in a judge forward pass, and what this backend does about it:
- padding: prompts are bucketed by length (`length_batches`), padded on the right, and a batch
  closes before its pad tokens pass `max_padding` of it;
- the vocabulary head: only the hidden state of each row's last real token goes through
  `lm_head` (one [rows x vocab] product, not [rows x tokens x vocab]);
- repeated prefixes: the system prompt and instructions every request shares are run once; their
  key/value cache is copied into each batch. Requests with the same `prefix_group` (the
  attributes of one rated response) also share their longer common prefix (question and
  response): it runs once per group and each attribute runs only its own suffix after it.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Sequence
from typing import cast

import torch

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
from .batching import length_batches, run_halving_on_oom

# A shared prefix shorter than this is not worth a separate pass and a cache copy per batch.
MIN_SHARED_PREFIX = 16
# Rows of the vocabulary head upcast to float32 at a time (bf16/fp16 models): 16k x 4096 x 4 B = 256 MiB.
HEAD_CHUNK = 16384
# Generation batches may carry this share of padding (or the judge's cap, if higher); see generate().
GENERATE_MIN_PADDING = 0.5
# After a rationale the verdict is read right after this fixed cue (plus the request's cue).
RATIONALE_CUE = "\n\nFinal answer: "


def _load(config: BackendConfig, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, str] = {}
    if config.gguf_file:
        kwargs["gguf_file"] = config.gguf_file
    if config.revision:
        kwargs["revision"] = config.revision
    tokenizer = AutoTokenizer.from_pretrained(config.model_ref, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(config.model_ref, dtype=dtype, **kwargs)
    return model, tokenizer


def resolve_device(device: str) -> torch.device:
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype in ("", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class TransformersBackend:
    def __init__(self, config: BackendConfig, *, model=None, tokenizer=None) -> None:
        """Load `config.model_ref`, or wrap an already built `model` and `tokenizer` (a bench's
        random-weight model of a given architecture, which keeps its dtype); placed on the device."""
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        if model is None or tokenizer is None:
            model, tokenizer = _load(config, self.dtype)
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        # transformers 5.17 names the cache argument of a base model's forward `past_key_values`;
        # later releases name it `cache`.
        parameters = inspect.signature(self.model.base_model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id: int = int(self.tokenizer.pad_token_id)
        self.batch_size = config.max_batch_size
        # Running count of the tokens the scoring passes ran (real and pad): what a throughput
        # figure should divide by. Reset it freely.
        self.tokens_computed = {"tokens": 0, "pad_tokens": 0, "passes": 0}
        if config.max_padding is not None:
            self.max_padding = config.max_padding
        else:
            self.max_padding = 0.1 if self.device.type == "cpu" else 0.3

    # -- prompts -------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text up to the start of the assistant's answer."""
        if getattr(self.tokenizer, "chat_template", None):
            # tokenize=False: the rendered text, not ids or a BatchEncoding.
            return cast(str, self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
        # A model without a chat template (tests' tiny models): a plain transcript.
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant: "

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def label_token_ids(self, labels: Sequence[str], cue: str) -> list[int]:
        """The token each label starts with when written right after the cue.

        Labels must be single, distinct tokens after the cue; otherwise a first-token
        probability would mix two answers (e.g. "1" and "10"), so we refuse.
        """
        base = self.encode(cue)
        ids: list[int] = []
        for label in labels:
            full = self.encode(cue + label)
            if full[: len(base)] != base or len(full) != len(base) + 1:
                raise ValueError(f"Answer {label!r} is not a single token after {cue!r} for this tokenizer.")
            ids.append(full[-1])
        if len(set(ids)) != len(ids):
            raise ValueError(f"Answers {list(labels)} share a first token for this tokenizer.")
        return ids

    # -- scoring ------------------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest], *, decoding: Decoding) -> list[ScoreResult]:
        if not requests:
            return []
        started = time.perf_counter()
        written = self._rationales(requests, decoding) if decoding.rationale else [("", None) for _ in requests]
        rationales = [text for text, _ in written]
        texts = [
            self.render(r.messages) + (rationale + RATIONALE_CUE if decoding.rationale else "") + r.cue
            for r, rationale in zip(requests, rationales, strict=True)
        ]
        label_ids: list[list[int] | None] = []
        errors: list[str] = []
        for r in requests:
            try:
                label_ids.append(self.label_token_ids(r.labels, r.cue))
                errors.append("")
            except ValueError as exc:
                label_ids.append(None)
                errors.append(str(exc))
        sequences = [self.encode(t) for t in texts]
        logits = self.last_position_logits(sequences, [r.prefix_group for r in requests])
        # One pass serves the whole batch: each judgment's latency is its share of the batch's
        # time, by its prompt's tokens (a long prompt cost more of it than a short one).
        batch_ms = (time.perf_counter() - started) * 1000
        tokens = sum(len(s) for s in sequences) or 1
        results = []
        for i, r in enumerate(requests):
            latency_ms = int(batch_ms * len(sequences[i]) / tokens)
            prefix = rationales[i] + RATIONALE_CUE + r.cue if decoding.rationale else r.cue
            ids = label_ids[i]
            if ids is None:
                results.append(ScoreResult(key=r.key, status="error", error=errors[i], latency_ms=latency_ms))
                continue
            results.append(self._read(r, logits[i], ids, prefix, latency_ms, decoding.min_valid_mass))
            results[-1].rationale = rationales[i].strip()
            results[-1].prompt_tokens, results[-1].generated_tokens = _token_counts(len(sequences[i]), written[i][1])
        return results

    def _read(
        self, request: ScoreRequest, logits: torch.Tensor, ids: list[int], prefix: str, latency_ms: int,
        min_valid_mass: float | None,
    ) -> ScoreResult:
        full = torch.softmax(logits, dim=-1)
        picked = torch.softmax(logits[ids], dim=-1).tolist()
        probabilities = dict(zip(request.labels, picked, strict=True))
        top_id = int(torch.argmax(logits))
        top_text = cast(str, self.tokenizer.decode([top_id]))  # one sequence of ids: one string
        valid_mass = float(full[ids].sum())
        parseable = answer_given(greedy_is_label=top_id in ids, valid_mass=valid_mass, min_valid_mass=min_valid_mass)
        return ScoreResult(
            key=request.key,
            status="ok" if parseable else "unparseable",
            probabilities=probabilities,
            label=label_argmax(probabilities) if parseable else None,
            raw_text=prefix + top_text,
            latency_ms=latency_ms,
            source="logits",
            valid_mass=valid_mass,
        )

    @torch.inference_mode()
    def last_position_logits(
        self, sequences: Sequence[Sequence[int]], groups: Sequence[object] | None = None
    ) -> torch.Tensor:
        """Logits at each sequence's last token, [len(sequences), vocab], float32 on the CPU.

        Shared prefixes are computed once, at two levels: the prefix every sequence shares (the
        system prompt), and within each of `groups` (sequences with an equal, non-None group
        key, e.g. the attributes of one rated response) the further prefix its members share.
        Each member then runs only its own suffix against the cached prefix. Groups whose
        extra shared prefix is shorter than MIN_SHARED_PREFIX are not worth a pass and run as
        plain suffixes.
        """
        n = len(sequences)
        if n == 0:
            return torch.empty(0, 0)
        prefix_len = shared_prefix_length(sequences)
        if prefix_len < MIN_SHARED_PREFIX:
            prefix_len = 0
        root = _Past.empty()
        if prefix_len:
            root = self._extend(root, torch.zeros(1, dtype=torch.long), [list(sequences[0][:prefix_len])])
        # Members of each prefix group, and how far beyond the common prefix they agree.
        members: dict[object, list[int]] = {}
        for i, g in enumerate(groups if groups is not None else [None] * n):
            if g is not None:
                members.setdefault(g, []).append(i)
        grouped: list[tuple[list[int], int]] = []
        in_group: set[int] = set()
        for rows in members.values():
            extra = shared_prefix_length([sequences[i] for i in rows]) - prefix_len if len(rows) > 1 else 0
            if extra >= MIN_SHARED_PREFIX:
                grouped.append((rows, prefix_len + extra))
                in_group.update(rows)
        loose = [i for i in range(n) if i not in in_group]
        out: list[torch.Tensor | None] = [None] * n
        if loose:
            self._suffixes(root, [0] * len(loose), loose, [prefix_len] * len(loose), sequences, out)
        if grouped:
            # Group prefixes in length-bucketed batches; then every member's suffix against its
            # group's row of that batch's cache.
            group_batches = length_batches(
                [end - prefix_len for _, end in grouped],
                batch_tokens=self.config.batch_tokens, max_batch_size=self.batch_size, max_padding=self.max_padding,
            )
            for batch in group_batches:
                def run(gs: Sequence[int]) -> list[None]:
                    past = self._extend(
                        root, torch.zeros(len(gs), dtype=torch.long),
                        [list(sequences[grouped[g][0][0]][prefix_len : grouped[g][1]]) for g in gs],
                    )
                    source, rows, starts = [], [], []
                    for k, g in enumerate(gs):
                        for i in grouped[g][0]:
                            source.append(k)
                            rows.append(i)
                            starts.append(grouped[g][1])
                    self._suffixes(past, source, rows, starts, sequences, out)
                    return [None] * len(gs)

                run_halving_on_oom(batch, run)
        return torch.stack([t for t in out if t is not None])

    def _suffixes(
        self, past: _Past, source: list[int], rows: list[int], starts: list[int],
        sequences: Sequence[Sequence[int]], out: list[torch.Tensor | None],
    ) -> None:
        """Last-position logits of sequences[rows[k]][starts[k]:] after row source[k] of `past`."""
        lengths = [len(sequences[i]) - s for i, s in zip(rows, starts, strict=True)]
        batches = length_batches(
            lengths, batch_tokens=self.config.batch_tokens, max_batch_size=self.batch_size,
            max_padding=self.max_padding,
        )
        for batch in batches:
            def forward(ks: Sequence[int]) -> list[torch.Tensor]:
                suffixes = [list(sequences[rows[k]][starts[k] :]) for k in ks]
                index = torch.tensor([source[k] for k in ks], dtype=torch.long)
                return list(self._forward_last(past, index, suffixes))

            for k, row_logits in zip(batch, run_halving_on_oom(batch, forward), strict=True):
                out[rows[k]] = row_logits

    def _run(self, past: _Past, index: torch.Tensor, suffixes: list[list[int]], *, keep: bool):
        """Forward `suffixes` (right-padded) after rows `index` of `past`: (hidden, new past)."""
        rows, width = len(suffixes), max(len(s) for s in suffixes)
        real = sum(len(s) for s in suffixes)
        self.tokens_computed["tokens"] += real
        self.tokens_computed["pad_tokens"] += rows * width - real
        self.tokens_computed["passes"] += 1
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros((rows, width), dtype=torch.long)
        for r, s in enumerate(suffixes):
            input_ids[r, : len(s)] = torch.tensor(s)
            new_mask[r, : len(s)] = 1
        # Each row continues at its own position: a padded group prefix leaves masked holes in
        # the cache, and rotary positions must skip them, so position ids are explicit.
        starts = past.next_position.index_select(0, index)
        position_ids = starts[:, None] + torch.arange(width)[None, :]
        mask = torch.cat([past.mask.index_select(0, index), new_mask], dim=1)
        cache = past.select(index) if past.length else None
        kwargs: dict = {"use_cache": keep or cache is not None}
        if cache is not None:
            kwargs[self.cache_argument] = cache
        output = self.model.base_model(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
            position_ids=position_ids.to(self.device), **kwargs,
        )
        new_past = None
        if keep:
            cache = getattr(output, "cache", None)
            cache = cache if cache is not None else output.past_key_values
            lengths = torch.tensor([len(s) for s in suffixes], dtype=torch.long)
            new_past = _Past(cache=cache, mask=mask, next_position=starts + lengths)
        return output.last_hidden_state, new_past

    def _extend(self, past: _Past, index: torch.Tensor, suffixes: list[list[int]]) -> _Past:
        _, new_past = self._run(past, index, suffixes, keep=True)
        assert new_past is not None
        return new_past

    def _forward_last(self, past: _Past, index: torch.Tensor, suffixes: list[list[int]]) -> torch.Tensor:
        hidden, _ = self._run(past, index, suffixes, keep=False)
        # Right padding: the pads come after the token we read, so they change nothing; only
        # that token's hidden state goes through the vocabulary head.
        last = torch.tensor([len(s) - 1 for s in suffixes], device=self.device)
        h = hidden[torch.arange(len(suffixes), device=self.device), last]
        return self._head(h).cpu()

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """The vocabulary head in float32 whatever the model's dtype: bf16 logits are rounded to
        ~3 significant digits before the softmax. On SmolLM2 in bf16 (6 pairs, both orders) this
        cut the mean error of the verdict probabilities against fp32 from 0.0105 to 0.0068; the
        rest is the bf16 forward pass itself. Chunked over the vocabulary, so at most
        HEAD_CHUNK rows of the weight are ever held in float32."""
        head = self.model.get_output_embeddings()
        if head.weight.dtype == torch.float32:
            return head(h).float()
        bias = getattr(head, "bias", None)
        chunks = []
        for start in range(0, head.weight.shape[0], HEAD_CHUNK):
            weight = head.weight[start : start + HEAD_CHUNK].float()
            part = bias[start : start + HEAD_CHUNK].float() if bias is not None else None
            chunks.append(torch.nn.functional.linear(h.float(), weight, part))
        return torch.cat(chunks, dim=1)

    # -- generation ---------------------------------------------------------------------------

    def _rationales(self, requests: Sequence[ScoreRequest], decoding: Decoding) -> list[tuple[str, int | None]]:
        """The model's own explanation, cut where it starts to write its answer, with the
        token count of the prompt it was written from."""
        prompts = [(r.key, r.messages) for r in requests]
        texts = self.generate(prompts, decoding=Decoding(max_new_tokens=decoding.rationale_tokens))
        cuts = []
        for request, result in zip(requests, texts, strict=True):
            text = result.text
            at = text.find(request.cue)
            cuts.append(((text[:at] if at >= 0 else text).rstrip(), result.prompt_tokens))
        return cuts

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[tuple[object, tuple[Message, ...]]], *, decoding: Decoding,
        on_tokens: Callable[[int], None] | None = None, on_result: Callable[[GenerateResult], None] | None = None,
    ) -> list[GenerateResult]:
        """Answers to `prompts`, several per forward pass.

        Batches are cut as for judging (`length_batches`: neighbours in length share a batch,
        with the same token budget and batch size), on prompt length plus the answer budget (the
        cache holds both). The padding cap is at least GENERATE_MIN_PADDING: a pad token costs
        only in the prefill and in attention, while each extra batch costs a whole decoding
        loop (on the demo, a 60-token prompt split off from ten 30-token ones took 134 s alone).
        `on_tokens(n)` hears of the n new tokens of each decoding step (a run page's live count)
        and `on_result` of each answer as soon as its row ends, before the rest of its batch."""
        encoded = [self.encode(self.render(messages)) for _, messages in prompts]
        results: list[GenerateResult | None] = [None] * len(prompts)
        batches = length_batches(
            [len(e) + decoding.max_new_tokens for e in encoded],
            batch_tokens=self.config.batch_tokens, max_batch_size=self.batch_size,
            max_padding=max(self.max_padding, GENERATE_MIN_PADDING),
        )
        for batch in batches:
            def run(rows: Sequence[int]) -> list[GenerateResult]:
                def finished(row: int, result: GenerateResult) -> None:
                    results[rows[row]] = result
                    if on_result is not None:
                        on_result(result)

                return self._generate_batch(
                    [encoded[i] for i in rows], [prompts[i][0] for i in rows], decoding,
                    on_tokens=on_tokens, on_row=finished,
                )

            run_halving_on_oom(batch, run)
        return [r for r in results if r is not None]

    def _generate_batch(
        self, rows: list[list[int]], keys: list[object], decoding: Decoding, *,
        on_tokens: Callable[[int], None] | None = None,
        on_row: Callable[[int, GenerateResult], None] | None = None,
    ) -> list[GenerateResult]:
        started = time.perf_counter()
        width = max(len(r) for r in rows)
        # Generation appends on the right, so prompts are padded on the left.
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        eos = _eos_ids(self.model, self.tokenizer)
        watch = _RowWatch(
            rows=rows, eos=eos, started=started,
            decode=lambda ids: cast(str, self.tokenizer.decode(ids, skip_special_tokens=True)).strip(),
            keys=keys, on_tokens=on_tokens, on_row=on_row,
        )
        sample = decoding.temperature > 0
        self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            max_new_tokens=decoding.max_new_tokens,
            do_sample=sample,
            temperature=decoding.temperature if sample else None,
            top_p=None,
            top_k=None,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(eos) or None,
            streamer=watch,
        )
        watch.end()  # rows that used their whole budget end with the batch
        return watch.results()


def _token_counts(scored: int, rationale_prompt: int | None) -> tuple[int, int]:
    """(prompt tokens, generated tokens) of one scored judgment. The answer's next-token
    distribution is read at the end of the `scored` sequence: one token written. Without a
    rationale the whole sequence (rendered prompt and cue) was the prompt, as an openai server
    counts a prefilled cue; with one, the prompt is what the rationale was written from and
    everything after it (rationale, cue) counts as written, as a server without prefill counts it."""
    if rationale_prompt is None:
        return scored, 1
    return rationale_prompt, max(0, scored - rationale_prompt) + 1


def _eos_ids(model, tokenizer) -> set[int]:
    """The tokens that end an answer: the model's generation config's, else the tokenizer's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = tokenizer.eos_token_id
    if configured is None:
        return set()
    return {int(t) for t in (configured if isinstance(configured, list | tuple) else [configured])}


class _RowWatch:
    """A `generate` streamer that follows each row of a batch: counts the new tokens of every
    step and hands a row's answer on the moment it writes an end token, so a run page shows
    answers while longer ones in the same batch are still being written.

    A row's latency is its share of the batch's time: the time until it ended, divided among
    the rows by the tokens (prompt and answer) each had computed by then."""

    def __init__(
        self, *, rows: list[list[int]], eos: set[int], started: float, decode: Callable[[list[int]], str],
        keys: list[object], on_tokens: Callable[[int], None] | None,
        on_row: Callable[[int, GenerateResult], None] | None,
    ) -> None:
        self.prompt_tokens = [len(r) for r in rows]
        self.eos = eos
        self.started = started
        self.decode = decode
        self.keys = keys
        self.on_tokens = on_tokens
        self.on_row = on_row
        self.answers: list[list[int]] = [[] for _ in rows]
        self.done: list[GenerateResult | None] = [None] * len(rows)
        self.seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt:  # the first call carries the prompts themselves
            self.seen_prompt = True
            return
        new = 0
        for row, token in enumerate(value.reshape(-1).tolist()):
            if self.done[row] is not None:
                continue
            if int(token) in self.eos:
                self._finish(row)
                continue
            self.answers[row].append(int(token))
            new += 1
        if new and self.on_tokens is not None:
            self.on_tokens(new)

    def end(self) -> None:
        for row in range(len(self.done)):
            if self.done[row] is None:
                self._finish(row)

    def _finish(self, row: int) -> None:
        seconds = time.perf_counter() - self.started
        computed = [p + len(a) for p, a in zip(self.prompt_tokens, self.answers, strict=True)]
        share = computed[row] / max(1, sum(computed))
        result = GenerateResult(key=self.keys[row], text=self.decode(self.answers[row]),
                                latency_ms=int(seconds * share * 1000),
                                prompt_tokens=self.prompt_tokens[row], generated_tokens=len(self.answers[row]))
        self.done[row] = result
        if self.on_row is not None:
            self.on_row(row, result)

    def results(self) -> list[GenerateResult]:
        return [r for r in self.done if r is not None]


class _Past:
    """A key/value cache over some rows of prefix tokens, with its attention mask (0 where a
    row was padded) and the position id each row continues at."""

    def __init__(self, *, cache, mask: torch.Tensor, next_position: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask
        self.next_position = next_position

    @classmethod
    def empty(cls) -> _Past:
        return cls(cache=None, mask=torch.zeros((1, 0), dtype=torch.long), next_position=torch.zeros(1, dtype=torch.long))

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])

    def select(self, index: torch.Tensor):  # -> DynamicCache over rows `index`
        """A new cache holding rows `index` (repeats allowed); this one stays untouched."""
        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in self.cache.layers]
        for layer in cache.layers:
            layer.batch_select_indices(index.to(layer.keys.device))
        return cache


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every sequence shares, leaving at least one token each."""
    if not sequences:
        return 0
    first = sequences[0]
    limit = min(len(s) for s in sequences) - 1
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n
