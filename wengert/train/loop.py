"""The training loop of a `train` block: minibatches, optimizer, schedules, clipping, noise,
early stopping, metrics, updates, history and checkpoints (docs/language.md §10)."""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError, did_you_mean
from ..runtime import anomaly
from ..runtime.types import NUMPY_DTYPE
from . import checkpoint, data, engines, optim, params, rundir

EVAL_CHUNK = 4096  # rows per evaluation when measuring loss and metrics on a whole data set
SAVE_EVERY = 1.0  # seconds: short epochs are checkpointed at most this often (and always at the end)
FUSED_CHUNK = 512  # steps per native call of a fused epoch (progress is reported between calls)


def early_stopping(best: dict[str, Any], loss: float, snapshot: Callable[[], dict[str, Any]], /,
                   patience: int, min_delta: float = 0.0) -> bool:
    """Keras's EarlyStopping on the monitored loss: keeps the best params (`snapshot()`) and says stop
    once `patience` epochs in a row did not improve the best loss by more than `min_delta`."""
    if loss < best["loss"] - min_delta:
        best.update(loss=loss, wait=0, params=snapshot())
        return False
    best["wait"] += 1
    return best["wait"] >= patience


# a train block's `early_stopping = NAME(...)` rules; the checker reads their keywords after `/`
EARLY_STOPPING: dict[str, Callable[..., bool]] = {"early_stopping": early_stopping}


@attrs.define
class Settings:
    """A train block's settings, after the overrides of the CLI or the API."""

    data: str
    valid: str | None
    minimize: str
    optimizer: tuple[str, dict[str, Any]]
    epochs: int | None
    steps: int | None
    batch: int | str
    shuffle: bool
    schedule: tuple[str, dict[str, Any]] | None
    clip_norm: float | None
    clip_value: float | None
    gradient_noise: float | None
    early_stopping: tuple[str, dict[str, Any]] | None
    checkpoint: str | None
    parallel: tuple[str, dict[str, Any]] | None = None  # hogwild/downpour (wengert/parallel/)
    cluster: str | None = None  # a Dask scheduler's address for downpour (None: a LocalCluster)

    @classmethod
    def of(cls, spec, overrides: dict[str, Any]) -> "Settings":
        c = dict(spec.config)
        known = [f.name for f in attrs.fields(cls) if f.name != "minimize"]
        for key in overrides:
            if key not in known:
                raise DiagnosticError([Diagnostic(spec.span, f"unknown training setting `{key}`"
                                                  + did_you_mean(key, known) + f"; settings: {', '.join(known)}")])
        for key, value in overrides.items():
            if value is not None:
                c[key] = value
        if c.get("optimizer") is None:
            c["optimizer"] = ("sgd", dict(optim.OPTIMIZERS["sgd"]))
        epochs = c.get("epochs")
        if epochs is None and c.get("steps") is None:
            epochs = 1
        return cls(c.get("data"), c.get("valid"), spec.minimize, c["optimizer"], epochs, c.get("steps"),
                   c.get("batch", 32), c.get("shuffle", True), c.get("schedule"), c.get("clip_norm"),
                   c.get("clip_value"), c.get("gradient_noise"), c.get("early_stopping"), c.get("checkpoint"),
                   c.get("parallel"), c.get("cluster"))


