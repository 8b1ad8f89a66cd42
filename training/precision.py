"""Which precision CPU training computes in: `--compute-dtype auto | float32 | bfloat16`.

bf16 autocast halves the cost of clsp-mini's training on CPUs that multiply bf16 in hardware (AMX or
AVX512-BF16). Everywhere else PyTorch emulates bf16 products, and the same computations run several
times SLOWER than float32: with oneDNN held to AVX512 without its bf16 instructions, the caption pass
took 2.9x and a text-head step 3.3x as long as in float32, and held to AVX2, 6x and 30x
(benchmarks/RESULTS.md, "Training precision"). So `auto` picks bf16 only where it is native, and an
explicit `bfloat16` on another CPU is warned about before hours are spent.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

#: What `--compute-dtype` accepts; `auto` resolves to one of the other two.
COMPUTE_DTYPE_CHOICES = ("auto", "float32", "bfloat16")
#: CPU flags (Linux /proc/cpuinfo) of hardware bf16 products.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """Which of NATIVE_BF16_FLAGS the CPU lists; empty where /proc/cpuinfo cannot be read."""
    try:
        flags = set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()
    except OSError:
        return set()
    return flags & NATIVE_BF16_FLAGS


@functools.cache
def native_bf16_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 in hardware, and oneDNN is allowed to use it (an
    `ONEDNN_MAX_CPU_ISA` cap below AVX512_CORE_BF16 takes the instructions away). False where
    /proc/cpuinfo cannot be read: float32 is never the slow choice."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap not in ("ALL", "DEFAULT") and "BF16" not in cap and "AMX" not in cap:
        return False
    return bool(cpu_bf16_flags(cpuinfo))


def resolve_compute_dtype(requested: str, warn: Callable[[str], None], native: bool | None = None) -> str:
    """The precision a run computes in: `auto` is bfloat16 on a CPU with hardware bf16, else float32.
    An explicit `bfloat16` elsewhere is kept (a user may want the bits of a bf16 run) with a warning."""
    if requested not in COMPUTE_DTYPE_CHOICES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPE_CHOICES)}, got {requested!r}")
    native = native_bf16_cpu() if native is None else native
    if requested == "auto":
        return "bfloat16" if native else "float32"
    if requested == "bfloat16" and not native:
        warn("warning: this CPU has no hardware bf16 for PyTorch to use (avx512_bf16 or amx_bf16), so bf16 is emulated "
             "and training runs several times slower than in float32; pass --compute-dtype auto or float32")
    return requested
