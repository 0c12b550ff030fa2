"""Local Hugging Face models: verdicts and scores from the last position's logits.

Where the time goes in a judge forward pass, and what this backend does about it:
- padding: prompts are bucketed by length (`length_batches`), padded on the right;
- the vocabulary head: only the hidden state of each row's last real token goes through
  `lm_head` (one [rows x vocab] product, not [rows x tokens x vocab]);
- repeated prefixes: the system prompt and instructions every request shares are run once; their
  key/value cache is copied into each batch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch

from .base import BackendConfig, Decoding, GenerateResult, Message, ScoreRequest, ScoreResult, label_argmax
from .batching import length_batches, run_halving_on_oom

# A shared prefix shorter than this is not worth a separate pass and a cache copy per batch.
MIN_SHARED_PREFIX = 16
# After a rationale the verdict is read right after this fixed cue (plus the request's cue).
RATIONALE_CUE = "\n\nFinal answer: "


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
    def __init__(self, config: BackendConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        kwargs: dict[str, str] = {}
        if config.gguf_file:
            kwargs["gguf_file"] = config.gguf_file
        if config.revision:
            kwargs["revision"] = config.revision
        self.tokenizer = AutoTokenizer.from_pretrained(config.model_ref, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(config.model_ref, dtype=self.dtype, **kwargs)
        self.model = model.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id: int = int(self.tokenizer.pad_token_id)
        self.batch_size = config.max_batch_size

    # -- prompts -------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text up to the start of the assistant's answer."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
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
        rationales = self._rationales(requests, decoding) if decoding.rationale else ["" for _ in requests]
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
        logits = self.last_position_logits(sequences)
        latency_ms = int((time.perf_counter() - started) * 1000 / len(requests))
        results = []
        for i, r in enumerate(requests):
            prefix = rationales[i] + RATIONALE_CUE + r.cue if decoding.rationale else r.cue
            if label_ids[i] is None:
                results.append(ScoreResult(key=r.key, status="error", error=errors[i], latency_ms=latency_ms))
                continue
            results.append(self._read(r, logits[i], label_ids[i], prefix, latency_ms))
        return results

    def _read(self, request: ScoreRequest, logits: torch.Tensor, ids: list[int], prefix: str, latency_ms: int) -> ScoreResult:
        full = torch.softmax(logits, dim=-1)
        picked = torch.softmax(logits[ids], dim=-1).tolist()
        probabilities = dict(zip(request.labels, picked, strict=True))
        top_id = int(torch.argmax(logits))
        top_text = self.tokenizer.decode([top_id])
        # The greedy answer must itself be a valid label; otherwise the model did not answer
        # inside the scale and we store that, rather than the best of the valid tokens.
        parseable = top_id in ids
        return ScoreResult(
            key=request.key,
            status="ok" if parseable else "unparseable",
            probabilities=probabilities,
            label=label_argmax(probabilities) if parseable else None,
            raw_text=prefix + top_text,
            latency_ms=latency_ms,
            source="logits",
            valid_mass=float(full[ids].sum()),
        )

    @torch.inference_mode()
    def last_position_logits(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """Logits at each sequence's last token, [len(sequences), vocab], float32 on the CPU."""
        prefix_len = shared_prefix_length(sequences)
        if prefix_len < MIN_SHARED_PREFIX:
            prefix_len = 0
        prefix_cache = self._prefix_cache(list(sequences[0][:prefix_len])) if prefix_len else None
        suffix_lengths = [len(s) - prefix_len for s in sequences]
        out: list[torch.Tensor | None] = [None] * len(sequences)
        batches = length_batches(
            suffix_lengths, batch_tokens=self.config.batch_tokens, max_batch_size=self.batch_size
        )
        for batch in batches:
            def forward(rows: Sequence[int]) -> list[torch.Tensor]:
                suffixes = [list(sequences[i][prefix_len:]) for i in rows]
                return list(self._forward_last(suffixes, prefix_cache, prefix_len))

            for i, row_logits in zip(batch, run_halving_on_oom(batch, forward), strict=True):
                out[i] = row_logits
        return torch.stack([t for t in out if t is not None])

    def _prefix_cache(self, prefix: list[int]):  # -> DynamicCache
        ids = torch.tensor([prefix], device=self.device)
        out = self.model.base_model(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def _forward_last(self, suffixes: list[list[int]], prefix_cache, prefix_len: int) -> torch.Tensor:
        rows, width = len(suffixes), max(len(s) for s in suffixes)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for r, s in enumerate(suffixes):
            input_ids[r, : len(s)] = torch.tensor(s)
            mask[r, prefix_len : prefix_len + len(s)] = 1
        kwargs: dict = {"use_cache": prefix_cache is not None}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(rows)
            kwargs["cache"] = cache
        # Right padding keeps every real token's position id equal to its index; the pads at
        # the end are masked and come after the tokens we read, so they change nothing.
        hidden = self.model.base_model(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
        ).last_hidden_state
        last = torch.tensor([len(s) - 1 for s in suffixes], device=self.device)
        h = hidden[torch.arange(rows, device=self.device), last]
        return self.model.get_output_embeddings()(h).float().cpu()

    # -- generation ---------------------------------------------------------------------------

    def _rationales(self, requests: Sequence[ScoreRequest], decoding: Decoding) -> list[str]:
        """The model's own explanation, cut where it starts to write its answer."""
        prompts = [(r.key, r.messages) for r in requests]
        texts = self.generate(prompts, decoding=Decoding(max_new_tokens=decoding.rationale_tokens))
        cuts = []
        for request, result in zip(requests, texts, strict=True):
            text = result.text
            at = text.find(request.cue)
            cuts.append((text[:at] if at >= 0 else text).rstrip())
        return cuts

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[tuple[object, tuple[Message, ...]]], *, decoding: Decoding
    ) -> list[GenerateResult]:
        encoded = [self.encode(self.render(messages)) for _, messages in prompts]
        results: list[GenerateResult | None] = [None] * len(prompts)
        batches = length_batches(
            [len(e) + decoding.max_new_tokens for e in encoded],
            batch_tokens=self.config.batch_tokens,
            max_batch_size=self.batch_size,
        )
        for batch in batches:
            def run(rows: Sequence[int]) -> list[tuple[str, float]]:
                return self._generate_batch([encoded[i] for i in rows], decoding)

            for i, (text, seconds) in zip(batch, run_halving_on_oom(batch, run), strict=True):
                results[i] = GenerateResult(key=prompts[i][0], text=text, latency_ms=int(seconds * 1000))
        return [r for r in results if r is not None]

    def _generate_batch(self, rows: list[list[int]], decoding: Decoding) -> list[tuple[str, float]]:
        started = time.perf_counter()
        width = max(len(r) for r in rows)
        # Generation appends on the right, so prompts are padded on the left.
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        sample = decoding.temperature > 0
        output = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            max_new_tokens=decoding.max_new_tokens,
            do_sample=sample,
            temperature=decoding.temperature if sample else None,
            top_p=None,
            top_k=None,
            pad_token_id=self.pad_id,
        )
        seconds = (time.perf_counter() - started) / len(rows)
        new = output[:, width:]
        return [(self.tokenizer.decode(t, skip_special_tokens=True).strip(), seconds) for t in new]


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
