"""What every workload shares: the Workload record, runners for each framework, the optimizers
of the references, and the training loops of PyTorch, JAX and autograd.

A runner does `n` training steps per `run()` call after an untimed `prepare(n)`, and starts
every call at the first batch of the data (as a fresh `Trainer` does), so each framework sees
the same batches in the same order. `params()` returns its current parameters as NumPy arrays
(the tests compare them across frameworks after a step or two).
"""
from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

Arrays = dict[str, np.ndarray]
HERE = Path(__file__).parent
FRAMEWORKS = ("wengert", "wengert-numpy", "wengert-interp", "numpy", "torch", "jax", "autograd")
LEVELS = {"wengert-numpy": "numpy", "wengert-interp": "off"}  # wengert rows other than its default level


def threads() -> int:
    """Threads for PyTorch: BENCH_THREADS, which `python -m bench --threads` sets (all cores otherwise)."""
    return int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


@attrs.define
class Setup:
    """The shared starting point of every framework: the program, its initial params, the data."""

    prog: Any                     # wengert.Program, freshly loaded
    params: Arrays                # initial params (copies), by wengert's names
    data: Arrays                  # the training columns, by input name
    batch: int                    # rows per step
    optimizer: tuple[str, dict[str, Any]]
    overrides: dict[str, Any]     # train-block overrides besides `steps`
    options: dict[str, Any] = attrs.Factory(dict)  # e.g. {"dropout": False} for the references in tests


@attrs.define
class Workload:
    key: str                      # "W1"
    title: str
    dl: Path                      # the .dl program
    dtype: str
    steps: int                    # the step count (a whole run)
    round_steps: int              # steps timed per round by default (<= steps for the slow ones)
    setup: Callable[[bool], Setup]          # small=True: tiny sizes for the tests
    runners: dict[str, Callable[[Setup], Runner]]
    primitives: Callable[[Setup], int] | None = None  # W7: primitives in one trace
    slow: dict[str, float] = attrs.Factory(dict)  # framework -> fraction of round_steps it runs (autograd on W5)

    def steps_per_round(self, framework: str, scale: float = 1.0) -> int:
        return max(1, round(self.round_steps * scale * self.slow.get(framework, 1.0)))

    def runner(self, framework: str, setup: Setup, compile: bool | None = None) -> Runner:
        """`compile`: wengert's compile level (None: the Program's default, native); the
        "wengert-numpy" and "wengert-interp" rows run at the numpy and off levels."""
        if framework.startswith("wengert"):
            on = LEVELS.get(framework, compile)
            if on is not None:
                set_compile(setup.prog, on)
            return self.runners.get("wengert", WengertTrainer)(setup)
        return self.runners[framework](setup)


class Runner:
    """n training steps per run(); prepare(n) holds what is set up before them, untimed."""

    n = 1

    def prepare(self, n: int) -> None:
        self.n = n

    def run(self) -> float:
        """The steps; returns the last step's loss (NaN where the framework hides it)."""
        raise NotImplementedError

    def params(self) -> Arrays:
        raise NotImplementedError


def load_setup(dl: Path, batch: int, small_rows: int | None = None, data: Arrays | None = None,
               params: Arrays | None = None) -> Setup:
    """The program at `dl`, its train block's settings, and the data its data statement loads
    (or `data`, swapped in; the first `small_rows` rows when given)."""
    import wengert
    from wengert.train.loop import Trainer
    prog = wengert.load(dl)
    if params:
        prog.set_params(params)
    trainer = Trainer(prog, None, {})
    s = trainer.settings
    if data is None:
        rows = trainer.datasets[s.data].rows(slice(None))
        data = {k: v for k, v in rows.items() if k in prog.module.inputs}
    if small_rows is not None:
        data = {k: v[:small_rows] for k, v in data.items()}
    return Setup(prog, prog.params, data, batch, s.optimizer, {"shuffle": False, "batch": batch})


def batches(data: Arrays, batch: int, n: int):
    """The first n batches of `data`, in order, wrapping around (the Trainer's order, unshuffled)."""
    rows = len(next(iter(data.values())))
    per_epoch = math.ceil(rows / batch)
    for k in range(n):
        i = (k % per_epoch) * batch
        yield {name: v[i:i + batch] for name, v in data.items()}


# ----------------------------------------------------------------------------- wengert
def can_compile() -> bool:
    """Whether this wengert has compiled plans that a Program's `compile` flag switches."""
    import wengert
    return isinstance(getattr(wengert.compile("input v: f64[2]\nloss = sum(v)\n"), "compile", None), bool)


