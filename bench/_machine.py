"""Which machine a benchmark ran on, and how fast it is at the report's kind of work.

The same code has read 2.5 s and 4.2 s for the 1M-annotation report on two of this project's
2-core machines (sessions 18 and 19, both quiet), so a time alone cannot say whether a change
made the code faster or the machine was. `reference_seconds` times one fixed workload made of
what the report spends its time on (a stable argsort of codes, a pandas group-by mean, a sparse
product against small integer weights), on one thread, the median of five runs. A figure
divided by it (`seconds_per_reference`) compares across machines better than the seconds do;
the ratios a script prints against a baseline in the same run remain the figures that hold.
The machine's own speed moves too: on session 19's, idle (vmstat: no steal), the workload read
0.24 to 0.37 s within a few minutes, so bench/reports.py times it before and after a size.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (the platform's name elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _workload(rng: np.random.Generator) -> None:
    codes = rng.integers(0, 24, 1_000_000)
    np.argsort(codes, kind="stable")
    frame = pd.DataFrame({"item": rng.integers(0, 25_000, 1_000_000), "value": rng.random(1_000_000)})
    frame.groupby("item")["value"].mean()
    sums = sp.random(25_000, 40, density=0.3, format="csr", random_state=0)
    weights = rng.integers(0, 4, (100, 25_000)).astype(np.uint8)
    sums.T @ weights.T.astype(np.float64)


def reference_seconds(runs: int = 5) -> float:
    """Median wall time of the fixed workload (seeded, so every machine does the same work)."""
    times = []
    for _ in range(runs):
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        _workload(rng)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def describe() -> dict:
    """cpu_model, cores and reference_seconds, for a benchmark's JSON line."""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "reference_seconds": reference_seconds()}


def summary(machine: dict) -> str:
    """describe()'s result and the load average, as a benchmark's first line."""
    return (f"machine: {machine['cores']} cores ({machine['cpu_model']}), load average {os.getloadavg()[0]:.2f}, "
            f"reference workload {machine['reference_seconds']:.3f} s (bench/_machine.py)")  # fmt: skip