class Trainer:
    """Trains a Program in place. `report(event, **info)` receives progress (the CLI draws it)."""

    def __init__(self, prog, name: str | None = None, overrides: dict[str, Any] | None = None,
                 out_dir: str | Path | None = None, report: Callable[..., None] | None = None,
                 allow_paths: tuple[str | Path, ...] = (), overwrite: bool = False):
        """`out_dir` is the only directory the run writes to (the checkpoint path is relative to it) unless
        `allow_paths` names others; `overwrite` lets a fresh run replace an earlier run's checkpoint."""
        self.prog = prog
        module = prog.module
        if name not in module.trains:
            known = [n for n in module.trains if n is not None]
            what = f"train block `{name}`" if name else "unnamed train block"
            hint = did_you_mean(name, known) if name else ""
            raise DiagnosticError([Diagnostic.plain(module.path, f"the program has no {what}{hint}"
                                                    + (f"; it has: {', '.join(known)}" if known else ""))])
        self.spec = module.trains[name]
        self.name = name
        self.settings = Settings.of(self.spec, dict(overrides or {}))
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.allow_paths = tuple(allow_paths)
        self.overwrite = overwrite
        self._checkpoint: Path | None | bool = False  # resolved when first asked for (eval never asks)
        self.report = report or (lambda event, **info: None)
        self.param_names = [n for n, p in module.params.items() if p.kind == "param"]
        self.metric_names = [label for label, _ in self.spec.metrics]
        self.hidden_metrics = [hidden for _, hidden in self.spec.metrics]
        self.update_names = [f"update:{n}" for n in module.updates]
        self.datasets = self._load_data()
        store = prog._store
        self.optimizer = optim.Optimizer(self.settings.optimizer[0], dict(self.settings.optimizer[1]),
                                         {n: store[n] for n in self.param_names}, seed=prog.seed)
        self.shuffle_rng = np.random.default_rng([prog.seed, 1])
        self.noise_rng = np.random.default_rng([prog.seed, 2])
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.best: dict[str, Any] = {"loss": math.inf, "wait": 0, "params": None, "epoch": -1}
        self._snapshot: tuple | None = None  # the state after the last complete epoch
        self._fingerprint_value: str | None = None
        self._runners: dict[tuple, Any] = {}  # (batch size, consecutive) -> fused-epoch runner (None: not possible)
        self._fused_columns: dict[int, dict[str, np.ndarray]] = {}  # data set -> inputs as the step reads them
        self._last_save = -math.inf
        self._at = ""  # where the loop is, for an anomaly's note ("step 3 of epoch 2")

    # ---------------------------------------------------------------- data
    def _load_data(self) -> dict[str, data.Dataset]:
        module = self.prog.module
        wanted = [self.settings.data] + ([self.settings.valid] if self.settings.valid else [])
        out: dict[str, data.Dataset] = {}
        for name in wanted:
            if name not in module.data:
                raise DiagnosticError([Diagnostic(self.spec.span, f"`{name}` is not a data set"
                                                  + did_you_mean(name, module.data))])
            loaded = data.load(module.data[name], needed=set(module.inputs))
            for n, ds in loaded.items():
                data.bind(ds, module.inputs, module.dims)  # columns must fit the inputs they feed
                out[n] = ds
        return {n: out[n] for n in wanted}

    def _columns(self, ds: data.Dataset, index) -> dict[str, np.ndarray]:
        rows = ds.rows(index)
        return {k: v for k, v in rows.items() if k in self.prog.module.inputs}

    # ---------------------------------------------------------------- the loop
    def batches(self, n: int) -> list[np.ndarray | slice]:
        size = n if self.settings.batch == "all" else int(self.settings.batch)
        if self.settings.shuffle and size < n:
            order = self.shuffle_rng.permutation(n)
            return [order[i:i + size] for i in range(0, n, size)]
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    def run(self, resume_from: str | Path | None = None, params_only: bool = False) -> list[dict[str, float]]:
        """Train; `resume_from` a checkpoint continues it (`params_only`: its params, with a fresh optimizer,
        epoch count and history, as `--resume-params`)."""
        held = self._open_run_dir(fresh=resume_from is None)
        try:
            if self.settings.parallel is not None or self.settings.cluster is not None:  # steps by an engine
                with engines.engine_for(self) as engine:
                    return self._loop(resume_from, engine.epoch, params_only)
            return self._loop(resume_from, self._epoch, params_only)
        finally:
            if held is not None:
                held.close()

    def _open_run_dir(self, fresh: bool) -> rundir.RunDir | None:
        """Before the first epoch: lock the output directory, remove a killed run's temporaries, refuse to
        replace an earlier run's checkpoint unless told, check that one checkpoint fits on the disk."""
        path = self.checkpoint_path()
        if self.out_dir is None and path is None:
            return None
        held = rundir.RunDir(self.out_dir if self.out_dir is not None else path.parent, path)
        for stale in held.open():
            self.report("removed_stale", path=str(stale))
        try:
            if fresh and not self.overwrite:
                held.refuse_overwrite(checkpoint.describe)
            store, arrays, _ = self._state()
            held.check_space(rundir.needed_bytes(list(arrays.values()) + list(store.values())))
        except BaseException:
            held.close()
            raise
        return held

    def _loop(self, resume_from: str | Path | None,
              run_epoch: Callable[..., dict[str, float]], params_only: bool = False) -> list[dict[str, float]]:
        if resume_from is not None:
            self._restore(resume_from, params_only)
        train = self.datasets[self.settings.data]
        n = len(train)
        if n == 0:
            raise DiagnosticError([Diagnostic(self.spec.span, f"the data set `{self.settings.data}` is empty")])
        per_epoch = math.ceil(n / (n if self.settings.batch == "all" else int(self.settings.batch)))
        epochs = self.settings.epochs if self.settings.epochs is not None else math.ceil(self.settings.steps / per_epoch)
        lr0 = float(self.settings.optimizer[1].get("lr", 0.01))
        self.report("start", epochs=epochs, steps_per_epoch=per_epoch, examples=n, resumed_at=self.epoch)
        try:
            while self.epoch < epochs:
                if self.settings.steps is not None and self.optimizer.step_count >= self.settings.steps:
                    break
                lr = optim.scheduled_lr(self.settings.schedule, lr0, self.epoch)
                row = run_epoch(train, lr, epochs, per_epoch)
                self.history.append(row)
                self.epoch += 1
                stop = self._early_stopping(row)
                self._snapshot = self._state()
                if stop or self.epoch >= epochs or time.perf_counter() - self._last_save >= SAVE_EVERY:
                    self._save_outputs()
                self.report("epoch", row=row, epochs=epochs)
                if stop:
                    self.report("early_stop", epoch=self.epoch, best_epoch=self.best["epoch"] + 1)
                    break
        except KeyboardInterrupt:
            if self._snapshot is not None:  # the last complete epoch, even if its files were not written yet
                self._save_outputs(self._snapshot)
            self.report("interrupted", epoch=self._snapshot[2]["epoch"] if self._snapshot else 0)
            raise
        except anomaly.AnomalyError as e:  # prog.detect_anomaly: stop, keeping the last complete epoch
            if self._snapshot is not None:
                self._save_outputs(self._snapshot)
            self.report("anomaly", epoch=self.epoch, where=self._at)
            raise e.with_note(f"training stopped at {self._at}", file=self.prog.module.path) from None
        restored = None
        if self.best["params"] is not None:
            self.prog._store.update({k: v.copy() for k, v in self.best["params"].items()})
            restored = self.best["epoch"]
        self._save_outputs()
        self.report("end", history=self.history, restored=restored)
        return self.history

    def _epoch(self, train: data.Dataset, lr: float, epochs: int, per_epoch: int) -> dict[str, float]:
        prog, s = self.prog, self.settings
        sums: dict[str, float] = {}
        seen = 0
        start = time.perf_counter()
        batches = self.batches(len(train))
        keys = [s.minimize] + self.hidden_metrics
        k = 0
        while k < len(batches):
            if s.steps is not None and self.optimizer.step_count >= s.steps:
                break
            fused = self._fused_steps(train, batches, k, lr)
            if fused is not None:  # several steps in one native call: the same numbers, summed in the same order
                values, count = fused
                for row in values:
                    for key, value in zip(keys, row):
                        sums[key] = sums.get(key, 0.0) + float(value) * count
                seen += count * len(values)
                k += len(values)
                if len(values):
                    self._report_step(k, epochs, per_epoch, sums, seen, float(values[-1][0]), start)
                    continue
            batch = self._columns(train, batches[k])
            count = len(next(iter(batch.values()))) if batch else 0
            self._at = f"step {k + 1} of epoch {self.epoch + 1} (optimizer step {self.optimizer.step_count + 1})"
            values, grads = prog.value_and_grad(s.minimize, self.param_names, batch, resident=True,
                                                also=self.hidden_metrics + self.update_names, training=True)
            grads = self._adjust(grads)
            hvp = None
            if self.optimizer.name == "esgd":
                def hvp(v, batch=batch):
                    return prog.hvp(s.minimize, self.param_names, v, inputs=batch)
            self.optimizer.step({n: prog._store[n] for n in self.param_names}, grads, lr, hvp=hvp)
            if prog.detect_anomaly:
                self._check_params(grads, lr)
            for name in prog.module.updates:
                prog._assign(name, values[f"update:{name}"])
            seen_values = {key: float(np.asarray(values[key])) for key in keys}
            for key, value in seen_values.items():  # the only copies back from a device during a step
                sums[key] = sums.get(key, 0.0) + value * count
            seen += count
            k += 1
            self._report_step(k, epochs, per_epoch, sums, seen, seen_values[s.minimize], start)
        return self._row(sums, seen, lr, start)

    def _report_step(self, k: int, epochs: int, per_epoch: int, sums: dict[str, float], seen: int,
                     batch_loss: float, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.report("step", epoch=self.epoch, epochs=epochs, step=k, steps=per_epoch,
                    loss=sums[self.settings.minimize] / max(seen, 1), batch_loss=batch_loss,
                    examples_per_s=seen / max(elapsed, 1e-9))

    # ---------------------------------------------------------------- fused native steps
    def _fused_steps(self, train: data.Dataset, batches: list, k: int, lr: float) -> tuple[np.ndarray, int] | None:
        """Up to FUSED_CHUNK steps from batch k as one native loop (compiler/epochs.py), when the
        step needs no Python: (each step's loss and metrics, rows per step), or None."""
        size = _rows(batches[k])
        runner = self._runner(train, batches[k], size)
        if runner is None:
            return None
        end = k
        while end < len(batches) and end - k < FUSED_CHUNK and _rows(batches[end]) == size:
            end += 1
        if self.settings.steps is not None:
            end = min(end, k + self.settings.steps - self.optimizer.step_count)
        chunk = batches[k:end]
        if isinstance(chunk[0], slice):  # unshuffled: consecutive rows
            idx = np.arange(chunk[0].start, chunk[0].start + size * len(chunk), dtype=np.int64).reshape(-1, size)
        else:
            idx = np.stack(chunk).astype(np.int64, copy=False)
        done, values = runner.run(idx, lr, self.optimizer.step_count, self._fused_columns[id(train)],
                                  self.prog._store, self.optimizer.slots)
        self.optimizer.step_count += done
        return values[:done], size

    def _runner(self, train: data.Dataset, first: Any, size: int):
        """The fused-epoch runner for batches like `first` (built once the step is compiled), or None."""
        from ..compiler import epochs, updates
        from ..compiler.native_codegen import contiguous
        from ..compiler.plan import compile_level
        prog, s = self.prog, self.settings
        kind = (size, isinstance(first, slice))
        if kind in self._runners:
            return self._runners[kind]
        if prog.device != "cpu" or prog.detect_anomaly or compile_level(prog.compile) != "native" \
                or prog._plans is None or self.update_names or s.clip_norm or s.clip_value or s.gradient_noise \
                or any(type(c) is not np.ndarray for c in train.columns.values()):
            return None
        plan = prog._plans.native_plan(s.minimize, self.param_names, self._columns(train, first),
                                       self.hidden_metrics, True, "native")
        if plan is None:
            return None  # not compiled yet (or not one native call): try again at the next step
        store = prog._store
        codes = {n: updates.render(self.optimizer.name, self.optimizer.hyper, store[n].dtype) for n in self.param_names}
        if any(code is None for code in codes.values()):
            self._runners[kind] = None
            return None
        for n in self.param_names:  # the loop reads flat C-order views (orthogonal init gives F order)
            store[n] = contiguous(store[n])
            self.optimizer.slots[n] = {k: contiguous(v) for k, v in self.optimizer.slots[n].items()}
        metas = {n: (store[n].shape, store[n].dtype) for n in self.param_names}
        self._fused_columns[id(train)] = {n: contiguous(np.asarray(c, NUMPY_DTYPE[prog.module.inputs[n].var.type.dtype]))
                                          for n, c in train.columns.items() if n in prog.module.inputs}
        consecutive = isinstance(first, slice)
        key = (self.optimizer.name, tuple(sorted(self.optimizer.hyper.items())), tuple(self.param_names),
               len(self.hidden_metrics), consecutive)
        if key not in plan.runners:  # built once per plan: later runs (a new Trainer) reuse it
            plan.runners[key] = epochs.build(plan.native, plan.roots, self.param_names, codes, metas,
                                             1 + len(self.hidden_metrics), consecutive)
        self._runners[kind] = plan.runners[key]
        return plan.runners[key]

    def _row(self, sums: dict[str, float], seen: int, lr: float, start: float) -> dict[str, float]:
        """An epoch's history row from the summed loss and metrics (times examples) of its steps."""
        s = self.settings
        row: dict[str, float] = {"epoch": self.epoch + 1, "loss": sums.get(s.minimize, math.nan) / max(seen, 1)}
        for label, hidden in self.spec.metrics:
            row[label] = sums.get(hidden, math.nan) / max(seen, 1)
        if s.valid:
            self._at = f"the validation of epoch {self.epoch + 1} (on `{s.valid}`)"
            measured = self.evaluate(self.datasets[s.valid])
            row["valid_loss"] = measured["loss"]
            for label in self.metric_names:
                row[f"valid_{label}"] = measured[label]
        row["lr"] = lr
        row["seconds"] = time.perf_counter() - start
        return row

    def _check_params(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """With anomaly detection: a param the optimizer step made NaN/Inf, at its declaration."""
        store = self.prog._store
        for n in self.param_names:
            count = anomaly.nonfinite(store[n])
            if count is not None:
                raise anomaly.optimizer_error(self.prog.module.params[n].span, self.optimizer.name, n, store[n],
                                              grads.get(n), lr, count, file=self.prog.module.path)

    def _adjust(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        s = self.settings
        if s.clip_value is not None:
            grads = optim.clip_by_value(grads, s.clip_value)
        if s.clip_norm is not None:
            grads = optim.clip_by_global_norm(grads, s.clip_norm)
        if s.gradient_noise is not None:
            grads = optim.add_gradient_noise(grads, s.gradient_noise, self.optimizer.step_count, self.noise_rng)
        return grads

    def evaluate(self, ds: data.Dataset) -> dict[str, float]:
        """Loss and metrics over a whole data set (not training: dropout off, running statistics)."""
        names = [self.settings.minimize] + self.hidden_metrics
        sums = dict.fromkeys(names, 0.0)
        n = len(ds)
        for i in range(0, n, EVAL_CHUNK):
            batch = self._columns(ds, slice(i, min(i + EVAL_CHUNK, n)))
            count = min(i + EVAL_CHUNK, n) - i
            values = self.prog.run(names, inputs=batch)
            for key in names:
                sums[key] += float(np.asarray(values[key])) * count
        out = {"loss": sums[self.settings.minimize] / max(n, 1)}
        for label, hidden in self.spec.metrics:
            out[label] = sums[hidden] / max(n, 1)
        return out

    def _early_stopping(self, row: dict[str, float]) -> bool:
        rule = self.settings.early_stopping
        if rule is None:
            return False
        name, kw = rule
        epoch = self.epoch - 1

        def snapshot() -> dict[str, Any]:
            self.best["epoch"] = epoch
            return {k: v.copy() for k, v in self.prog._store.items()}
        return EARLY_STOPPING[name](self.best, row.get("valid_loss", row["loss"]), snapshot, **kw)

    # ---------------------------------------------------------------- outputs and checkpoints
    def checkpoint_path(self) -> Path | None:
        """Where this run's checkpoint goes (a path leaving the run's directory is an error at its line)."""
        if self._checkpoint is False:
            self._checkpoint = self._checkpoint_path()
        return self._checkpoint

    def _checkpoint_path(self) -> Path | None:
        """`checkpoint = "..."` relative to the run's directory (--out; without one, the program's directory)."""
        if self.settings.checkpoint:
            base = self.out_dir if self.out_dir is not None else Path(self.prog.module.path).parent
            return rundir.resolve(self.settings.checkpoint, base, self.allow_paths,
                                  self.spec.spans.get("checkpoint"))
        return self.out_dir / "checkpoint.npz" if self.out_dir is not None else None

    def _fingerprint(self, store: dict[str, Any]) -> str:
        """The program's checkpoint fingerprint; names, shapes and dtypes never change during a run,
        so it is computed once (it is taken after every epoch, and an epoch may be one step)."""
        if self._fingerprint_value is None:
            self._fingerprint_value = checkpoint.fingerprint(self.prog.module, store)
        return self._fingerprint_value

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
        """Everything a resume needs, copied: (params, checkpoint arrays, metadata)."""
        store = {k: v.copy() for k, v in self.prog._store.items()}
        arrays = {f"param/{k}": v for k, v in store.items()}
        arrays.update({f"optim/{k}": np.array(v) for k, v in self.optimizer.state_arrays().items()})
        if self.best["params"] is not None:
            arrays.update({f"best/{k}": v for k, v in self.best["params"].items()})
        meta = {
            "fingerprint": self._fingerprint(store), "params": sorted(store),
            "train": self.name, "epoch": self.epoch, "history": list(self.history),
            "best": {k: v for k, v in self.best.items() if k != "params"},
            "rng": {"shuffle": checkpoint.rng_state(self.shuffle_rng), "noise": checkpoint.rng_state(self.noise_rng),
                    "program": checkpoint.rng_state(self.prog._rng)},
        }
        return store, arrays, meta

    def _save_outputs(self, state: tuple | None = None) -> None:
        store, arrays, meta = state if state is not None else self._state()
        path = self.checkpoint_path()
        target = path
        try:
            if path is not None:
                checkpoint.save(path, arrays, meta)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                target = self.out_dir / "history.csv"
                write_history(target, meta["history"])
                target = self.out_dir / "params.npz"
                params.save(target, store, self._fingerprint(store))
        except OSError as e:  # a full or read-only disk: the files there are the previous ones, intact
            self._rescue(target, path, arrays, meta, e)
        self._last_save = time.perf_counter()

    def _rescue(self, target: Path, path: Path | None, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                error: OSError) -> None:
        """Write the checkpoint that could not be written elsewhere, then stop with a diagnostic naming it."""
        name = f"wengert-rescue-{Path(self.prog.module.path).stem}-epoch{meta['epoch']}-{os.getpid()}.npz"
        written, failures = rundir.rescue(lambda p: checkpoint.save(p, arrays, meta), name)
        previous = f"{path} still holds {checkpoint.describe(path)}" if path is not None and path.exists() \
            else "no earlier checkpoint was written"
        why = error.strerror or str(error)
        if written is not None:
            after = (f"the state after epoch {meta['epoch']} was saved to {written} instead: move it to {path} "
                     "once the disk has room, then run again with --resume") if path is not None else \
                f"the state after epoch {meta['epoch']} was saved to {written} instead"
        else:
            after = f"the state after epoch {meta['epoch']} could not be saved elsewhere either ({'; '.join(failures)})"
        raise checkpoint.CheckpointError(target, f"cannot write {target} ({why}); training stopped; {previous}; "
                                                 f"{after}")

    def _layout(self) -> dict[str, np.ndarray]:
        """The arrays this run's checkpoints hold (the shapes and dtypes a checkpoint must have to be resumed)."""
        store = self.prog._store
        layout = {f"param/{k}": v for k, v in store.items()}
        layout.update({f"best/{k}": v for k, v in store.items()})
        layout.update({f"optim/{k}": np.asarray(v) for k, v in self.optimizer.state_arrays().items()})
        return layout

    def _restore(self, path: str | Path, params_only: bool = False) -> None:
        arrays, meta = checkpoint.load(path, self._fingerprint(self.prog._store), self._layout(),
                                       only="param/" if params_only else None)
        if params_only:  # --resume-params: the trained params, a fresh optimizer and epoch count
            for key, value in arrays.items():
                self.prog._assign(key.partition("/")[2], value.copy())
            return
        if meta.get("train") != self.name:
            raise checkpoint.CheckpointError(path, f"the checkpoint is of train block {meta.get('train')!r}, "
                                                   f"not {self.name!r}")
        for key, value in arrays.items():
            kind, _, name = key.partition("/")
            if kind == "param":
                self.prog._assign(name, value.copy())
        self.optimizer.load_state_arrays({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
        best_params = {k[5:]: v.copy() for k, v in arrays.items() if k.startswith("best/")}
        self.best = dict(meta["best"], params=best_params or None)
        self.epoch = meta["epoch"]
        self.history = meta["history"]
        checkpoint.restore_rng(self.shuffle_rng, meta["rng"]["shuffle"])
        checkpoint.restore_rng(self.noise_rng, meta["rng"]["noise"])
        checkpoint.restore_rng(self.prog._rng, meta["rng"]["program"])


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def _rows(batch: Any) -> int:
    return batch.stop - batch.start if isinstance(batch, slice) else len(batch)
