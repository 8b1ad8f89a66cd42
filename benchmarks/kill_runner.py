"""Indexing runs to kill, without paying the model's start-up for each one.

Starting `clsp-search index` costs about 8 s of imports and model loading on two cores; killing
it a hundred times would spend nearly all its time there, before any commit. This process loads the
model once and then, for each job read from stdin (one JSON object a line), forks a child that runs
the indexer's own entry point (`indexer.pipeline.run_index`, what the command calls) on the job's
manifest and collection. The child dies by SIGKILL: from the store's hook (`CLSP_SEARCH_KILL_AT`,
the job's `kill_at`) inside a commit, or from this process at a random moment (`kill_after_s`,
counted from the run's first commit so that the kill lands in a run with work left to do). One
JSON line answers each job: the child's exit status and how long it ran.

Torch runs on one thread here: a forked child cannot use the OpenMP thread pool its parent started
(it crashes in the first parallel kernel), and a pool is only started for more than one thread.

Used by tests/indexer/test_crash_kills.py and benchmarks/bench_crash.py:

    python -m benchmarks.kill_runner --model clsp-mini
    {"manifest": "...", "collection": "...", "kill_at": "before_db_commit:2"}
    {"manifest": "...", "collection": "...", "kill_after_s": 0.7}
    {"manifest": "...", "collection": "..."}                 # a run to completion (resume)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def stored_generation(collection: Path) -> int:
    """collection.json's generation, -1 while there is none (the first commit has not landed)."""
    try:
        return int(json.loads((collection / "collection.json").read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return -1


def _child(job: dict[str, Any], encoder: Any, model: str) -> None:
    """Run one indexing job in the forked child; never returns."""
    from indexer.pipeline import run_index

    os.dup2(2, 1)  # stdout is the protocol: anything the child prints goes to stderr
    if job.get("kill_at"):
        os.environ["CLSP_SEARCH_KILL_AT"] = job["kill_at"]
    else:
        os.environ.pop("CLSP_SEARCH_KILL_AT", None)
    code = 0
    try:
        run_index(job["manifest"], job["collection"], encoder, workers=0, progress=False, attributes=False,
                  commit_every=int(job.get("commit_every", 2)), model_spec=model, args={"model": model})
    except BaseException:  # noqa: BLE001 - reported on stderr, the exit status says it failed
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, job: dict[str, Any]) -> tuple[int, bool]:
    """The child's exit code, and whether this process killed it."""
    delay = job.get("kill_after_s")
    if delay is None:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), False
    collection = Path(job["collection"])
    before = stored_generation(collection)
    deadline: float | None = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if deadline is None and stored_generation(collection) > before:
            deadline = time.monotonic() + float(delay)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), True
        time.sleep(0.002)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clsp-mini")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from searchengine.model import load_model

    encoder = load_model(args.model, device="cpu")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child(job, encoder, args.model)
        code, killed_here = _wait(pid, job)
        print(json.dumps({"rc": code, "killed_here": killed_here, "seconds": time.perf_counter() - started}),
              flush=True)


class KillRunner:
    """The other end: starts this module as a process and sends it jobs (see the module doc)."""

    def __init__(self, model: str = "clsp-mini") -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.kill_runner", "--model", model], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._ready = False

    def _answer(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the kill runner exited ({self.proc.wait()}); its errors are on stderr above")
        return json.loads(line)

    def run(self, manifest: str | os.PathLike, collection: str | os.PathLike, **job: Any) -> dict[str, Any]:
        """One indexing run: `kill_at="point:n"`, `kill_after_s=seconds`, or neither (to completion)."""
        if not self._ready:
            assert self._answer() == {"ready": True}
            self._ready = True
        self.proc.stdin.write(json.dumps({"manifest": str(manifest), "collection": str(collection), **job}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> KillRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
