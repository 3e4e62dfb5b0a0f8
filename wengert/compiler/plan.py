"""Compiled steps: a recorded Wengert list replayed as straight-line NumPy code.

When evaluations of the same request (value, gradients, training flag, fed shapes and
dtypes) produce a Wengert list of the same structure twice in a row, `PlanCache`
compiles the step into a `Plan`: one generated Python function (`exec`ed once) running
the forward kernels and the reverse pass as a straight sequence of NumPy calls, values in
locals, results written with `out=` into buffers kept from one replay to the next.

- Forward: the trace's entries; roots (inputs, params, state) become arguments, entries
  that read no root (constants, `dimsize`, loop indices, and everything computed only from
  them) are folded into constants. Random draws (`needs_context` kernels) run on every
  replay from the program's generator, in the trace's order, so seeded runs draw exactly
  what the interpreter draws.
- Backward: the VJP rules are traced once. The reverse pass of autodiff.py runs over the
  trace with `ops.bind`, `ops.scale` and `ops.const_like` recording what they do, so the
  backward becomes a Wengert list of its own. Arrays are known by identity; a rule that
  feeds `bind` an array of unknown provenance (raw NumPy on primal values: `maximum`'s
  tie weights, `reduce_max`'s hits) is kept as one opaque call of the rule instead.
  `ops.scale`'s test for non-finite derivatives runs at every replay.
- The whole list is then optimised: aliases resolved (`x * 1`, same-shape reshapes),
  constants folded, common subexpressions shared, dead values dropped, and adjoint
  accumulations done in place (`np.add(a, b, out=a)`) when nothing reads `a` afterwards.
- Guards: the plan is keyed by the request and the fed shapes/dtypes; the `if` decisions
  and run-time loop bounds of the compiling trace (`Evaluation.guards`) are checked as the
  replay reaches them. A mismatch (`GuardFailed`) rewinds the random generator and falls
  back to the interpreter, which then compiles a second plan if the new structure repeats.

The same kernels run in the same order as in the interpreter, so values and derivatives
are bit-identical to the interpreted path (tests/test_plan.py).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..runtime import ops
from ..runtime.autodiff import release_unneeded
from ..runtime.executor import Context, Evaluation
from ..runtime.types import NUMPY_DTYPE
from .graph import ROOTS, NotCompilable, build
from .numpy_codegen import Plan, generate
from .optimise import optimise

MAX_PLANS = 4  # plans per key (one per set of guard outcomes seen twice)
# `Program.compile`: native code (numba), the NumPy replay (bit-identical to the interpreter), or off
LEVELS = ("native", "numpy", "off")


def compile_level(value: Any) -> str:
    """A compile setting as a level: True is the default (native), False is off; "native" becomes
    "numpy" when numba is not installed (the fallback level)."""
    level = {True: "native", False: "off", None: "native"}.get(value, value) if not isinstance(value, str) else value
    if level not in LEVELS:
        raise ValueError(f"unknown compile level {value!r}; known: {', '.join(LEVELS)}")
    if level == "native" and not native_available():
        return "numpy"
    return level


def native_available() -> bool:
    try:
        import numba  # noqa: F401
        import scipy  # noqa: F401  (numba's matrix products call BLAS through SciPy)
    except ImportError:
        return False
    return True


def compile_step(evaluation: Evaluation, names: list[str], output_name: str, wrt: list[str],
                 level: str = "numpy") -> tuple[Plan, list[Any], dict[str, Any]]:
    """Compile an evaluation recorded with `wrt` active. Also returns this step's values (of
    `names`) and the adjoints of `wrt` (None where none), computed by the traced reverse pass.
    At the native level, a step numba cannot compile becomes a NumPy plan (`plan.fallback` says why)."""
    trace = evaluation.trace
    output = trace.outputs[output_name]
    root_entry = {(e.op, e.name): e.index for e in trace.entries if e.op in ROOTS}
    opaque: set[int] = set()
    for _ in range(4):
        graph, node_of, adj, adj_value = build(evaluation, output, opaque)
        value_nodes = [node_of[trace.outputs[n]] for n in names]
        wrt_entries = [_root_index(root_entry, n) for n in wrt]
        grad_nodes = [adj.get(i) if i is not None else None for i in wrt_entries]
        if any(i < 0 for i, _ in evaluation.guards):
            raise NotCompilable("a branch on a value the trace does not hold")
        guards = [(node_of[i], want) for i, want in evaluation.guards]
        order, rep = optimise(graph, value_nodes + grad_nodes, guards)
        tainted = {graph.nodes[a].owner for n in order for a in graph.nodes[n].args if graph.nodes[a].taint}
        tainted |= {graph.nodes[n].owner for n in order if graph.nodes[n].taint}
        if not tainted:
            break
        opaque |= tainted
    else:
        raise NotCompilable("rules of unknown provenance")
    plan = None
    if level == "native":
        from . import native_codegen
        try:
            plan = native_codegen.generate(graph, order, rep, value_nodes, grad_nodes, guards)
        except Exception as e:  # noqa: BLE001 - NotCompilable, or code numba refuses: the NumPy replay
            if os.environ.get("WENGERT_NATIVE_STRICT"):  # tests and debugging: no silent fallback
                raise
            fallback = " ".join(f"{type(e).__name__}: {e}".split())[:2000]
    if plan is None:
        plan = generate(graph, order, rep, value_nodes, grad_nodes, guards)
        if level == "native":
            plan.fallback = fallback
    values = [ops.primal(trace.entries[trace.outputs[n]].value) for n in names]
    grads = {n: (adj_value.get(i) if i is not None else None) for n, i in zip(wrt, wrt_entries)}
    return plan, values, grads


def _root_index(root_entry: dict[tuple[str, str], int], name: str) -> int | None:
    for kind in ROOTS:
        if (kind, name) in root_entry:
            return root_entry[(kind, name)]
    return None


class PlanCache:
    """A Program's compiled steps, by request and fed shapes; falls back to the interpreter."""

    def __init__(self, prog: Any) -> None:
        self.prog = prog
        self.plans: dict[tuple, list[Plan]] = {}
        self.seen: dict[tuple, set[tuple]] = {}  # structures traced once (compiled when seen again)
        self.refused: set[tuple] = set()  # keys that cannot be compiled
        self.stats = {"replays": 0, "traced": 0, "compiled": 0, "guard_failures": 0}
        self._dtypes = {n: np.dtype(NUMPY_DTYPE[d.var.type.dtype]) for n, d in prog.module.inputs.items()}

    def _fed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The inputs as the interpreter converts them (arrays of the declared dtype)."""
        fed = {}
        for name, value in inputs.items():
            dtype = self._dtypes.get(name)
            if dtype is None:
                return None  # the interpreter reports it
            if type(value) is not np.ndarray or value.dtype != dtype:
                value = self.prog._convert(name, value)
            fed[name] = value
        return fed

    def value_and_grad(self, of: str, wrt: list[str], inputs: dict[str, Any], also: list[str], training: bool,
                       resident: bool = False, level: str = "numpy") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Program.value_and_grad, replayed when a plan fits. With `resident`, the gradients may
        be the plan's own buffers: valid until the next call (the Trainer's step reads them once)."""
        prog = self.prog
        names = [of] + [n for n in also if n != of]
        fed = self._fed(inputs)
        key = None if fed is None else (level, tuple(names), tuple(wrt), training,
                                        tuple((n, v.shape, v.dtype.char) for n, v in fed.items()))
        plans = self.plans.get(key, ())
        for k, plan in enumerate(plans):
            result = self._replay(plan, fed, names, wrt, training, resident)
            if result is not None:
                if k:  # the structure changed: try this plan first from now on
                    plans.insert(0, plans.pop(k))
                return result
        self.stats["traced"] += 1
        rng = prog._rng if prog.replay_seed is None else None
        drawn_from = rng.bit_generator.state if level == "native" and rng is not None else None
        evaluation, outs = prog._evaluate(names, fed if fed is not None else inputs, record=True, active=wrt,
                                          training=training)
        values = {n: ops.primal(v) for n, v in zip(names, outs)}
        prog._require_scalar(of, values[of])
        if key is not None and key not in self.refused and len(self.plans.get(key, ())) < MAX_PLANS:
            shape = _structure(evaluation)
            # native code is compiled at the first trace and runs this step too: every step of a run, the
            # first after a resume included, then computes with the same code (NumPy plans are
            # bit-identical to the interpreter, so they wait until a structure repeats)
            if level == "native" or shape in self.seen.setdefault(key, set()):
                try:
                    plan, _, adjoints = compile_step(evaluation, names, of, wrt, level)
                except Exception:  # noqa: BLE001 - NotCompilable, or a rule that cannot be traced: interpret
                    self.refused.add(key)
                else:
                    plan.grad_types = [(like.dtype, like.shape) for like in (prog._root_value(n, fed) for n in wrt)]
                    self.plans.setdefault(key, []).insert(0, plan)
                    self.stats["compiled"] += 1
                    self.stats[plan.level] = self.stats.get(plan.level, 0) + 1
                    if plan.level == "native":
                        drawn_to = rng.bit_generator.state if drawn_from is not None else None
                        if drawn_from is not None:
                            rng.bit_generator.state = drawn_from  # draw this step's numbers again
                        result = self._replay(plan, fed, names, wrt, training, resident)
                        if result is not None:
                            return result
                        self.plans[key].remove(plan)  # it cannot run this very step: keep interpreting
                        self.refused.add(key)
                        if drawn_to is not None:
                            rng.bit_generator.state = drawn_to
                    return values, self._grads(wrt, [adjoints[n] for n in wrt], fed)
            else:
                self.seen[key].add(shape)
        trace = evaluation.trace
        output = evaluation.entry_of[prog._var(of).id]
        release_unneeded(trace, output)
        prog._backward(trace, output)
        return values, {n: prog._adjoint(evaluation, n, inputs) for n in wrt}

    def native_plan(self, of: str, wrt: list[str], inputs: dict[str, Any], also: list[str], training: bool,
                    level: str) -> Plan | None:
        """The plan of this request if it is the key's only plan and a single native call (epochs.py)."""
        names = [of] + [n for n in also if n != of]
        fed = self._fed(inputs)
        if fed is None:
            return None
        key = (level, tuple(names), tuple(wrt), training, tuple((n, v.shape, v.dtype.char) for n, v in fed.items()))
        plans = self.plans.get(key, ())
        return plans[0] if len(plans) == 1 and plans[0].native is not None and plans[0].replays else None

    def _replay(self, plan: Plan, fed: dict[str, np.ndarray], names: list[str], wrt: list[str], training: bool,
                resident: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        prog = self.prog
        store = prog._store
        ctx = state = None
        if plan.random:
            rng = prog._rng if prog.replay_seed is None else np.random.default_rng(prog.replay_seed)
            ctx = Context(rng, training)
            state = rng.bit_generator.state if plan.guarded else None
        try:
            args = [fed[name] if kind == "input" else store[name] for kind, name in plan.roots]
            with np.errstate(all="ignore"):
                values, adjoints = plan.run(ctx, *args)
        except Exception:  # noqa: BLE001 - a guard, or a kernel error the interpreter reports at its line
            if state is not None:
                rng.bit_generator.state = state
            self.stats["guard_failures"] += 1
            return None
        plan.replays += 1
        self.stats["replays"] += 1
        grads = {}
        for n, adj, (dtype, shape) in zip(wrt, adjoints, plan.grad_types):
            if adj is None:
                adj = np.zeros(shape, dtype)
            else:  # a copy unless resident: the plan's buffers are written again by the next replay
                adj = np.asarray(adj, dtype=dtype) if resident else np.array(adj, dtype=dtype)
            grads[n] = adj if adj.shape == shape else adj.reshape(shape)
        # values are always copies: the Trainer stores `update` values as the new state
        return {n: np.array(v) for n, v in zip(names, values)}, grads

    def _grads(self, wrt: list[str], adjoints: Any, fed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for n, adj in zip(wrt, adjoints):
            like = self.prog._root_value(n, fed)
            if adj is None:
                out[n] = np.zeros_like(like)
            else:  # a copy: the plan's buffers are written again by the next replay
                adj = np.array(adj, dtype=like.dtype)
                out[n] = adj if adj.shape == like.shape else adj.reshape(like.shape)
        return out


def _structure(evaluation: Evaluation) -> tuple:
    """What must match between two traces for one plan to replay both."""
    return (tuple((e.op, e.operands, e.shape, e.dtype, e.active) for e in evaluation.trace.entries),
            tuple(evaluation.guards))
