"""The transformers backend on a tiny random model: logits, probabilities, batching, OOM halving.

No mocks: a real Llama (random weights) and a real trained tokenizer, built in a temp dir."""

from __future__ import annotations

import math

import pytest
import torch
from test_judge_fixtures import tiny_model_dir  # noqa: F401  (fixture)

from judges import prompts
from judges.inference import BackendConfig, ScoreRequest, load_backend
from judges.inference.base import Decoding
from judges.inference.batching import length_batches, run_halving_on_oom
from judges.inference.transformers_backend import shared_prefix_length


@pytest.fixture
def backend(tiny_model_dir):  # noqa: F811
    return load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir), max_batch_size=3,
                                      batch_tokens=400))


def _requests() -> list[ScoreRequest]:
    out = []
    for i, (question, first, second) in enumerate([
        ("What is two plus two?", "four", "five"),
        ("Hello?", "Hello there, how are you today? " * 3, "Blue"),
        ("The capital of France?", "Paris", "It is Paris. " * 6),
        ("Colour?", "Blue is a colour.", "Red"),
    ]):
        messages = prompts.render_messages(
            system=prompts.RANKING_SYSTEM, user=prompts.RANKING_USER,
            values={"prompt": question, "response_first": first, "response_second": second},
        )
        out.append(ScoreRequest(messages=messages, labels=prompts.VERDICT_LABELS, key=i))
    return out


def _full_last_logits(backend, text: str) -> torch.Tensor:
    ids = torch.tensor([backend.encode(text)])
    with torch.inference_mode():
        return backend.model(input_ids=ids).logits[0, -1].float()


def test_last_position_logits_equal_a_full_forward_per_prompt(backend):
    texts = [backend.render(r.messages) + r.cue for r in _requests()]
    sequences = [backend.encode(t) for t in texts]
    # The shared system prompt is long enough to be run once and reused from the cache.
    assert shared_prefix_length(sequences) >= 16
    batched = backend.last_position_logits(sequences)
    for text, row in zip(texts, batched, strict=True):
        assert torch.allclose(row, _full_last_logits(backend, text), atol=1e-4)


def test_last_position_logits_without_shared_prefix(backend):
    sequences = [backend.encode(t) for t in ["Blue", "Hello there, how are you today?", "Paris [[A"]]
    assert shared_prefix_length(sequences) == 0
    batched = backend.last_position_logits(sequences)
    for seq, row in zip(sequences, batched, strict=True):
        assert torch.allclose(row, _full_last_logits(backend, backend.tokenizer.decode(seq)), atol=1e-4)


def test_probabilities_are_a_softmax_over_the_valid_tokens_only(backend):
    requests = _requests()
    results = backend.score(requests, decoding=Decoding())
    for request, result in zip(requests, results, strict=True):
        logits = _full_last_logits(backend, backend.render(request.messages) + request.cue)
        ids = backend.label_token_ids(request.labels, request.cue)
        expected = torch.softmax(logits[ids], dim=-1).tolist()
        assert list(result.probabilities) == ["A", "B", "C"]
        assert list(result.probabilities.values()) == pytest.approx(expected, abs=1e-4)
        assert result.valid_mass == pytest.approx(float(torch.softmax(logits, -1)[ids].sum()), abs=1e-5)
        # Parseable exactly when the greedy next token is itself a label; never guessed.
        greedy_is_label = int(torch.argmax(logits)) in ids
        assert result.status == ("ok" if greedy_is_label else "unparseable")
        assert (result.label is not None) == greedy_is_label
        assert result.raw_text.startswith("[[")


def test_expected_score_is_the_probability_weighted_mean(backend):
    messages = prompts.render_messages(
        system=prompts.RATING_SYSTEM, user=prompts.RATING_USER,
        values={"prompt": "Hello?", "response": "Hello there", "attribute": "helpfulness",
                "min_value": 0, "max_value": 4},
    )
    (result,) = backend.score([ScoreRequest(messages=messages, labels=tuple("01234"))], decoding=Decoding())
    p = result.probabilities
    assert sum(p.values()) == pytest.approx(1.0)
    assert result.expected([0, 1, 2, 3, 4]) == pytest.approx(sum(int(k) * v for k, v in p.items()))


def test_multi_token_answers_are_refused_not_mixed(backend):
    messages = ({"role": "user", "content": "Rate 1 to 10"},)
    (result,) = backend.score(
        [ScoreRequest(messages=messages, labels=tuple(str(v) for v in range(1, 11)))], decoding=Decoding()
    )
    assert result.status == "error" and "single token" in result.error


