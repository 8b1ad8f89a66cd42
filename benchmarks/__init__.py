"""Benchmarks run by `make bench`; results are recorded in benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import time


def bench_models() -> list[str]:
    """Models to compare in one run: `CLSP_SEARCH_BENCH_MODELS` (comma-separated names or directories),
    by default the bundled clsp-mini alone. One run, because this machine's absolute times drift."""
    return [m.strip() for m in os.environ.get("CLSP_SEARCH_BENCH_MODELS", "clsp-mini").split(",") if m.strip()]


def machine_load(seconds: float = 1.0) -> str:
    """What else is running, said beside a benchmark's figures (the same code indexed at 127-148x or
    161-169x real time depending on it): the CPUs other processes kept busy over `seconds` of this
    process sleeping, from /proc/stat, and the 1-minute load average (which still counts a preceding
    benchmark of this same process)."""
    load = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    try:
        before_busy, before_own = _busy_seconds(), _own_seconds()
        time.sleep(seconds)
        others = (_busy_seconds() - before_busy - (_own_seconds() - before_own)) / seconds
    except (OSError, ValueError):
        return load
    return f"other processes busy on {max(others, 0.0):.2f} CPUs, {load}"


def _busy_seconds() -> float:
    """CPU seconds spent by every process since boot, idle and I/O wait left out (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
