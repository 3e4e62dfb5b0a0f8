"""A whole run of training steps as one native loop (how JAX reaches its best figure with
`lax.fori_loop`): the batches are gathered inside, each step calls the step's native segment and
updates every param and its slots with the optimizer's native loop (updates.py).

It applies when the step needs no Python: the compiled step is a single native segment with no
guard, the optimizer has a native update, and the train block has no clipping, gradient noise,
`update` statement or anomaly detection (the Trainer decides, train/loop.py). The loop runs a
chunk of steps at a time, so the Trainer reports progress between chunks; a guard (status != 0)
stops it at that step, which the Trainer then takes through the ordinary path. Same segment,
same update arithmetic: the params equal step-by-step native training bit for bit.
"""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from . import cache
from .native_codegen import NUMBA_TYPE, NativeStep
from .updates import UpdateCode

HEADER = "\nimport math\n"


@attrs.define
class EpochRunner:
    """`run(idx, lr, t0, columns)` trains len(idx) steps; returns how many ran and their values."""

    fn: Any
    step: NativeStep
    inputs: list[str]  # the input of each X argument
    params: list[str]  # the param of each P argument
    slots: list[tuple[str, str]]  # (param, slot) of each S argument
    roots: list[tuple[str, str]]
    n_values: int

    def run(self, idx: np.ndarray, lr: float, t0: int, columns: dict[str, np.ndarray], store: dict[str, Any],
            slot_arrays: dict[str, dict[str, np.ndarray]]) -> tuple[int, np.ndarray]:
        out = np.empty((len(idx), self.n_values), np.float64)
        args = [columns[n] for n in self.inputs] + [store[n] for n in self.params] \
            + [slot_arrays[p][s] for p, s in self.slots]
        done = self.fn(idx, float(lr), float(t0), out, *args, *self.consts())
        return int(done), out

    def consts(self) -> list[Any]:
        return [v for kind, v in self.step.args if kind == "const"]


def build(step: NativeStep, roots: list[tuple[str, str]], wrt: list[str], updates: dict[str, UpdateCode],
          metas: dict[str, tuple[tuple[int, ...], np.dtype]], n_values: int, consecutive: bool) -> EpochRunner:
    """The epoch function for a native step. `updates`: each param's update code; `metas`: each root's
    (per-step shape, dtype); the X arguments are whole columns, indexed by rows of `idx`. With
    `consecutive` (unshuffled batches), a batch is a view of rows idx[k, 0]..., as the Python path's
    slice, not a copy."""
    inputs = [name for kind, name in roots if kind == "input"]
    params = [name for kind, name in roots if kind != "input"]
    slots = [(p, s) for p in wrt for s in updates[p].slots]
    arg_of_root = {}
    for k, (kind, name) in enumerate(roots):
        arg_of_root[k] = f"x_{inputs.index(name)}" if kind == "input" else f"P{params.index(name)}"
    consts = [f"C{k}" for k, (kind, _) in enumerate(step.args) if kind == "const"]
    call, c = [], 0
    for kind, v in step.args:
        if kind == "root":
            call.append(arg_of_root[v])
        else:
            call.append(consts[c])
            c += 1
    lines = ["size = idx.shape[1]", "for k in range(idx.shape[0]):", "    rows = idx[k]"]
    lines += [f"    x_{j} = X{j}[rows[0]:rows[0] + size]" if consecutive else f"    x_{j} = X{j}[rows]"
              for j in range(len(inputs))]
    lines += [f"    r = segment0({', '.join(call)})", "    if r[0] != 0:", "        return k",
              "    t = t0 + k + 1.0"]
    for j, value_at in enumerate(step.values):
        lines.append(f"    out[k, {j}] = np.float64(r[{value_at}][()])")
    for p in wrt:
        code, pi = updates[p], params.index(p)
        shape, dtype = metas[p]
        size = int(np.prod(shape))
        grad_at = step.grads[wrt.index(p)]
        grad = f"r[{grad_at}]" if grad_at is not None else f"np.zeros({tuple(shape)!r}, {NUMBA_TYPE[dtype.name]})"
        lines.append(f"    P = P{pi}.reshape({size})")
        lines.append(f"    G = np.ascontiguousarray({grad}).reshape({size})")
        for s in code.slots:
            lines.append(f"    S_{s} = S{slots.index((p, s))}.reshape({size})")
        lines += ["    " + line for line in code.prologue]
        lines.append(f"    for i in range({size}):")
        lines += ["        " + line for line in code.body]
    lines.append("return idx.shape[0]")
    args = ["idx", "lr", "t0", "out"] + [f"X{j}" for j in range(len(inputs))] + [f"P{j}" for j in range(len(params))] \
        + [f"S{j}" for j in range(len(slots))] + consts
    source = step.source + HEADER + "\n\n@njit(cache=True, error_model=\"numpy\")\n" \
        + f"def epoch({', '.join(args)}):\n" + "\n".join("    " + line for line in lines) + "\n"
    module = cache.load_module(source)
    return EpochRunner(module.epoch, step, inputs, params, slots, roots, n_values)
