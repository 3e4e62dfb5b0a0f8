"""Hogwild! (Niu et al., 2011): N processes on one machine train on disjoint shuffled shards of
each epoch and update one set of params in shared memory without locks; each process keeps
its own optimizer state. Sound when updates are sparse (see sparse.py and docs/distributed.md):
then two processes rarely write the same element, and a collision only loses part of a step."""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from typing import Any

import numpy as np

from . import sparse
from .worker import Recipe, add_statistics, deal, gradients, merge, state_updates

ALIGN = 64  # bytes: every array starts on a cache line
POLL = 0.5  # seconds between checks that the workers are alive
PR_SET_PDEATHSIG = 1  # linux/prctl.h
REPORT_EVERY = 0.05  # seconds: a worker sends its steps' statistics at most this often (cheap steps)

Layout = dict[str, tuple[int, tuple[int, ...], str]]  # name -> (byte offset, shape, dtype)


def layout_of(store: dict[str, np.ndarray]) -> tuple[Layout, int]:
    layout: Layout = {}
    offset = 0
    for name, value in store.items():
        layout[name] = (offset, tuple(value.shape), value.dtype.str)
        offset += -(-value.nbytes // ALIGN) * ALIGN
    return layout, max(offset, ALIGN)


def views_of(raw, layout: Layout) -> dict[str, np.ndarray]:
    """NumPy arrays over the shared buffer: writes by one process are seen by all."""
    buffer = np.frombuffer(raw, dtype=np.uint8)
    out = {}
    for name, (offset, shape, dtype) in layout.items():
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        out[name] = buffer[offset:offset + size].view(dtype).reshape(shape)
    return out


class Hogwild:
    """The engine of `parallel = hogwild(workers=N)`; a context manager around the worker processes."""

    def __init__(self, trainer, workers: int):
        self.trainer = trainer
        self.workers = workers
        self.context = mp.get_context("spawn")  # no fork: the driver may hold threads (Dask, rich)
        self.procs: list[Any] = []
        self.tasks: list[Any] = []
        self.views: dict[str, np.ndarray] = {}
        self._send_state = True  # the workers' optimizers start from the trainer's (a resumed run's)

    # ---------------------------------------------------------------- processes
    def __enter__(self) -> "Hogwild":
        store = self.trainer.prog._store
        self.layout, size = layout_of(store)
        self.raw = self.context.RawArray("B", size)
        self.views = views_of(self.raw, self.layout)
        self._bind()
        self.results = self.context.Queue()
        self.recipe = Recipe.of(self.trainer)
        self.procs = [None] * self.workers
        self.tasks = [None] * self.workers
        for w in range(self.workers):
            self._start(w)
        self.trainer.report("parallel", engine=self)
        return self

    def _start(self, w: int) -> None:
        self.tasks[w] = self.context.Queue()
        self.procs[w] = self.context.Process(target=work, args=(w, self.recipe, self.raw, self.layout,
                                                                 self.tasks[w], self.results, os.getpid()),
                                             name=f"wengert-hogwild-{w}", daemon=True)
        self.procs[w].start()

    def __exit__(self, *exc) -> None:
        for w, proc in enumerate(self.procs):
            if proc is not None and proc.is_alive():
                self.tasks[w].put(None)
        for proc in self.procs:
            if proc is not None:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
        for q in [*self.tasks, self.results]:
            if q is not None:
                _abandon(q)
        store = self.trainer.prog._store
        for name, view in self.views.items():  # the params leave shared memory
            if store.get(name) is view:
                store[name] = view.copy()
        self.views = {}

    def _bind(self) -> None:
        """Make the trainer's params the shared arrays (again, after a resume replaced them)."""
        store = self.trainer.prog._store
        for name, view in self.views.items():
            if store[name] is not view:
                view[...] = store[name]
                store[name] = view

    # ---------------------------------------------------------------- one epoch
    def epoch(self, train, lr: float, epochs: int, per_epoch: int) -> dict[str, float]:
        t = self.trainer
        self._bind()
        start = time.perf_counter()
        batches = t.batches(len(train))
        if t.settings.steps is not None:
            batches = batches[:max(0, t.settings.steps - t.optimizer.step_count)]
        shards = deal(batches, self.workers)
        state = t.optimizer.state_arrays() if self._send_state else None
        self._send_state = False
        for w in range(self.workers):
            self.tasks[w].put((shards[w], lr, state, w == 0))
        done: dict[int, Any] = {}
        steps = [0] * self.workers
        sums: dict[str, float] = {}
        seen = 0
        while len(done) < self.workers:
            try:
                message = self.results.get(timeout=POLL)
            except queue.Empty:
                self._restart_dead(done, shards, steps, lr)
                continue
            kind, w, *rest = message
            if kind == "steps":
                stats, count, k = rest
                merge(sums, stats)
                seen += count
                steps[w] += k
                elapsed = time.perf_counter() - start
                t.report("step", epoch=t.epoch, epochs=epochs, step=sum(steps), steps=per_epoch,
                         loss=sums[t.settings.minimize] / max(seen, 1),
                         batch_loss=stats[t.settings.minimize] / max(count, 1),  # of the steps just sent
                         examples_per_s=seen / max(elapsed, 1e-9))
            elif kind == "done":
                done[w] = rest[0]
            else:  # "error": the worker's exception (a diagnostic, an anomaly) stops the run
                raise rest[0]
        total = t.optimizer.step_count + len(batches)
        if done[0] is not None:  # worker 0's optimizer state stands for all in checkpoints
            t.optimizer.load_state_arrays(done[0])
        t.optimizer.step_count = total  # steps of all workers, as `steps = N` counts them
        return t._row(sums, seen, lr, start)

    def _restart_dead(self, done: dict, shards: list, steps: list[int], lr: float) -> None:
        """A worker that died mid-epoch is started again on the rest of its shard, with the
        optimizer state of the last checkpointed epoch (the params are in shared memory). The
        steps it made after its last report (at most REPORT_EVERY seconds of them) run again."""
        for w, proc in enumerate(self.procs):
            if w in done or proc.is_alive():
                continue
            self.trainer.report("recovered", what="worker", worker=w, exitcode=proc.exitcode)
            _abandon(self.tasks[w])
            self._start(w)
            self.tasks[w].put((shards[w][steps[w]:], lr, self.trainer.optimizer.state_arrays(), w == 0))


def _abandon(q) -> None:
    """Close a queue whose reader is gone: without this, a task still buffered for a killed
    worker makes the queue's feeder thread block on the full pipe, and the interpreter's exit
    (which joins that thread) hang."""
    q.cancel_join_thread()
    q.close()


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG): a driver killed
    with SIGKILL must not leave workers waiting forever (nor hold the semaphores the resource tracker
    removes once every process holding them is gone). Elsewhere `next_task` watches the parent."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def next_task(tasks, parent: int) -> Any:
    """The driver's next task; exits when the driver is gone (the watchdog where prctl is not)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        try:
            return tasks.get(timeout=POLL)
        except queue.Empty:
            continue


def work(w: int, recipe: Recipe, raw, layout: Layout, tasks, results, parent: int | None = None) -> None:
    """A worker process: epochs of (batches, lr, optimizer state or None, return the state?)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    die_with_parent()
    parent = os.getppid() if parent is None else parent
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)
    try:
        trainer = recipe.trainer()
        prog = trainer.prog
        views = views_of(raw, layout)
        prog._store.update(views)
        # each worker draws its own dropout masks and gradient noise
        prog._rng = np.random.default_rng([prog.seed, 3, w])
        trainer.noise_rng = np.random.default_rng([prog.seed, 2, w])
        opt = trainer.optimizer
        params = {n: views[n] for n in trainer.param_names}
        while (task := next_task(tasks, parent)) is not None:
            batches, lr, state, want_state = task
            if state is not None:
                opt.load_state_arrays(state)
            stats: dict[str, float] = {}
            seen = made = 0
            sent = time.perf_counter()
            for k, index in enumerate(batches):
                values, grads, count = gradients(trainer, index)
                sparse.step(opt, params, grads, lr)
                for name, value in state_updates(trainer, values).items():
                    views[name][...] = value
                add_statistics(trainer, stats, values, count)
                seen += count
                made += 1
                if time.perf_counter() - sent >= REPORT_EVERY or k == len(batches) - 1:
                    results.put(("steps", w, stats, seen, made))
                    stats, seen, made, sent = {}, 0, 0, time.perf_counter()
            results.put(("done", w, opt.state_arrays() if want_state else None))
    except BaseException as e:  # noqa: BLE001 - reported to the driver, which raises it
        try:
            results.put(("error", w, e))
        except Exception:  # noqa: BLE001 - an unpicklable exception: send its text
            results.put(("error", w, RuntimeError(f"hogwild worker {w}: {type(e).__name__}: {e}")))
