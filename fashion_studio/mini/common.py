"""What the fashion-mini training stages share: seeding, a step/time budget, the learning-rate schedule,
and writing a finished model folder."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MARKER = ".complete"


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Budget:
    """A stage runs `steps` optimizer steps, or stops earlier (with a warning) past `max_seconds`. A `paced`
    budget's learning-rate schedule follows its time as well as its steps (`schedule_step`)."""

    steps: int
    max_seconds: float
    paced: bool = False
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    stopped_early: bool = False

    def __iter__(self):
        log_every = max(1, self.steps // 20)
        for step in range(self.steps):
            if time.perf_counter() - self.started > self.max_seconds:
                self.stopped_early = True
                logger.warning("time budget of %.0f s reached after %d of %d steps", self.max_seconds, step, self.steps)
                return
            yield step
            self.done = step + 1
            if self.done % log_every == 0:
                logger.info("step %d/%d (%.0f s)", self.done, self.steps, self.elapsed)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def paced_step(self, step: int) -> int:
        """Where a learning-rate schedule over `steps` should stand at `step`: the step itself while the
        stage is at or ahead of an even pace (its share of the steps done at least its share of the budget
        spent), else the share of the budget spent times the planned steps. A stage its time budget stops has
        then decayed as a finished one does, rather than stopping at a high learning rate; one that keeps an
        even pace throughout follows the step schedule exactly (one behind it for a while reads the clock)."""
        return max(step, min(self.steps, int(self.steps * self.elapsed / self.max_seconds))) if self.max_seconds > 0 else step

    def schedule_step(self, step: int) -> int:
        """Where the stage's learning-rate schedule stands at `step`: `paced_step` for a paced budget, else
        the step itself. Every training loop asks this, so pacing is chosen once, where the budget is made."""
        return self.paced_step(step) if self.paced else step

    def summary(self) -> dict[str, Any]:
        return {"steps": self.done, "planned_steps": self.steps, "seconds": round(self.elapsed, 1), "stopped_early": self.stopped_early}


PACED_SCHEDULE = "cosine to a tenth of the peak, paced by the time budget"  # a paced stage's record says so


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: Any, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def mark_complete(folder: Path, info: dict[str, Any]) -> None:
    """One line of JSON: `fashion_studio.models` reports a local folder's marker line as its revision."""
    (folder / MARKER).write_text(json.dumps(info, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def is_complete(folder: Path, key: dict[str, Any]) -> bool:
    """Whether `folder` holds a finished stage with the same key (seed, sizes, version)."""
    try:
        return read_json(folder / MARKER).get("key") == key
    except (OSError, ValueError):
        return False


def count_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())
