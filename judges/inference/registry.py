"""One loaded model per process and configuration: a worker pays the load once."""

from __future__ import annotations

import threading

from .base import Backend, BackendConfig

_BACKENDS: dict[BackendConfig, Backend] = {}
_LOCK = threading.Lock()


def load_backend(config: BackendConfig) -> Backend:
    with _LOCK:
        backend = _BACKENDS.get(config)
        if backend is None:
            backend = _create(config)
            _BACKENDS[config] = backend
        return backend


def clear_backends() -> None:
    with _LOCK:
        _BACKENDS.clear()


def _create(config: BackendConfig) -> Backend:
    if config.backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    raise ValueError(f"Unknown judge backend {config.backend!r} (use 'transformers' or 'openai').")
