"""Executing the IR on NumPy, recording the Wengert list.

`Evaluation` runs the main block for the requested outputs only (what they depend on),
with lazy `if` (only the taken region runs and is recorded) and `for` loops unrolled as
they run. Every primitive evaluation appends one trace entry. Without recording, values
are dropped after their last use.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any

import attrs
import numpy as np

from . import anomaly, primitives
from .ir import Block, Eqn, Module, Var
from .ops import Dual, bind, primal
from .trace import Entry, Trace
from .types import DTYPE_OF_NUMPY, NUMPY_DTYPE, DimOp, Sym, eval_dim


@attrs.define
class Context:
    rng: np.random.Generator
    training: bool = False
    bindings: dict[str, int] = attrs.Factory(dict)  # symbolic dim root -> size
    device: Any = None  # an OpenCL backend: operand-less and random primitives are made there


def resolve_params(params: dict[str, Any], module: Module, bindings: dict[str, int]) -> dict[str, Any]:
    """Replace symbolic dims in an equation's params by their sizes for this run."""
    def res(v):
        if isinstance(v, (Sym, DimOp)):
            return eval_dim(module.dims.resolve(v), bindings)
        if isinstance(v, tuple):
            return tuple(res(x) for x in v)
        return v
    return {k: res(v) for k, v in params.items()}


# Whether an equation's params hold no symbolic dims (then they serve every evaluation as they
# are), by id(eqn), with a weak reference that tells a reused id apart.
_STATIC_PARAMS: dict[int, tuple[weakref.ref, bool]] = {}
# The equations a block runs for a set of wanted vars (the same every evaluation).
_NEEDED: "weakref.WeakKeyDictionary[Block, dict[tuple, list[Eqn]]]" = weakref.WeakKeyDictionary()


def _forget_params(key: int, ref: weakref.ref) -> None:
    if _STATIC_PARAMS.get(key, (None,))[0] is ref:
        del _STATIC_PARAMS[key]


def _symbolic(v: Any) -> bool:
    return isinstance(v, (Sym, DimOp)) or (isinstance(v, tuple) and any(_symbolic(x) for x in v))


def free_vars(block: Block) -> set[int]:
    """Ids of the vars a block reads from the blocks around it."""
    defined = {a.id for a in block.args}
    used: set[int] = set()
    for e in block.eqns:
        used.update(i.id for i in e.inputs)
        for r in e.regions:
            used |= free_vars(r)
        defined.update(o.id for o in e.outputs)
    used.update(r.id for r in block.results)
    return used - defined


def _reads(e: Eqn) -> set[int]:
    ids = {i.id for i in e.inputs}
    for r in e.regions:
        ids |= free_vars(r)
    return ids


