"""Inference backends: prompts in, scores out. Nothing here knows about the ORM.

`load_backend(config)` returns a backend kept for the life of the process, so a Celery worker
loads each model once and reuses it for every batch.
"""

from __future__ import annotations

from .base import Backend, BackendConfig, GenerateResult, ScoreRequest, ScoreResult
from .registry import clear_backends, load_backend

__all__ = [
    "Backend",
    "BackendConfig",
    "GenerateResult",
    "ScoreRequest",
    "ScoreResult",
    "clear_backends",
    "load_backend",
]