def test_rationale_is_written_then_the_verdict_read_after_the_cue(backend):
    (result,) = backend.score(_requests()[:1], decoding=Decoding(rationale=True, rationale_tokens=6))
    assert "Final answer: [[" in result.raw_text
    assert set(result.probabilities) == {"A", "B", "C"}


def test_length_batches_group_neighbours_and_respect_the_token_budget():
    lengths = [50, 10, 12, 48, 11, 200]
    batches = length_batches(lengths, batch_tokens=100, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 100
    assert batches[0] == [1, 4, 2]


def test_cuda_out_of_memory_halves_the_batch_until_it_fits():
    seen: list[int] = []

    def forward(rows):
        seen.append(len(rows))
        if len(rows) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [r * 10 for r in rows]

    assert run_halving_on_oom(list(range(8)), forward) == [r * 10 for r in range(8)]
    assert seen[:3] == [8, 4, 2]


def test_other_errors_are_not_retried_as_out_of_memory():
    def forward(rows):
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_halving_on_oom([1, 2, 3], forward)


ATTRIBUTES = [
    ("helpfulness", "Overall helpfulness of the response."),
    ("correctness", "Inclusion of all pertinent facts without errors."),
    ("coherence", "Consistency and clarity of expression."),
    ("complexity", "Intellectual depth required to write the response."),
    ("verbosity", "Amount of detail relative to what the prompt asks for."),
]


def _rating_requests(grouped: bool) -> list[ScoreRequest]:
    out = []
    for r, (question, response) in enumerate([
        ("What is two plus two?", "Two plus two is four, as anyone can check on their fingers. " * 2),
        ("The capital of France?", "Paris"),
        ("Colour?", "Blue is a colour. Red is a colour too. " * 4),
    ]):
        for name, description in ATTRIBUTES:
            messages = prompts.render_messages(
                system=prompts.RATING_SYSTEM, user=prompts.RATING_USER,
                values={"prompt": question, "response": response, "attribute": name, "description": description,
                        "min_value": 0, "max_value": 4, "anchors": "0 = bad, 4 = good"},
            )
            out.append(ScoreRequest(messages=messages, labels=tuple("01234"), key=(r, name),
                                    prefix_group=r if grouped else None))
    return out


def test_rating_template_puts_the_attribute_after_the_response():
    user = prompts.RATING_USER
    assert user.index("{response}") < min(user.index(k) for k in ("{attribute}", "{description}", "{anchors}"))


def test_attributes_of_one_response_share_its_prefix_and_give_the_same_probabilities(backend):
    grouped, plain = _rating_requests(True), _rating_requests(False)
    sequences = [backend.encode(backend.render(r.messages) + r.cue) for r in grouped]
    # Within a response, the attributes share far more than the system prompt: that is the
    # prefix run once per group.
    assert shared_prefix_length(sequences[:5]) > shared_prefix_length(sequences) + 16
    shared = backend.last_position_logits(sequences, [r.prefix_group for r in grouped])
    unshared = backend.last_position_logits(sequences)
    for seq, a, b in zip(sequences, shared, unshared, strict=True):
        full = _full_last_logits(backend, backend.tokenizer.decode(seq))
        assert torch.allclose(a, b, atol=1e-4)
        assert torch.allclose(a, full, atol=1e-4)
    # And through score(): the same probabilities, status and label either way.
    for a, b in zip(backend.score(grouped, decoding=Decoding()), backend.score(plain, decoding=Decoding()),
                    strict=True):
        assert (a.status, a.label) == (b.status, b.label)
        assert list(a.probabilities.values()) == pytest.approx(list(b.probabilities.values()), abs=1e-4)
        assert a.valid_mass == pytest.approx(b.valid_mass, abs=1e-4)


def test_groups_mixed_with_loose_requests_and_a_short_group_prefix(backend):
    """Grouped rating rows, ungrouped pairwise rows, and a group whose members share only the
    system prompt (too short a group prefix: they run as plain suffixes) in one call."""
    requests = _rating_requests(True) + _requests()
    requests.append(ScoreRequest(messages=_requests()[0].messages, labels=prompts.VERDICT_LABELS, prefix_group="x"))
    requests.append(ScoreRequest(messages=_requests()[1].messages, labels=prompts.VERDICT_LABELS, prefix_group="x"))
    sequences = [backend.encode(backend.render(r.messages) + r.cue) for r in requests]
    batched = backend.last_position_logits(sequences, [r.prefix_group for r in requests])
    for seq, row in zip(sequences, batched, strict=True):
        assert torch.allclose(row, _full_last_logits(backend, backend.tokenizer.decode(seq)), atol=1e-4)


def test_length_batches_close_before_padding_passes_the_cap():
    lengths = [159, 159, 166, 166, 241, 241, 247, 247, 259, 259, 281, 281, 284, 284, 307, 307]
    one = length_batches(lengths, batch_tokens=16384, max_batch_size=64)
    assert len(one) == 1  # no cap: everything padded to the longest
    capped = length_batches(lengths, batch_tokens=16384, max_batch_size=64, max_padding=0.1)
    assert sorted(i for b in capped for i in b) == list(range(len(lengths)))
    for batch in capped:
        padded = max(lengths[i] for i in batch) * len(batch)
        assert padded - sum(lengths[i] for i in batch) <= 0.1 * padded
    padded_total = sum(max(lengths[i] for i in b) * len(b) for b in capped)
    assert padded_total < 0.85 * max(lengths) * len(lengths)


def test_a_padding_cap_changes_batches_not_logits(tiny_model_dir):  # noqa: F811
    texts = ["Blue", "Hello there, how are you today? " * 4, "Paris [[A", "Red " * 9]
    loose = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir), max_padding=1.0))
    tight = load_backend(BackendConfig(backend="transformers", model_ref=str(tiny_model_dir), max_padding=0.0))
    sequences = [loose.encode(t) for t in texts]
    assert torch.allclose(loose.last_position_logits(sequences), tight.last_position_logits(sequences), atol=1e-4)


