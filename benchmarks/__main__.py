"""Run every benchmark module (`benchmarks/bench_*.py`, `benchmarks/training/bench_*.py`) in turn: `python -m benchmarks [NAME ...]`.

Each module has a `main()` that measures, prints a table and returns. Benchmarks report ratios
measured in one run (ours against a baseline) because this machine is shared and absolute times drift.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks

#: Sub-packages whose benchmarks `make bench` runs too (the training commands' benchmarks live in one).
SUBPACKAGES = ("training",)


def discover() -> dict[str, str]:
    """Short names of the benchmark modules (`bench_*`, here and in SUBPACKAGES) -> their module paths."""
    found = {m.name: f"benchmarks.{m.name}" for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")}
    for sub in SUBPACKAGES:
        package = importlib.import_module(f"benchmarks.{sub}")
        found.update({m.name: f"benchmarks.{sub}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
                      if m.name.startswith("bench_")})
    return dict(sorted(found.items()))


def run(names: list[str], modules: dict[str, str]) -> int:
    """Run the named benchmarks; a failing one is reported and the others still run."""
    failures = 0
    for name in names:
        module = importlib.import_module(modules[name])
        # Figures here move with the machine's other work: what else ran as it started goes with them.
        print(f"\n=== {name} === ({benchmarks.machine_load()} at its start)", flush=True)
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
    selected = [w if w.startswith("bench_") else f"bench_{w}" for w in wanted] or list(available)
    sys.exit(run(selected, available))