def set_compile(prog: Any, on: bool | str) -> None:
    """The compile level of every evaluation of `prog` (True/"native", "numpy", False/"off")."""
    if not can_compile():
        raise RuntimeError("this wengert has no `compile` switch (compiled plans)")
    prog.compile = on


class WengertTrainer(Runner):
    """The user's path: a `Trainer` over the program's own train block, `steps` overridden."""

    def __init__(self, setup: Setup):
        from wengert.train import data as wdata
        self.setup = setup
        self.prog = setup.prog
        self.dataset = wdata.Dataset(dict(setup.data), name="bench")

    def prepare(self, n: int) -> None:
        from wengert.train.loop import Trainer
        overrides = dict(self.setup.overrides, steps=n)
        self.trainer = Trainer(self.prog, None, overrides)
        # the same rows the other frameworks train on (the program's own data statement is a
        # stand-in of the same shapes), and no reload per round
        self.trainer.datasets[self.trainer.settings.data] = self.dataset

    def run(self) -> float:
        history = self.trainer.run()
        return float(history[-1]["loss"]) if history else math.nan

    def params(self) -> Arrays:
        return {k: v for k, v in self.prog.params.items() if k in self.setup.params}


# ----------------------------------------------------------------------------- NumPy optimizers
class NumpyOptimizer:
    """sgd and adadelta as torch.optim writes them (the rules wengert's optim.py follows)."""

    def __init__(self, spec: tuple[str, dict[str, Any]], params: Arrays):
        self.name, hyper = spec
        self.lr = float(hyper.get("lr", 0.01))
        if self.name == "sgd":
            assert not hyper.get("momentum") and not hyper.get("weight_decay"), "plain sgd only"
        elif self.name == "adadelta":
            self.rho, self.eps = float(hyper["rho"]), float(hyper["eps"])
            self.sq = {k: np.zeros_like(v) for k, v in params.items()}
            self.acc = {k: np.zeros_like(v) for k, v in params.items()}
        else:
            raise ValueError(f"the references implement sgd and adadelta, not {self.name}")

    def step(self, params: Arrays, grads: Arrays) -> None:
        for k, p in params.items():
            g = grads[k]
            if self.name == "sgd":
                p -= self.lr * g
                continue
            sq, acc = self.sq[k], self.acc[k]
            sq *= self.rho
            sq += (1 - self.rho) * g * g
            delta = np.sqrt(acc + self.eps) / np.sqrt(sq + self.eps) * g
            acc *= self.rho
            acc += (1 - self.rho) * delta * delta
            p -= self.lr * delta


class NumpyTrainer(Runner):
    """A hand-written loop: `step(params, batch) -> (loss, grads)` then the optimizer."""

    def __init__(self, setup: Setup, step: Callable[[Arrays, Arrays], tuple[float, Arrays]]):
        self.setup = setup
        self.p = {k: np.array(v) for k, v in setup.params.items()}
        self.opt = NumpyOptimizer(setup.optimizer, self.p)
        self.step = step

    def run(self) -> float:
        loss = math.nan
        for b in batches(self.setup.data, self.setup.batch, self.n):
            loss, grads = self.step(self.p, b)
            self.opt.step(self.p, grads)
        return float(loss)

    def params(self) -> Arrays:
        return {k: v.copy() for k, v in self.p.items()}


# ----------------------------------------------------------------------------- PyTorch
class TorchTrainer(Runner):
    """Leaf tensors, `loss.backward()`, a torch.optim optimizer: the usual eager loop.
    `loss_fn(params, batch)` gets tensors; params keep wengert's layout (NHWC, [in, out])."""

    def __init__(self, setup: Setup, loss_fn: Callable[[dict, dict], Any]):
        import torch
        torch.set_num_threads(threads())
        self.torch = torch
        self.setup, self.loss_fn = setup, loss_fn
        self.p = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in setup.params.items()}
        name, hyper = setup.optimizer
        if name == "sgd":
            self.opt = torch.optim.SGD(list(self.p.values()), lr=hyper["lr"])
        else:
            self.opt = torch.optim.Adadelta(list(self.p.values()), lr=hyper["lr"], rho=hyper["rho"], eps=hyper["eps"])
        self.data = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in setup.data.items()}

    def run(self) -> float:
        loss = None
        for b in batches(self.data, self.setup.batch, self.n):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.p, b)
            loss.backward()
            self.opt.step()
        return float(loss.detach()) if loss is not None else math.nan

    def params(self) -> Arrays:
        return {k: v.detach().numpy().copy() for k, v in self.p.items()}


