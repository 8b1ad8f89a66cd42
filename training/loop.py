"""The loop every training run here shares: epochs, validation, export of the best epoch, resume.

`clsp-search train` (both towers' trainable parts) and `clsp-search tune-text` (the text head against a
locked speech side) differ only in what one epoch trains, what validation scores and which state they
keep; the rest is `TrainingRun`. An epoch ends with a validation pass every `validate_every` epochs
(held-out voices), a checkpoint export when the mean text->speech R@1 is the best so far, and a
resumable state file written new-then-renamed, so a killed run continues exactly where it stopped.
Every source of randomness is re-seeded per epoch by the subclasses, so a resumed run is the run.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.model.checkpoint import save_checkpoint

#: Precisions a run may compute in (`RunSettings.compute_dtype`).
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class RunSettings:
    """What every training run here shares: seed, optimiser schedule, feature workers, validation size."""

    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    workers: int = 2
    max_val_clips: int = 600
    #: Score validation (and export the best epoch so far) every this many epochs, and always at the
    #: schedule's last one. Training never depends on validation, so only the exported epoch can differ
    #: (the best of the epochs scored); validation is a tenth to a fifth of an epoch on the bundled corpus.
    validate_every: int = 1
    #: Precision of the run's big computations, "float32" or "bfloat16": the frozen text tower's pass over
    #: every caption while its features are cached, and the trained parts' forward and backward passes
    #: (autocast: weights, optimiser state and losses stay float32). On a CPU with AMX or AVX512-BF16 they
    #: run up to twice as fast (benchmarks/training/bench_training_precision.py). Validation and export
    #: stay float32, so the exported epoch is chosen on what search computes.
    compute_dtype: str = "float32"

    def check(self) -> None:
        """Refuse settings no run can use, before any work is done."""
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be at least 1, got {self.validate_every}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            hint = " ('auto' is resolved by precision.resolve_compute_dtype, as the CLI does)" \
                if self.compute_dtype == "auto" else ""
            raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, "
                             f"got {self.compute_dtype!r}{hint}")

    def scores_epoch(self, epoch: int, last: int) -> bool:
        """Whether 1-based `epoch` of a schedule ending at `last` is scored on validation and may be
        exported: every `validate_every`th epoch, and always the last one."""
        return epoch % self.validate_every == 0 or epoch == last


def same_settings(saved: dict[str, Any], settings: RunSettings) -> bool:
    """Whether a saved run's settings are these. A setting added after the run was saved is read at its
    default (every new setting defaults to the behaviour before it existed), so old runs still resume."""
    known = {f.name for f in fields(settings)}
    return {**asdict(type(settings)()), **{k: v for k, v in saved.items() if k in known}} == asdict(settings)


def cpu_autocast(dtype: str) -> torch.autocast:
    """CPU autocast to `dtype` (a COMPUTE_DTYPES name); a no-op for float32."""
    return torch.autocast("cpu", dtype=COMPUTE_DTYPES[dtype], enabled=dtype != "float32")


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine decay to zero at `total_steps`."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def save_run_state(path: Path, state: dict[str, Any]) -> None:
    """Write a run's resumable state to a new file, then rename it over the old one: a run killed
    while saving leaves the previous epoch's state intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_run_state(path: Path) -> dict[str, Any] | None:
    """The state `save_run_state` wrote, or None when the run has none yet."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def log_epoch(path: Path, record: dict[str, Any], log: Callable[[str], None]) -> None:
    """Append an epoch's record to the run's jsonl log and show it as one line."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    log("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))


def validation_score(record: dict[str, Any]) -> float:
    """What picks the exported epoch: the mean text->speech R@1 of the validation figures."""
    return float(np.mean([v for k, v in record.items() if k.startswith("val_") and k.endswith("t2s_R@1")] or [0.0]))


class TrainingRun(ABC):
    """A resumable run of `total_epochs` epochs over a model, exporting its best validated epoch.

    Subclasses set `out`, `settings`, `model`, `optimizer`, `scheduler` and `log_lines` in their
    constructor, then implement one epoch, validation, the extra state they keep and the record of
    how the exported checkpoint was made."""

    state_file: str
    log_file: str
    out: Path
    settings: RunSettings
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    log_lines: Callable[[str], None]

    def __init__(self) -> None:
        self.epoch = 0
        self.best_score = -1.0
        self.history: list[dict[str, Any]] = []

    @property
    @abstractmethod
    def total_epochs(self) -> int:
        """Epochs of the whole schedule (the learning-rate schedule ends there)."""

    @abstractmethod
    def train_epoch(self) -> dict[str, Any]:
        """Train one epoch (`self.epoch`, 0-based) and return its figures (loss, ...)."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Figures on validation voices, named `val_*`; the `val_*t2s_R@1` ones choose the export."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """What the exported checkpoint's config records of how it was made (one top-level key)."""

    def trained_state(self) -> dict[str, Any]:
        """The run's own weights to keep in its state file (the model's, by default)."""
        return {"model": self.model.state_dict()}

    def restore_trained_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])

    def check_resumable(self, state: dict[str, Any]) -> None:
        """Refuse a saved state that another configuration wrote."""
        if not same_settings(state["settings"], self.settings):
            raise ValueError(f"{self.out / self.state_file} was written with other settings {state['settings']}; "
                             "use a new --out or the same flags")

    # ---------------------------------------------------------------------------------- persistence
    def save_state(self) -> None:
        save_run_state(self.out / self.state_file, {
            **self.trained_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "history": self.history,
            "settings": asdict(self.settings),
        })

    def load_state(self) -> bool:
        """Continue from the saved state, if there is one; False when the run has none."""
        state = load_run_state(self.out / self.state_file)
        if state is None:
            return False
        self.check_resumable(state)
        self.restore_trained_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_score, self.history = state["epoch"], state["best_score"], state["history"]
        return True

    def start(self, resume: bool) -> None:
        """Resume when asked and possible; refuse to overwrite a run that was not asked to resume."""
        if resume and self.load_state():
            self.log_lines(f"resumed after epoch {self.epoch} of {self.total_epochs}")
        elif (self.out / self.state_file).is_file():
            raise FileExistsError(f"{self.out} holds a training run; pass --resume to continue it or choose a new --out")

    # ----------------------------------------------------------------------------------------- loop
    def run(self, stop_after_epoch: int | None = None) -> Path:
        """Train to the end, or only up to `stop_after_epoch` (a later `--resume` continues exactly)."""
        provenance = self.provenance()
        last = self.total_epochs if stop_after_epoch is None else min(stop_after_epoch, self.total_epochs)
        while self.epoch < last:
            started = time.time()
            epoch = self.epoch + 1
            record = {"epoch": epoch, **self.train_epoch()}
            scored = self.settings.scores_epoch(epoch, self.total_epochs)
            if scored:  # training never depends on validation: only the choice of exported epoch can
                record.update(self.validate())
            record["seconds"] = round(time.time() - started, 1)
            self.epoch = epoch
            if scored and validation_score(record) >= self.best_score:
                self.best_score = validation_score(record)
                (key, made), = provenance.items()
                save_checkpoint(self.model, self.out, extra={key: {**made, "epoch": epoch}})
                record["exported"] = True
            self.history.append(record)
            log_epoch(self.out / self.log_file, record, self.log_lines)
            self.save_state()
        return self.out
