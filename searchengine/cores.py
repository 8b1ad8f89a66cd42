"""How many cores this process may use, for sizing worker pools (indexing, corpus generation, Ray).

`os.cpu_count()` is the host's count: inside a container limited with `docker --cpus 2` on a 32-core
host it says 32, and 32 workers then share 2 cores' worth of time. This counts what the process is
actually allowed.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may use: the affinity set (`taskset`, a container's cpuset), lowered to a
    cgroup CPU quota where one is set (`docker --cpus 2` on a 32-core host gives 2, not 32)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, quota)) if quota else cores


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> int | None:
    """Cores this cgroup's CPU quota allows, rounded up, or None without one. cgroup v2 keeps it in
    `cpu.max` ("200000 100000" -> 2; "max ..." is none), v1 in `cpu.cfs_quota_us` / `cpu.cfs_period_us`
    (-1 is none). Only the process's own view of the hierarchy is read (a container's)."""
    def read(*parts: str) -> list[str] | None:
        try:
            with open(os.path.join(root, *parts)) as f:
                return f.read().split()
        except OSError:
            return None

    v2 = read("cpu.max")
    pairs = [v2[:2]] if v2 is not None else []
    for folder in ("cpu", "cpu,cpuacct"):
        quota, period = read(folder, "cpu.cfs_quota_us"), read(folder, "cpu.cfs_period_us")
        if quota and period:
            pairs.append([quota[0], period[0]])
    for pair in pairs:
        try:
            quota_us, period_us = int(pair[0]), int(pair[1])
        except (ValueError, IndexError):  # "max", or unreadable
            continue
        if quota_us > 0 and period_us > 0:
            return max(1, -(-quota_us // period_us))
    return None