def test_a_prebuilt_model_is_wrapped_as_loaded_and_gives_the_same_scores(backend, tiny_model_dir):  # noqa: F811
    """The bench's GPU path wraps a model it built itself (random weights of a named
    architecture); the backend must treat it exactly as one it loaded."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judges.inference.transformers_backend import TransformersBackend

    wrapped = TransformersBackend(
        backend.config,
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    # The cache travels under whichever name the installed transformers gives it.
    assert wrapped.cache_argument in ("cache", "past_key_values")
    assert wrapped.cache_argument == backend.cache_argument
    ours, theirs = (b.score(_requests(), decoding=Decoding()) for b in (wrapped, backend))
    for a, b in zip(ours, theirs, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


def test_bench_builds_a_random_architecture_in_the_asked_dtype(tiny_model_dir):  # noqa: F811
    import importlib.util
    from pathlib import Path

    from transformers import AutoTokenizer

    path = Path(__file__).resolve().parent.parent / "bench" / "judge_throughput.py"
    spec = importlib.util.spec_from_file_location("judge_throughput", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    bench.ARCHITECTURES["tiny"] = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = bench.random_model("tiny", tokenizer, torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.num_hidden_layers == 2
    # The presets the GPU figures use are the sizes they claim (parameters, embeddings included).
    sizes = {name: _llama_parameters(bench.ARCHITECTURES[name], vocab=49152) / 1e9
             for name in ("llama-1b", "smollm2-1.7b", "llama-8b")}
    assert 1.0 < sizes["llama-1b"] < 1.3
    assert 1.6 < sizes["smollm2-1.7b"] < 1.8
    assert 7.0 < sizes["llama-8b"] < 7.8


def _llama_parameters(arch: dict, *, vocab: int) -> int:
    h, i, layers = arch["hidden_size"], arch["intermediate_size"], arch["num_hidden_layers"]
    kv = h // arch["num_attention_heads"] * arch["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    embeddings = vocab * h * (1 if arch["tie_word_embeddings"] else 2)
    return int(layers * per_layer + embeddings + h)


def test_a_valid_mass_floor_gives_the_argmax_over_valid_labels_when_the_scale_holds_enough(backend):
    requests = _requests()
    strict = backend.score(requests, decoding=Decoding())
    # Floor 0 is METRICS.md's reading: the argmax over the valid tokens, always.
    spec = backend.score(requests, decoding=Decoding(min_valid_mass=0.0))
    # A floor above every answer's valid mass: nothing counts, the evidence is still kept.
    floor = max(r.valid_mass for r in strict) + 1e-6
    refused = backend.score(requests, decoding=Decoding(min_valid_mass=floor))
    for s, a, r in zip(strict, spec, refused, strict=True):
        assert a.probabilities == s.probabilities and a.valid_mass == s.valid_mass
        assert a.status == "ok" and a.label == max(a.probabilities, key=a.probabilities.get)
        assert r.status == "unparseable" and r.label is None and r.probabilities == s.probabilities
    # The random model rarely answers greedily inside the scale: the strict rule refuses some.
    assert any(s.status == "unparseable" for s in strict)


def test_openai_logprobs_reader_applies_the_same_floor():
    from judges.inference.openai_backend import read_logprobs

    request = ScoreRequest(messages=({"role": "user", "content": "?"},), labels=("A", "B", "C"))
    # The server prefilled "[[" and the model then wrote "The" (greedy), with A and B behind it.
    tokens = [{"token": "The", "logprob": math.log(0.5), "top_logprobs": [
        {"token": "The", "logprob": math.log(0.5)}, {"token": "A", "logprob": math.log(0.3)},
        {"token": "B", "logprob": math.log(0.1)},
    ]}]
    strict = read_logprobs(tokens, request, prefilled=True)
    assert strict.status == "unparseable" and strict.valid_mass == pytest.approx(0.4)
    assert read_logprobs(tokens, request, prefilled=True, min_valid_mass=0.5).status == "unparseable"
    given = read_logprobs(tokens, request, prefilled=True, min_valid_mass=0.4)
    assert given.status == "ok" and given.label == "A"
    assert given.probabilities == pytest.approx({"A": 0.75, "B": 0.25, "C": 0.0})


def test_loaded_models_are_bounded_least_recently_used_first(tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    from judges.inference import clear_backends
    from judges.inference.registry import loaded_configs

    monkeypatch.setenv("CONCORDANCE_MAX_MODELS", "2")
    clear_backends()
    # Three different models (copies of the tiny one in three folders).
    folders = [str(tiny_model_dir)] + [shutil.copytree(tiny_model_dir, tmp_path / f"m{i}") for i in (1, 2)]
    configs = [BackendConfig(backend="transformers", model_ref=str(f)) for f in folders]
    first = load_backend(configs[0])
    load_backend(configs[1])
    assert load_backend(configs[0]) is first  # used again: now the most recent
    load_backend(configs[2])  # a third local model: the least recently used one goes
    assert loaded_configs() == [configs[0], configs[2]]
    assert load_backend(configs[0]) is first
    served = BackendConfig(backend="openai", model_ref="m", base_url="http://127.0.0.1:9/v1")
    load_backend(served)  # a server's model costs this process nothing: not counted
    assert loaded_configs() == [configs[2], configs[0], served]
    # New batch settings for a loaded model: the same weights, wrapped anew, not a second copy.
    reshaped = BackendConfig(backend="transformers", model_ref=folders[0], batch_tokens=123, max_batch_size=2)
    backend = load_backend(reshaped)
    assert backend is not first and backend.model is first.model and backend.config.batch_tokens == 123
    assert loaded_configs() == [configs[2], served, reshaped]
    clear_backends()


def test_the_vocabulary_head_runs_in_float32_for_a_bf16_model(tiny_model_dir, monkeypatch):  # noqa: F811
    from judges.inference import transformers_backend

    monkeypatch.setattr(transformers_backend, "HEAD_CHUNK", 100)  # several chunks over the 400-token vocabulary
    bf16 = transformers_backend.TransformersBackend(
        BackendConfig(backend="transformers", model_ref=str(tiny_model_dir), dtype="bfloat16"))
    h = torch.randn(3, bf16.model.config.hidden_size, dtype=torch.bfloat16)
    weight = bf16.model.get_output_embeddings().weight
    logits = bf16._head(h)
    assert logits.dtype == torch.float32 and logits.shape == (3, weight.shape[0])
    assert torch.allclose(logits, h.float() @ weight.float().T, atol=1e-5)


@pytest.mark.slow
def test_judge_throughput_bench_runs_end_to_end_and_prints_its_json(tmp_path):
    """The GPU figures come from this script on a machine these tests never see: make sure it
    runs, here on a two-layer architecture with SmolLM2's tokenizer written to a folder and read
    back (as a GPU machine does)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = str(root / "bench" / "judge_throughput.py")
    tokenizer = tmp_path / "tokenizer"
    subprocess.run([sys.executable, script, "--save-tokenizer", str(tokenizer)], check=True, cwd=root,
                   capture_output=True)
    done = subprocess.run(
        [sys.executable, script, "--arch", "tiny", "--tokenizer", str(tokenizer), "--dtype", "bfloat16",
         "--pairs", "2", "--text-pairs", "1", "--mtbench-tokens", "4", "--verdict-tokens", "2", "--rating-pairs", "1"],
        check=True, cwd=root, capture_output=True, text=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    keys = {"model", "pairs", "mtbench_per_s", "verdict_only_per_s", "concordance_per_s", "ratio_vs_mtbench",
            "ratio_vs_verdict_only", "matmul_peak_gflops", "peak_fraction"}  # BENCH.md
    assert keys <= set(figures) and figures["pairs"] == 2 and figures["text_pairs"] == 1
    assert figures["dtype"] == "bfloat16" and figures["model"] == "tiny (random weights)"
    assert all(figures[k] > 0 for k in ("mtbench_per_s", "concordance_per_s", "matmul_peak_gflops"))