# ----------------------------------------------------------------------------- JAX
def jax_module():
    import jax
    jax.config.update("jax_enable_x64", True)  # W1-W4 and W7 are f64
    return jax


class JaxTrainer(Runner):
    """One jitted step (value_and_grad + the update); the batch is cut inside the jit by index."""

    def __init__(self, setup: Setup, loss_fn: Callable[[dict, dict], Any]):
        jax = jax_module()
        jnp = jax.numpy
        self.jax, self.setup = jax, setup
        self.p = {k: jnp.asarray(v) for k, v in setup.params.items()}
        self.data = {k: jnp.asarray(v) for k, v in setup.data.items()}
        rows = len(next(iter(setup.data.values())))
        self.per_epoch = math.ceil(rows / setup.batch)
        name, hyper = setup.optimizer
        lr = hyper["lr"]
        vg = jax.value_and_grad(loss_fn)
        b = setup.batch

        def cut(data, k):  # the batch, and the step for losses that draw random numbers
            return dict({n: jax.lax.dynamic_slice_in_dim(v, k * b, b) for n, v in data.items()}, step=k)

        if name == "sgd":
            def step(p, state, data, k):
                loss, g = vg(p, cut(data, k))
                return {n: p[n] - lr * g[n] for n in p}, state, loss
            self.state = ()
        else:
            rho, eps = hyper["rho"], hyper["eps"]

            def step(p, state, data, k):
                loss, g = vg(p, cut(data, k))
                sq, acc = state
                sq = {n: rho * sq[n] + (1 - rho) * g[n] * g[n] for n in p}
                delta = {n: jnp.sqrt(acc[n] + eps) / jnp.sqrt(sq[n] + eps) * g[n] for n in p}
                acc = {n: rho * acc[n] + (1 - rho) * delta[n] * delta[n] for n in p}
                return {n: p[n] - lr * delta[n] for n in p}, (sq, acc), loss
            self.state = ({n: jnp.zeros_like(v) for n, v in self.p.items()},
                          {n: jnp.zeros_like(v) for n, v in self.p.items()})
        self.step = jax.jit(step)

    def run(self) -> float:
        loss = None
        for k in range(self.n):
            self.p, self.state, loss = self.step(self.p, self.state, self.data, k % self.per_epoch)
        return float(loss.block_until_ready()) if loss is not None else math.nan

    def params(self) -> Arrays:
        return {k: np.asarray(v) for k, v in self.p.items()}


# ----------------------------------------------------------------------------- autograd
class AutogradTrainer(Runner):
    """HIPS autograd's value_and_grad of the loss over a dict of params, NumPy updates."""

    def __init__(self, setup: Setup, loss_fn: Callable[[dict, dict], Any]):
        import autograd
        self.setup = setup
        self.vg = autograd.value_and_grad(loss_fn)
        self.p = {k: np.array(v) for k, v in setup.params.items()}
        self.opt = NumpyOptimizer(setup.optimizer, self.p)

    def run(self) -> float:
        loss = math.nan
        for b in batches(self.setup.data, self.setup.batch, self.n):
            loss, grads = self.vg(self.p, b)
            self.opt.step(self.p, grads)
        return float(loss)

    def params(self) -> Arrays:
        return {k: v.copy() for k, v in self.p.items()}


def available(framework: str) -> bool:
    """Whether the framework's package imports (wengert and numpy always do)."""
    if framework in ("wengert", "numpy"):
        return True
    if framework in LEVELS:
        return can_compile()
    try:
        importlib.import_module(framework)
        return True
    except Exception:  # noqa: BLE001 -- ImportError, or a broken install (OSError, ...)
        return False


def frameworks_of(make_loss: Callable[[Any], Callable], numpy_step: Callable) -> dict[str, Callable[[Setup], Runner]]:
    """The four non-wengert runners of a workload whose loss is written once against a
    NumPy-like namespace: `make_loss(xp)` with xp = torch shim, jax.numpy or autograd.numpy."""
    def torch_runner(setup: Setup) -> Runner:
        from .xp import torch_xp
        return TorchTrainer(setup, make_loss(torch_xp()))

    def jax_runner(setup: Setup) -> Runner:
        jax = jax_module()
        from .xp import jax_xp
        return JaxTrainer(setup, make_loss(jax_xp(jax)))

    def autograd_runner(setup: Setup) -> Runner:
        from .xp import autograd_xp
        return AutogradTrainer(setup, make_loss(autograd_xp()))

    return {"numpy": lambda setup: NumpyTrainer(setup, numpy_step), "torch": torch_runner,
            "jax": jax_runner, "autograd": autograd_runner}
