"""Benchmarks run by `make bench`; results are recorded in benchmarks/RESULTS.md."""

from __future__ import annotations

import os


def bench_models() -> list[str]:
    """Models to compare in one run: `CLSP_SEARCH_BENCH_MODELS` (comma-separated names or directories),
    by default the bundled clsp-mini alone. One run, because this machine's absolute times drift."""
    return [m.strip() for m in os.environ.get("CLSP_SEARCH_BENCH_MODELS", "clsp-mini").split(",") if m.strip()]
