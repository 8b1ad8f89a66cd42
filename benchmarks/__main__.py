"""Run every benchmark module (`benchmarks/bench_*.py`) in turn: `python -m benchmarks [NAME ...]`.

Each module has a `main()` that measures, prints a table and returns. Benchmarks report ratios
measured in one run (ours against a baseline) because this machine is shared and absolute times drift.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def discover() -> list[str]:
    """Names of the benchmark modules, in a stable order."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))


def run(names: list[str]) -> int:
    """Run the named benchmarks; a failing one is reported and the others still run."""
    failures = 0
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            module.main()
        except Exception as exc:  # report and go on: one broken benchmark must not hide the others
            failures += 1
            print(f"{name} failed: {exc!r}", file=sys.stderr)
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    wanted = sys.argv[1:]
    available = discover()
    unknown = [w for w in wanted if w not in available and f"bench_{w}" not in available]
    if unknown:
        sys.exit(f"Unknown benchmark(s): {', '.join(unknown)}. Available: {', '.join(available)}")
    selected = [w if w.startswith("bench_") else f"bench_{w}" for w in wanted] or available
    sys.exit(run(selected))
