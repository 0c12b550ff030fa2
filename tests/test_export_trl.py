"""The DPO export drops into TRL's DPOTrainer as-is: one real training step on a tiny model."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from datasets import load_dataset

from exports.selectors import ExportFilters
from exports.services import ExportOptions, export_write
from tests.export_fixtures import build_export_project
from tests.test_judge_fixtures import build_tiny_model

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_dpo_export_trains_one_step_with_trl(tmp_path: Path):
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    project = build_export_project()
    out = tmp_path / "dpo.jsonl"
    export_write(project=project, options=ExportOptions("dpo", ExportFilters(), dpo_source="human"), out=out)
    dataset = load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(dataset) == 3

    model_dir = build_tiny_model(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    os.environ.setdefault("WANDB_DISABLED", "true")
    config = trl.DPOConfig(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, max_steps=1, report_to=[],
        logging_steps=1, save_strategy="no", use_cpu=True, max_length=128,
    )
    trainer = trl.DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    # DPO's loss at a random start is about log 2: a real, finite number from the exported rows.
    assert math.isfinite(result.training_loss) and 0 < result.training_loss < 10
