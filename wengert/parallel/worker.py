"""What a worker process needs to train: the checked program and the train block's settings,
rebuilt once per process (a `Recipe`), and one step's gradients and statistics."""
from __future__ import annotations

import copy
import os
from typing import Any

import attrs
import numpy as np

_CACHE: dict[int, Any] = {}  # recipe key -> Trainer, so that a process lowers and loads its data once


@attrs.frozen
class Recipe:
    """Everything a process needs to rebuild the driver's Trainer: picklable, so it travels to
    spawned processes and Dask workers. Data paths are made absolute, since a worker's current
    directory is not the driver's; files must exist at those paths on every worker."""

    module: Any
    device: str
    seed: int
    train: str | None
    settings: Any
    detect_anomaly: bool
    key: int  # unique per run, so that a long-lived Dask worker never reuses another run's trainer

    @classmethod
    def of(cls, trainer) -> "Recipe":
        module = copy.copy(trainer.prog.module)
        module.data = {n: attrs.evolve(spec, base_dir=os.path.abspath(spec.base_dir))
                       for n, spec in module.data.items()}
        key = hash((id(trainer), os.getpid(), np.random.SeedSequence().entropy))
        return cls(module, trainer.prog.device, trainer.prog.seed, trainer.name, trainer.settings,
                   trainer.prog.detect_anomaly, key)

    def trainer(self):
        """This process's Trainer for the run (built on first use, then cached)."""
        if self.key not in _CACHE:
            from ..program import Program
            from ..train.loop import Trainer
            _CACHE.clear()  # one run at a time per process
            prog = Program(self.module, self.device, seed=self.seed)
            prog.detect_anomaly = self.detect_anomaly
            trainer = Trainer(prog, self.train, {"data": self.settings.data, "checkpoint": ""})  # the parent writes
            trainer.settings = self.settings
            _CACHE[self.key] = trainer
        return _CACHE[self.key]


def gradients(trainer, index) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """One minibatch of the training set: (values, adjusted gradients, examples), as the
    single-process loop computes them (clipping and gradient noise included)."""
    s = trainer.settings
    batch = trainer._columns(trainer.datasets[s.data], index)
    count = len(next(iter(batch.values()))) if batch else 0
    values, grads = trainer.prog.value_and_grad(s.minimize, trainer.param_names, batch,
                                                also=trainer.hidden_metrics + trainer.update_names, training=True)
    return values, trainer._adjust(grads), count


def state_updates(trainer, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The new values of the program's `update` statements (running statistics) after a step."""
    store = trainer.prog._store
    return {n: np.asarray(values[f"update:{n}"], dtype=store[n].dtype).reshape(store[n].shape)
            for n in trainer.prog.module.updates}


def add_statistics(trainer, sums: dict[str, float], values: dict[str, np.ndarray], count: int) -> None:
    """Sum the loss and the metrics times the batch's examples (the epoch's row divides by all)."""
    for key in [trainer.settings.minimize] + trainer.hidden_metrics:
        sums[key] = sums.get(key, 0.0) + float(np.asarray(values[key])) * count


def merge(total: dict[str, float], part: dict[str, float]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value


def deal(batches: list, parts: int) -> list[list]:
    """An epoch's shuffled minibatches dealt round-robin: disjoint shards, one per worker."""
    return [batches[i::parts] for i in range(parts)]
