"""Length-bucketed batches and the out-of-memory back-off, shared by the local backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def length_batches(
    lengths: Sequence[int], *, batch_tokens: int, max_batch_size: int, max_padding: float = 1.0
) -> list[list[int]]:
    """Indices grouped so that neighbours in length share a batch.

    Sorting by length first keeps padding small; a batch closes when its padded size
    (rows x longest row) would pass `batch_tokens`, so long prompts get small batches, or when
    its pad tokens would pass `max_padding` of its padded size: padding is computed and thrown
    away, so where a bigger batch buys little speed (a CPU) a small padding cap pays.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    real = 0
    for i in order:
        grown = max(longest, lengths[i])
        padded = grown * (len(current) + 1)
        if current and (
            len(current) >= max_batch_size
            or padded > batch_tokens
            or padded - (real + lengths[i]) > max_padding * padded
        ):
            batches.append(current)
            current, grown, real = [], lengths[i], 0
        current.append(i)
        longest = grown
        real += lengths[i]
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom_types: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError,)
    if hasattr(torch, "OutOfMemoryError"):
        oom_types += (torch.OutOfMemoryError,)
    return isinstance(exc, oom_types) or "out of memory" in str(exc).lower()


def run_halving_on_oom(items: Sequence[T], fn: Callable[[Sequence[T]], list[R]]) -> list[R]:
    """Run `fn` on the whole batch; on CUDA out-of-memory run it on each half instead.

    The halves recurse, so a batch shrinks until it fits; a single item that still does not
    fit re-raises, because no smaller batch exists.
    """
    try:
        return fn(items)
    except Exception as exc:
        if not is_out_of_memory(exc) or len(items) <= 1:
            raise
        _empty_cuda_cache()
    middle = len(items) // 2
    return run_halving_on_oom(items[:middle], fn) + run_halving_on_oom(items[middle:], fn)


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
