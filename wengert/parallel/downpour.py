"""Downpour SGD (Dean et al., 2012) on Dask distributed: a parameter server of S actors
(server.py) and R model replicas that train on their own shard of each epoch, fetching the
params every F steps and pushing their accumulated gradients every P steps, asynchronously:
a replica never waits for another.

A replica's shard is run as a series of short Dask tasks ("chunks", `CHUNK` steps each); every
chunk starts by fetching the server's current params. So when a worker dies, Dask (or this
driver) runs the chunk again elsewhere, restarted from the server's params; pushes carry
sequence numbers, so no gradient is applied twice. When a server actor dies, the driver
starts it again on a live worker from the last checkpoint (the state after the last epoch)
and the chunks that failed run again."""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError
from .server import ParameterShard, partition
from .worker import Recipe, add_statistics, deal, gradients, merge, state_updates

INSTALL = 'downpour runs on Dask distributed, which is not installed: pip install "wengert[distributed]"'
CHUNK = 16  # replica steps per Dask task: short enough to lose little to a dead worker
MAX_FAILURES = 20  # failed chunks per epoch before the run gives up
CONNECT_TIMEOUT = "10s"
# A call to an actor whose worker died can wait forever; a replica gives up after this long (plus
# time for the bytes), so its chunk fails, frees the worker's thread for a restored shard, and runs again.
ACTOR_TIMEOUT = 10.0  # seconds
ACTOR_BYTES_PER_S = 10e6
WORKER_WAIT = 60  # seconds to wait for a live worker to host a restored server shard


