"""bench/reports.py loaded as a module: its synthetic table (planted effects) is the report
tests' large fixture, so the tests and the bench measure the same data."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH_REPORTS = Path(__file__).resolve().parent.parent / "bench" / "reports.py"


def bench_reports() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_reports", BENCH_REPORTS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