class Evaluation:
    """One evaluation of a module: values by var id, and the trace when recording."""

    def __init__(self, module: Module, roots: dict[int, tuple[str, str, Any]], ctx: Context, record: bool = True,
                 active_roots: set[int] = frozenset(), detect_anomaly: bool = False):
        self.module = module
        self.detect_anomaly = detect_anomaly  # stop at the first NaN/Inf produced or read (anomaly.py)
        self.roots = roots  # var id -> (kind, name, value) for inputs, params and state
        self.ctx = ctx
        self.record = record
        self.active_roots = set(active_roots)
        self.trace = Trace(source_text=module.source_text)
        self.env: dict[int, Any] = {}  # var id -> value
        self.entry_of: dict[int, int] = self.trace.var_entry  # var id -> trace entry index
        self._resolved: dict[int, dict[str, Any]] = {}
        # Control decisions taken on values, as (trace entry index, value): an `if` condition's
        # truth, a `for` bound read at run time. A compiled plan (plan.py) replays them as guards.
        self.guards: list[tuple[int, Any]] = []
        # Plain NumPy roots on the CPU give plain NumPy values throughout: kernels run directly.
        self._plain = getattr(ctx, "device", None) is None and all(type(r[2]) is np.ndarray for r in roots.values())

    # ---- values ----
    def read(self, v: Var) -> Any:
        if v.id not in self.env:
            kind, name, value = self.roots[v.id]
            self.env[v.id] = value
            self._record(v, kind, (), {}, value, None, name=name, active=v.id in self.active_roots)
            if self.detect_anomaly:
                self._check_root(v, kind, name, value)
        return self.env[v.id]

    def _record(self, v: Var, op: str, operands: tuple[int, ...], params: dict, value: Any, span: Any,
                name: str = "", active: bool = False) -> None:
        if not self.record:
            return
        p = primal(value)
        if not hasattr(p, "shape"):  # device arrays are described without a copy
            p = np.asarray(p)
        dtype = DTYPE_OF_NUMPY.get(p.dtype) or str(p.dtype)
        entry = Entry(len(self.trace.entries), op, operands, params, p.shape, dtype, span, value, name, active)
        self.trace.entries.append(entry)
        self.entry_of[v.id] = entry.index

    def _active(self, inputs: tuple[Var, ...]) -> bool:
        return any(self.trace.entries[self.entry_of[i.id]].active for i in inputs if i.id in self.entry_of)

    # ---- running ----
    def run(self, outputs: list[Var]) -> list[Any]:
        # NaN and Inf are values like any other here (a NaN loss is reported, not warned about).
        with np.errstate(all="ignore"):
            return self._run(outputs)

    def _run(self, outputs: list[Var]) -> list[Any]:
        wanted = {v.id for v in outputs}
        needed = self._needed(self.module.main, wanted)
        remaining = self._use_counts(needed, wanted) if not self.record else None
        for e in needed:
            self.eqn(e)
            if remaining is not None:
                for vid in _reads(e):
                    remaining[vid] = remaining.get(vid, 1) - 1
                    if remaining[vid] <= 0 and vid not in wanted and vid in self.env:
                        del self.env[vid]  # freed after its last use
        return [self.read(v) for v in outputs]

    def _params(self, e: Eqn) -> dict[str, Any]:
        """An equation's params with symbolic dims resolved (cached: static ones for good)."""
        known = _STATIC_PARAMS.get(id(e))
        if known is None or known[0]() is not e:
            known = _STATIC_PARAMS[id(e)] = (weakref.ref(e, functools.partial(_forget_params, id(e))),
                                             not any(map(_symbolic, e.params.values())))
        if known[1]:
            return e.params
        params = self._resolved.get(id(e))
        if params is None:
            params = self._resolved[id(e)] = resolve_params(e.params, self.module, self.ctx.bindings)
        return params

    def _needed(self, block: Block, wanted: set[int]) -> list[Eqn]:
        key = (frozenset(wanted), len(block.eqns))
        cached = _NEEDED.setdefault(block, {})
        if key not in cached:
            cached[key] = self._find_needed(block, wanted)
        return cached[key]

    def _find_needed(self, block: Block, wanted: set[int]) -> list[Eqn]:
        live = set(wanted)
        kept = []
        for e in reversed(block.eqns):
            if any(o.id in live for o in e.outputs):
                kept.append(e)
                live |= _reads(e)
        return kept[::-1]

    def _use_counts(self, eqns: list[Eqn], wanted: set[int]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for e in eqns:
            for vid in _reads(e):
                counts[vid] = counts.get(vid, 0) + 1
        return counts

    def block(self, block: Block) -> list[Any]:
        for e in block.eqns:
            self.eqn(e)
        return [self.read(r) for r in block.results]

    def eqn(self, e: Eqn) -> None:
        if e.prim == "for":
            return self._for(e)
        if e.prim == "if":
            return self._if(e)
        env = self.env
        args = [env[i.id] if i.id in env else self.read(i) for i in e.inputs]
        params = self._params(e)
        prim = primitives.REGISTRY[e.prim]
        try:
            if self.ctx.device is not None and (prim.needs_context or not args):
                value = self.ctx.device.run(e.prim, [primal(a) for a in args], params, self.ctx)
            elif prim.needs_context:
                value = prim.impl(self.ctx, *(primal(a) for a in args), **params)
            elif self._plain:  # what bind would run, without its checks for duals and devices
                value = prim.impl(*args, **params)
            else:
                value = bind(e.prim, *args, **params)
        except (IndexError, ValueError, FloatingPointError) as exc:
            raise EvaluationError(str(exc), e.span) from None
        out = e.outputs[0]
        self.env[out.id] = value
        active = self.record and prim.differentiable and self._active(e.inputs)
        if self.record:
            self._record(out, e.prim, tuple(self.entry_of.get(i.id, -1) for i in e.inputs), params, value, e.span,
                         name=out.hint if out.hint and not out.hint.startswith("%") else "", active=active)
            self.trace.entries[-1].layer = e.layer
        if self.detect_anomaly:
            self._check(e, out, args, value)

    # ---- anomaly detection (only when on) ----
    def _label(self, v: Var, position: int) -> str:
        """`v4 (`x`)` with a trace, `2 (`x`)` without one: how an operand is named in a message."""
        if self.record and v.id in self.entry_of:
            entry = self.trace.entries[self.entry_of[v.id]]
            label, name = f"v{entry.index}", entry.name
        else:
            root = self.roots.get(v.id)
            label, name = str(position), root[1] if root else (v.hint if v.hint and not v.hint.startswith("%") else "")
        return f"{label} (`{name}`)" if name else label

    def _check(self, e: Eqn, out: Var, args: list[Any], value: Any) -> None:
        count = anomaly.nonfinite(value)
        if count is not None:
            operands = [(self._label(v, k + 1), a) for k, (v, a) in enumerate(zip(e.inputs, args))]
            raise anomaly.forward_error(e.span, e.prim, value, count, operands, self.entry_of.get(out.id),
                                        file=self.module.path)

    def _check_root(self, v: Var, kind: str, name: str, value: Any) -> None:
        count = anomaly.nonfinite(value)
        if count is not None:
            decl = self.module.inputs.get(name) if kind == "input" else self.module.params.get(name)
            raise anomaly.root_error(decl.span if decl is not None else None, kind, name, value, count,
                                     self.entry_of.get(v.id), file=self.module.path)

    def _alias(self, target: Var, source: Var) -> None:
        self.env[target.id] = self.env[source.id]
        if source.id in self.entry_of:
            self.entry_of[target.id] = self.entry_of[source.id]

    def _if(self, e: Eqn) -> None:
        cond = bool(primal(self.read(e.inputs[0])))
        if self.record:
            self.guards.append((self.entry_of.get(e.inputs[0].id, -1), cond))
        region = e.regions[0] if cond else e.regions[1]
        self.block(region)
        for out, result in zip(e.outputs, region.results):  # several when `grad` exports a branch's values
            self._alias(out, result)

    def _for(self, e: Eqn) -> None:
        n_carried = e.params["n_carried"]
        carried, bounds = list(e.inputs[:n_carried]), list(e.inputs[n_carried:])
        start, stop = e.params["start"], e.params["stop"]
        start = self._bound(bounds.pop(0)) if start is None else eval_dim(
            self.module.dims.resolve(start), self.ctx.bindings)
        stop = self._bound(bounds.pop(0)) if stop is None else eval_dim(
            self.module.dims.resolve(stop), self.ctx.bindings)
        if e.params.get("steps") is not None:  # a symbol for the trip count (the stacks `grad` reads)
            self.ctx.bindings[self.module.dims.find(e.params["steps"].name)] = max(stop - start, 0)
        body = e.regions[0]
        index_var, arg_vars = body.args[0], body.args[1:]
        for a, c in zip(arg_vars, carried):
            self.read(c)
            self._alias(a, c)
        steps = range(start, stop)
        stacked: list[list[Var]] = [[] for _ in e.params["stacked"]]
        results = body.results
        for t in (reversed(steps) if e.params["reversed"] else steps):
            value = np.asarray(t, dtype=np.int64)
            self.env[index_var.id] = value
            self._record(index_var, "iter", (), {}, value, e.span, name=index_var.hint)
            self.block(body)
            for k in range(len(stacked)):
                step_var = results[n_carried + k]
                keep = Var(step_var.type)
                self._alias(keep, step_var)
                stacked[k].append(keep)
            for a, r in zip(arg_vars, results[:n_carried]):
                self._alias(a, r)
        for out, a, c in zip(e.outputs, arg_vars, carried):
            self._alias(out, a if steps else c)
        for k, axis in enumerate(e.params["stacked"]):
            self._stack(e.outputs[n_carried + k], stacked[k], axis, e)

    def _bound(self, v: Var) -> int:
        """A loop bound computed at run time (its value decides the trip count)."""
        n = int(primal(self.read(v)))
        if self.record:
            self.guards.append((self.entry_of.get(v.id, -1), n))
        return n

    def _stack(self, out: Var, parts: list[Var], axis: int, e: Eqn) -> None:
        """Per-step results stacked along axis, recorded as reshape + concat entries."""
        if not parts:
            shape = tuple(eval_dim(self.module.dims.resolve(d), self.ctx.bindings) for d in out.type.shape)
            self.env[out.id] = np.zeros(shape, dtype=NUMPY_DTYPE[out.type.dtype])
            self._record(out, "fill", (), {"shape": shape}, self.env[out.id], e.span)
            return
        expanded = []
        for p in parts:
            v = self.env[p.id]
            shape = np.shape(primal(v))
            x = Var(p.type)
            self.env[x.id] = bind("reshape", v, shape=shape[:axis] + (1,) + shape[axis:])
            self._record(x, "reshape", (self.entry_of.get(p.id, -1),), {"shape": shape[:axis] + (1,) + shape[axis:]},
                         self.env[x.id], e.span, active=self.record and self._active((p,)))
            expanded.append(x)
        value = bind("concat", *(self.env[x.id] for x in expanded), axis=axis)
        self.env[out.id] = value
        self._record(out, "concat", tuple(self.entry_of.get(x.id, -1) for x in expanded), {"axis": axis}, value,
                     e.span, active=self.record and self._active(tuple(expanded)))


class EvaluationError(Exception):
    """A run-time failure inside the program (an index out of range), with its source span."""

    def __init__(self, message: str, span: Any):
        super().__init__(message)
        self.span = span


def wrap(value: Any, tangent: np.ndarray | None) -> Any:
    return Dual(value, tangent) if tangent is not None else value
