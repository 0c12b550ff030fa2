"""Shared pieces of the judge tests: a tiny random Llama with a tokenizer trained on the spot,
the real SmolLM2 GGUF, and a small project. Imported by the other test_judge*/test_worker* files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.models import Pair, Project
from annotate.services import project_create

TINY_CORPUS = [
    "Please act as an impartial judge and evaluate the quality of the responses.",
    "[User Question] What is two plus two? [The Start of Assistant A's Answer] four [The End]",
    "Output your final verdict: [[A]] if assistant A is better, [[B]] if B is better, [[C]] for a tie.",
    "Reply with the integer in double brackets, for example [[0]] or [[4]]. 0 1 2 3 4 5 6 7",
    "The capital of France is Paris. Blue is a colour. Hello there, how are you today?",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_model(directory: Path) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer trained on a few lines.

    Punctuation and digits are split before BPE, so "[[" then "A" or "4" are separate tokens,
    as in real judge vocabularies."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TINY_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=fast.pad_token_id, eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def make_project(*, name: str = "Judged", items: int = 2, attributes: list[dict] | None = None) -> Project:
    """Items with two responses each and one pair per item."""
    project = project_create(
        name=name,
        attributes=attributes if attributes is not None else [
            {"name": "helpfulness", "description": "Overall helpfulness of the response.",
             "anchors": {"0": "not helpful", "4": "perfectly helpful"}},
        ],
    )
    questions = [
        ("What is 2+2?", "4", "2+2 is 5."),
        ("What is the capital of France?", "Paris.", "The capital of France is Berlin."),
        ("Name a primary colour.", "Red.", "Turtles."),
    ]
    for i in range(items):
        prompt, good, bad = questions[i % len(questions)]
        item = project.items.create(external_id=f"item-{i}", prompt=prompt)
        a = item.responses.create(external_id=f"r{i}a", text=good, model="good-model")
        b = item.responses.create(external_id=f"r{i}b", text=bad, model="bad-model")
        Pair.objects.create(item=item, response_a=a, response_b=b)
    return project