class Downpour:
    """The engine of `parallel = downpour(...)`; a context manager around the Dask client (and
    the LocalCluster it starts when the run names no `cluster`)."""

    def __init__(self, trainer, replicas: int = 2, shards: int = 1, fetch_every: int = 1, push_every: int = 1):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise DiagnosticError([Diagnostic(trainer.spec.span, INSTALL)]) from None
        self.trainer = trainer
        self.replicas, self.fetch_every, self.push_every = replicas, fetch_every, push_every
        store = trainer.prog._store
        self.groups = [g for g in partition({n: v.size for n, v in store.items()}, shards) if g]
        self.shards: list[Any] = []  # actor handles
        self.shard_workers: list[str] = []  # the worker address of each shard's actor
        self._actor_futures: list[Any] = []
        self.restore_point: tuple[dict, dict] | None = None
        self.seq = [0] * replicas  # each replica's steps so far: the sequence numbers of its pushes
        self.recoveries: list[dict[str, Any]] = []
        self.server_pushes: list[int] = []  # pushes applied by each shard since it (re)started
        self.cluster = None
        self.client = None
        unit = math.lcm(fetch_every, push_every)  # chunks keep the fetch/push cadence across tasks
        self.chunk = unit * max(1, -(-CHUNK // unit))

    # ---------------------------------------------------------------- cluster
    def __enter__(self) -> "Downpour":
        from distributed import Client, LocalCluster
        address = self.trainer.settings.cluster
        try:
            if address:
                self.client = Client(address, timeout=CONNECT_TIMEOUT)
            else:
                self.cluster = LocalCluster(n_workers=min(self.replicas, os.cpu_count() or 1), threads_per_worker=1,
                                            processes=True, dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except OSError as e:
            raise DiagnosticError([Diagnostic(self.trainer.spec.span, f"cannot reach the Dask scheduler at "
                                                                      f"`{address}`: {e}")]) from None
        self.recipe = Recipe.of(self.trainer)
        self._share_recipe()
        self.trainer.report("parallel", engine=self)
        return self

    def _share_recipe(self) -> None:
        """Send the checked program to every worker once (unpickling it costs more than a chunk's
        steps of a small model); tasks then name it, and a worker that joins later copies it."""
        self.recipe_future = self.client.scatter(self.recipe, broadcast=True, hash=False)

    def __exit__(self, *exc) -> None:
        self.recipe_future = None
        self._actor_futures = []
        self.shards = []
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def _live_workers(self, avoid: set[str]) -> list[str]:
        """The workers an actor can be placed on: not one whose actor was just lost (the
        scheduler may not have noticed its death yet; a restarted worker has a new address)."""
        deadline = time.monotonic() + WORKER_WAIT
        while True:
            workers = sorted(set(self.client.scheduler_info()["workers"]) - avoid)
            if workers:
                return workers
            if time.monotonic() > deadline:
                raise DiagnosticError([Diagnostic(self.trainer.spec.span, f"no Dask worker left to run the "
                                                                          f"parameter server after {WORKER_WAIT} s")])
            time.sleep(0.2)

    def _start_shards(self, which: list[int]) -> None:
        """Start shard actors from the restore point, spread over the live workers."""
        params, optimizer_state = self.restore_point
        t = self.trainer
        workers = self._live_workers({self.shard_workers[k] for k in which} if self.shards else set())
        if not self.shards:
            self.shards = [None] * len(self.groups)
            self.shard_workers = [""] * len(self.groups)
            self._actor_futures = [None] * len(self.groups)
        for k in which:
            group = self.groups[k]
            where = workers[k % len(workers)]
            future = self.client.submit(ParameterShard, {n: params[n] for n in group}, t.param_names,
                                        t.settings.optimizer, optimizer_state, t.prog.seed, actor=True,
                                        workers=[where], pure=False)
            self._actor_futures[k] = future
            self.shards[k] = future.result()
            self.shard_workers[k] = where

    def _dead_shards(self) -> list[int]:
        dead = []
        for k, shard in enumerate(self.shards):
            try:
                shard.pid().result(timeout=30)
            except Exception:  # noqa: BLE001 - any failure to answer: the actor is gone
                dead.append(k)
        return dead

    # ---------------------------------------------------------------- one epoch
    def epoch(self, train, lr: float, epochs: int, per_epoch: int) -> dict[str, float]:
        from distributed import as_completed
        t = self.trainer
        if not self.shards:  # the first epoch (of this run or after a resume): serve the trainer's state
            self.restore_point = ({n: v.copy() for n, v in t.prog._store.items()}, t.optimizer.state_arrays())
            self._start_shards(list(range(len(self.groups))))
        start = time.perf_counter()
        batches = t.batches(len(train))
        if t.settings.steps is not None:
            batches = batches[:max(0, t.settings.steps - t.optimizer.step_count)]
        todo = [[part[i:i + self.chunk] for i in range(0, len(part), self.chunk)]
                for part in deal(batches, self.replicas)]
        pending: dict[Any, tuple[int, list, int]] = {}

        def submit(r: int, chunk: list, seq0: int) -> Any:
            future = self.client.submit(replica_chunk, self.recipe_future, list(self.shards), self.groups, r, seq0,
                                        chunk, lr, self.fetch_every, self.push_every, pure=False)
            pending[future] = (r, chunk, seq0)
            return future

        def next_chunk(r: int) -> Any | None:
            if not todo[r]:
                return None
            chunk = todo[r].pop(0)
            future = submit(r, chunk, self.seq[r])
            self.seq[r] += len(chunk)
            return future

        running = as_completed([f for f in (next_chunk(r) for r in range(self.replicas)) if f is not None])
        sums: dict[str, float] = {}
        seen = steps = failures = 0
        for future in running:
            r, chunk, seq0 = pending.pop(future)
            try:
                stats, count = future.result()
            except DiagnosticError:
                raise  # the program's own error (a bad feed, an anomaly): not a fault to recover from
            except Exception as e:  # noqa: BLE001 - a dead worker or actor: recover and run the chunk again
                failures += 1
                if failures > MAX_FAILURES:
                    raise DiagnosticError([Diagnostic(t.spec.span, f"downpour: {failures} replica tasks failed in "
                                                                   f"epoch {t.epoch + 1}; the last: "
                                                                   f"{type(e).__name__}: {e}")]) from e
                self._recover(e)
                running.add(submit(r, chunk, seq0))
                continue
            merge(sums, stats)
            seen += count
            steps += len(chunk)
            elapsed = time.perf_counter() - start
            t.report("step", epoch=t.epoch, epochs=epochs, step=steps, steps=per_epoch,
                     loss=sums[t.settings.minimize] / max(seen, 1), batch_loss=math.nan,
                     examples_per_s=seen / max(elapsed, 1e-9))
            following = next_chunk(r)
            if following is not None:
                running.add(following)
        self._pull(t.optimizer.step_count + len(batches))
        return t._row(sums, seen, lr, start)

    def _recover(self, error: Exception) -> None:
        dead = self._dead_shards()
        self.recoveries.append({"epoch": self.trainer.epoch, "error": f"{type(error).__name__}: {error}",
                                "restored_shards": dead})
        if dead:  # restored from the last checkpoint: the updates since then to these params are lost
            self._start_shards(dead)
        if self.recipe_future.status != "finished":  # every worker that held the program died
            self._share_recipe()
        self.trainer.report("recovered", what="server" if dead else "replica", shards=dead, error=str(error))

    def _pull(self, step_count: int) -> None:
        """The server's params and optimizer state into the trainer (which validates and
        checkpoints them), and the restore point for a shard that dies later."""
        t = self.trainer
        while True:
            try:
                states = [s.state() for s in self.shards]
                states = [s.result() for s in states]
                break
            except Exception as e:  # noqa: BLE001 - a shard died between the last push and now
                self._recover(e)
        optimizer_state = t.optimizer.state_arrays()
        self.server_pushes = [pushes for _, _, pushes in states]
        for k, (params, arrays, _) in enumerate(states):
            for name, value in params.items():
                t.prog._store[name][...] = value
            for key, value in arrays.items():
                if key.startswith("slots/") or k == 0:
                    optimizer_state[key] = value
        optimizer_state["step_count"] = np.array(step_count, dtype=np.int64)  # replica steps, as `steps` counts
        t.optimizer.load_state_arrays(optimizer_state)
        self.restore_point = ({n: v.copy() for n, v in t.prog._store.items()}, t.optimizer.state_arrays())


def replica_chunk(recipe: Recipe, shards: list, groups: list[list[str]], replica: int, seq0: int, batches: list,
                  lr: float, fetch_every: int, push_every: int) -> tuple[dict[str, float], int]:
    """A Dask task: `batches` steps of one replica; returns (summed loss and metrics, examples)."""
    t = recipe.trainer()
    store = t.prog._store
    trained = set(t.param_names)
    timeout = ACTOR_TIMEOUT + sum(v.nbytes for v in store.values()) / ACTOR_BYTES_PER_S
    sums: dict[str, float] = {}
    seen = 0
    grads_sum: dict[str, np.ndarray] = {}
    assign: dict[str, np.ndarray] = {}
    fetched = False  # the last push brought this step's params
    for k, index in enumerate(batches):
        if k % fetch_every == 0 and not fetched:
            for reply in [s.fetch() for s in shards]:
                store.update(reply.result(timeout=timeout))
        fetched = False
        values, grads, count = gradients(t, index)
        for name, g in grads.items():
            grads_sum[name] = grads_sum[name] + g if name in grads_sum else g
        for name, value in state_updates(t, values).items():
            store[name] = assign[name] = value
        add_statistics(t, sums, values, count)
        seen += count
        if (k + 1) % push_every == 0 or k == len(batches) - 1:
            fetched = (k + 1) % fetch_every == 0 and k + 1 < len(batches)
            pushed = [s.push({n: grads_sum[n] for n in group if n in trained},
                             {n: assign[n] for n in group if n in assign}, lr, replica, seq0 + k, fetched)
                      for s, group in zip(shards, groups)]
            for reply in pushed:
                _, params = reply.result(timeout=timeout)
                store.update(params or {})
            grads_sum, assign = {}, {}
    return sums, seen
