"""Loaded models per process, by configuration: a worker pays each load once and keeps the model
for the batches that follow.

Local models are bounded (CONCORDANCE_MAX_MODELS, default 2, least recently used goes first): a
GPU worker that serves runs of several judges, or of one judge whose batch settings changed
(a new configuration), must not pile 8B models up until CUDA runs out of memory.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import OrderedDict

from .base import Backend, BackendConfig

_BACKENDS: OrderedDict[BackendConfig, Backend] = OrderedDict()
_LOCK = threading.Lock()


def max_local_models() -> int:
    return max(1, int(os.environ.get("CONCORDANCE_MAX_MODELS", "2")))


def load_backend(config: BackendConfig) -> Backend:
    with _LOCK:
        backend = _BACKENDS.get(config)
        if backend is not None:
            _BACKENDS.move_to_end(config)
            return backend
        if config.backend == "transformers":
            same_weights = next((c for c in _BACKENDS if _weights(c) == _weights(config)), None)
            if same_weights is not None:
                # Only batch shaping changed: wrap the loaded weights anew instead of a second copy.
                loaded = _BACKENDS.pop(same_weights)
                backend = _share(config, loaded)
                _BACKENDS[config] = backend
                return backend
            _evict_local(keep=max_local_models() - 1)
        backend = _create(config)
        _BACKENDS[config] = backend
        return backend


def loaded_configs() -> list[BackendConfig]:
    """The configurations held now, least recently used first."""
    with _LOCK:
        return list(_BACKENDS)


def clear_backends() -> None:
    with _LOCK:
        _BACKENDS.clear()
    _release_memory()


def _evict_local(*, keep: int) -> None:
    local = [c for c in _BACKENDS if c.backend == "transformers"]
    for config in local[: max(0, len(local) - keep)]:
        del _BACKENDS[config]
    if len(local) > keep:
        _release_memory()


def _release_memory() -> None:
    # A batch still running elsewhere keeps its own reference; what nothing holds is freed here.
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _weights(config: BackendConfig) -> tuple:
    """What decides the loaded weights (not how batches are shaped)."""
    return (config.backend, config.model_ref, config.gguf_file, config.revision, config.dtype, config.device)


def _share(config: BackendConfig, loaded: Backend) -> Backend:
    from .transformers_backend import TransformersBackend

    assert isinstance(loaded, TransformersBackend)
    return TransformersBackend(config, model=loaded.model, tokenizer=loaded.tokenizer)


def _create(config: BackendConfig) -> Backend:
    if config.backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    raise ValueError(f"Unknown judge backend {config.backend!r} (use 'transformers' or 'openai').")
