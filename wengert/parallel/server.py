"""The parameter server of Downpour SGD: params split into shards, each a Dask actor that owns
its slice and applies pushed gradients with the run's optimizer (train/optim.py)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..train import optim

Arrays = dict[str, np.ndarray]


def partition(sizes: dict[str, int], shards: int) -> list[list[str]]:
    """Params by name into `shards` groups of about equal size (largest first, each to the
    lightest group); deterministic, so a restored shard owns the same names."""
    groups: list[list[str]] = [[] for _ in range(shards)]
    loads = [0] * shards
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        k = loads.index(min(loads))
        groups[k].append(name)
        loads[k] += sizes[name]
    return groups


def optimizer_slice(arrays: Arrays, names: list[str]) -> Arrays:
    """The part of an optimizer's `state_arrays` that belongs to `names` (plus the counters)."""
    keep = {"name", "step_count", "rng"}
    return {k: v for k, v in arrays.items()
            if k in keep or (k.startswith("slots/") and k.split("/")[1] in names)}


class ParameterShard:
    """A Dask actor holding some params (trained ones and `state`) and their optimizer state.

    Pushes carry a replica's sequence number; a push already applied (a replica task that
    Dask ran again after its worker died) is ignored, so a restarted replica adds nothing twice.
    Dask runs an actor's methods one at a time, so pushes never race."""

    def __init__(self, params: Arrays, trained: list[str], optimizer: tuple[str, dict[str, Any]],
                 optimizer_state: Arrays | None, seed: int):
        self.params = {n: np.array(v) for n, v in params.items()}
        self.trained = [n for n in trained if n in self.params]
        self.optimizer = optim.Optimizer(optimizer[0], dict(optimizer[1]), {n: self.params[n] for n in self.trained},
                                         seed=seed)
        if optimizer_state is not None:
            self.optimizer.load_state_arrays(optimizer_slice(optimizer_state, self.trained))
        self.applied: dict[int, int] = {}  # replica -> the last sequence number applied
        self.pushes = 0

    def fetch(self) -> Arrays:
        return {n: v.copy() for n, v in self.params.items()}

    def push(self, grads: Arrays, assign: Arrays, lr: float, replica: int, seq: int,
             fetch: bool = False) -> tuple[bool, Arrays | None]:
        """Apply one replica's accumulated gradients (and the new values of `state` params);
        returns (whether it was new, the params after it when `fetch`: a push and the next
        fetch in one round trip)."""
        fresh = seq > self.applied.get(replica, -1)
        if fresh:
            self.optimizer.step({n: self.params[n] for n in self.trained}, grads, lr)
            for name, value in assign.items():
                self.params[name][...] = value
            self.applied[replica] = seq
            self.pushes += 1
        return fresh, (self.fetch() if fetch else None)

    def state(self) -> tuple[Arrays, Arrays, int]:
        """(params, optimizer state arrays, pushes applied): what a checkpoint holds of this shard."""
        return self.fetch(), self.optimizer.state_arrays(), self.pushes

    def pid(self) -> int:
        return os.getpid()
