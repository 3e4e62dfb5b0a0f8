"""`grad`, `jacobian` and `hvp` in the language: reverse mode run while checking.

The primitives' VJP rules (runtime/primitives/) are written with `ops` helpers and NumPy's
operators, all of which go through `ops.bind`. Run over `Traced` values — IR vars that look
like arrays, with the var's (symbolic) shape and dtype — every `bind` emits an equation
through the Builder. So `grad(loss, w)` becomes ordinary equations of the program: it runs
in compiled plans and on OpenCL like any value, and a program holding it can itself be
differentiated in either mode (grad of grad, JVP of a grad). This is the idea of
compiler/graph.py (the reverse pass traced by recording bind), applied to the IR.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..diagnostics import Span
from ..runtime import ops, primitives
from ..runtime.ir import Block, Eqn, Var
from ..runtime.types import DTYPE_OF_NUMPY, ERROR_TYPE, FLOATS, NUMPY_DTYPE, TensorType
from .builder import Builder, control


_STEP_SYMBOLS = itertools.count(1)  # names of the trip counts of loops with run-time bounds


class NotDifferentiable(Exception):
    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.span = span


class Emitter:
    """The `backend` of Traced values: `bound(prim)` is a kernel that emits an equation."""

    def __init__(self, builder: Builder, span: Span | None):
        self.b, self.span = builder, span

    def bound(self, prim: str):
        def emit(*args: Any, **params: Any) -> "Traced":
            like = next((a.dtype for a in args if isinstance(a, Traced)), None)
            var = self.b.emit(prim, [self.var(a, like) for a in args], params, self.span)
            if var.type.is_error:
                raise NotDifferentiable(f"the derivative rule of `{prim}` does not fit its operands")
            return Traced(var, self)
        return emit

    def var(self, a: Any, like: np.dtype | None = None) -> Var:
        """An operand as a var: a Traced's own, or a constant (Python numbers take `like`'s dtype)."""
        if isinstance(a, Traced):
            return a.var
        if isinstance(a, (bool, int, float)) and not isinstance(a, np.generic) and like is not None \
                and like.kind != "b":
            a = np.asarray(a, dtype=like)
        arr = np.asarray(a)
        return self.b.const(arr, self.span, dtype=DTYPE_OF_NUMPY[arr.dtype], weak=False)

    def traced(self, a: Any, like: np.dtype | None = None) -> "Traced":
        return a if isinstance(a, Traced) else Traced(self.var(a, like), self)


def _binary(prim: str, swap: bool = False):
    def op(self: "Traced", other: Any) -> "Traced":
        a, b = (other, self) if swap else (self, other)
        return self.backend.bound(prim)(a, b)
    return op


class Traced:
    """An IR var that the derivative rules use as an array."""

    __array_priority__ = 1000
    __hash__ = object.__hash__

    def __init__(self, var: Var, backend: Emitter):
        self.var, self.backend = var, backend

    @property
    def shape(self) -> tuple:
        return self.backend.b.dims.resolve_shape(self.var.type.shape)

    @property
    def ndim(self) -> int:
        return self.var.type.rank

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(NUMPY_DTYPE[self.var.type.dtype])

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", True)
    __truediv__, __rtruediv__ = _binary("div"), _binary("div", True)
    __pow__ = _binary("pow")
    __lt__, __le__, __gt__, __ge__ = _binary("lt"), _binary("le"), _binary("gt"), _binary("ge")
    __eq__, __ne__ = _binary("eq"), _binary("ne")  # type: ignore[assignment]

    def __neg__(self) -> "Traced":
        return self.backend.bound("neg")(self)

    def astype(self, dtype, copy: bool = True) -> "Traced":
        name = DTYPE_OF_NUMPY[np.dtype(dtype)]
        return self if name == self.var.type.dtype else self.backend.bound("cast")(self, dtype=name)

    def sum(self, axis=None, keepdims: bool = False, dtype=None) -> "Traced":
        axes = tuple(range(self.ndim)) if axis is None else tuple(a % self.ndim for a in np.atleast_1d(axis))
        return self.backend.bound("reduce_sum")(self, axes=axes, keepdims=keepdims)

    def reshape(self, *shape) -> "Traced":
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        return self.backend.bound("reshape")(self, shape=shape)

    def __array_ufunc__(self, uf, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = ops.UFUNCS.get(uf)
        if method != "__call__" or name is None or kwargs:
            raise NotDifferentiable(f"numpy.{uf.__name__} is not available to derivative rules in `grad`")
        like = next(a.dtype for a in inputs if isinstance(a, Traced))
        return self.backend.bound(name)(*(self.backend.traced(a, like) for a in inputs))

    def __array_function__(self, func, types, args, kwargs) -> Any:
        impl = _FUNCTIONS.get(func)
        if impl is None:
            raise NotDifferentiable(f"numpy.{func.__name__} is not available to derivative rules in `grad`")
        return impl(*args, **kwargs)




def _where(c, a, b):
    t = next(v for v in (c, a, b) if isinstance(v, Traced))
    like = next((v.dtype for v in (a, b) if isinstance(v, Traced)), np.result_type(a, b))
    return t.backend.bound("where")(t.backend.traced(c), t.backend.traced(a, like), t.backend.traced(b, like))


def _expand_dims(a: Traced, axis) -> Traced:
    axes = sorted(x % (a.ndim + len(np.atleast_1d(axis))) for x in np.atleast_1d(axis))
    shape = list(a.shape)
    for x in axes:
        shape.insert(x, 1)
    return a.reshape(tuple(shape))


def _fill_like(value: float):
    def fill(a: Traced, dtype=None, shape=None, **_) -> Traced:
        dt = np.dtype(dtype) if dtype is not None else a.dtype
        zero = a.backend.traced(np.asarray(value, dtype=dt))
        return a.backend.bound("broadcast_to")(zero, shape=tuple(a.shape if shape is None else shape))
    return fill


_FUNCTIONS = {
    np.where: _where,
    np.expand_dims: _expand_dims,
    np.result_type: lambda *args: np.result_type(*[a.dtype if isinstance(a, Traced) else a for a in args]),
    np.broadcast_to: lambda a, shape, **_: a if tuple(a.shape) == tuple(shape) else a.backend.bound(
        "broadcast_to")(a, shape=tuple(shape)),
    np.reshape: lambda a, shape, **_: a.reshape(shape),
    np.transpose: lambda a, axes=None: a.backend.bound("transpose")(
        a, perm=tuple(axes) if axes is not None else tuple(reversed(range(a.ndim)))),
    np.sum: lambda a, axis=None, keepdims=False, **_: a.sum(axis=axis, keepdims=keepdims),
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.zeros_like: _fill_like(0.0),
    np.ones_like: _fill_like(1.0),
    np.asarray: lambda a, dtype=None, **_: a if dtype is None else a.astype(dtype),
}
ops.DEVICE_TYPES.add(Traced)


# ---------------------------------------------------------------- the reverse sweep over IR equations
def _region_free(block: Block) -> dict[int, Var]:
    """The vars a region reads from the blocks around it, by id."""
    defined = {a.id for a in block.args}
    used: dict[int, Var] = {}
    for e in block.eqns:
        for i in e.inputs:
            if i.id not in defined:
                used.setdefault(i.id, i)
        for r in e.regions:
            for k, v in _region_free(r).items():
                if k not in defined:
                    used.setdefault(k, v)
        defined.update(o.id for o in e.outputs)
    for r in block.results:
        if r.id not in defined:
            used.setdefault(r.id, r)
    return used


def _mark_active(eqns: list[Eqn], active: set[int]) -> None:
    """Add to `active` every var (regions included) that depends on one already in it."""
    for e in eqns:
        if e.regions:
            for r in e.regions:
                _mark_active(r.eqns, active)
            if e.prim == "if":
                hit = any(r.results and r.results[0].id in active for r in e.regions)
            else:  # a loop, conservatively: all its carried values and outputs when it reads anything active
                hit = bool(({i.id for i in e.inputs} | {k for r in e.regions for k in _region_free(r)}) & active)
                if hit:
                    active.update(a.id for a in e.regions[0].args[1:] if a.type.dtype in FLOATS)
                    _mark_active(e.regions[0].eqns, active)
            if hit:
                active.update(o.id for o in e.outputs)
            continue
        if primitives.REGISTRY[e.prim].differentiable and any(i.id in active for i in e.inputs):
            active.update(o.id for o in e.outputs)


class ReverseSweep:
    def __init__(self, builder: Builder, span: Span | None):
        self.b = builder
        self.em = Emitter(builder, span)
        self.span = span

    def traced(self, v: Var) -> Traced:
        return Traced(v, self.em)

    def zeros(self, v: Var) -> Var:
        zero = self.em.var(np.zeros((), dtype=NUMPY_DTYPE[v.type.dtype]))
        if not v.type.shape:
            return zero
        return self.b.emit("broadcast_to", [zero], {"shape": tuple(v.type.shape)}, self.span)

    def accumulate(self, adj: dict[int, Any], v: Var, ct: Any) -> None:
        ct = self.em.traced(ct, np.dtype(NUMPY_DTYPE[v.type.dtype]))
        adj[v.id] = ct if v.id not in adj else ops.add(adj[v.id], ct)

    def sweep(self, eqns: list[Eqn], adj: dict[int, Any], active: set[int]) -> dict[int, Any]:
        for e in reversed(eqns):
            if not any(o.id in adj and o.id in active for o in e.outputs):
                continue
            if e.prim == "for":
                self.for_rule(e, adj, active)
                continue
            if e.prim == "if":
                self.if_rule(e, adj, active)
                continue
            rule = primitives.REGISTRY[e.prim].vjp
            if rule is None:
                raise NotDifferentiable(f"reverse mode is not defined for `{e.prim}`", e.span)
            out = e.outputs[0]
            cts = rule(adj[out.id], self.traced(out), *(self.traced(i) for i in e.inputs), **e.params)
            for i, ct in zip(e.inputs, cts):
                if ct is not None and i.id in active:
                    self.accumulate(adj, i, ct)
        return adj

    def if_rule(self, e: Eqn, adj: dict[int, Any], active: set[int]) -> None:
        """The adjoint of a lazy `if` is an `if` on the same condition over the branches' adjoints
        (of the user's value, and of the values exported for an earlier `grad`)."""
        free: dict[int, Var] = {}
        for r in e.regions:
            free.update(_region_free(r))
        targets = [v for k, v in free.items() if k in active and v.type.dtype in FLOATS]
        regions = []
        for k, r in enumerate(e.regions):
            block = self.b.push(Block())
            inner: dict[int, Any] = {}
            for out, result in zip(e.outputs, r.results):
                if out.id in adj and result.id in active:
                    self.accumulate(inner, result, adj[out.id])
            self.sweep(r.eqns, inner, active)
            block.results = tuple(self.em.var(inner[t.id]) if t.id in inner else self.zeros(t) for t in targets)
            self.b.pop()
            self.export(e, k, block)
            regions.append(block)
        outs = control(self.b, "if", [e.inputs[0]], [TensorType(t.type.dtype, t.type.shape) for t in targets], {},
                       tuple(regions), self.span)
        for t, o in zip(targets, outs):
            self.accumulate(adj, t, self.traced(o))

    def dim_var(self, d: Any) -> Var:
        if isinstance(d, int):
            return self.em.var(np.asarray(d, dtype=np.int64))
        return self.b.emit("dimsize", [], {"dim": d}, self.span)

    def for_rule(self, e: Eqn, adj: dict[int, Any], active: set[int]) -> None:
        """The adjoint of a loop is a loop over the same steps in the opposite order. It carries
        the adjoints of the carried values and accumulates those of the outer values the body
        reads; the body's values it needs are stacked by the forward loop (one row per step)."""
        params, body = e.params, e.regions[0]
        start, stop, n_carried = params["start"], params["stop"], params["n_carried"]
        bounds = list(e.inputs[n_carried:])  # the bounds known only at run time, start first
        start_of = self.dim_var(start) if start is not None else self.b.cast(bounds[0], "i64", self.span)
        stop_of = self.dim_var(stop) if stop is not None else self.b.cast(bounds[-1], "i64", self.span)
        index, carried = body.args[0], list(body.args[1:])
        outer = [v for k, v in _region_free(body).items() if k in active and v.type.dtype in FLOATS]
        inits = [self.em.var(adj[o.id]) if o.id in adj else self.zeros(a) for o, a in zip(e.outputs, carried)]
        inits += [self.zeros(v) for v in outer]
        lam = [Var(a.type) for a in carried]
        mu = [Var(v.type) for v in outer]
        b_index = Var(TensorType("i64", ()), index.hint)
        block = self.b.push(Block(args=(b_index, *lam, *mu)))
        prologue_at = len(block.eqns)
        position = self._position(b_index, start_of, stop_of, params["reversed"])
        prologue = block.eqns[prologue_at:]
        del block.eqns[prologue_at:]
        inner: dict[int, Any] = {}
        for k, r in enumerate(body.results[:n_carried]):
            if r.type.dtype in FLOATS:
                self.accumulate(inner, r, self.traced(lam[k]))
        for j, axis in enumerate(params["stacked"]):
            out = e.outputs[n_carried + j]
            if out.id in adj:
                row = ops.bind("index", adj[out.id], self.traced(position), axis=axis)
                self.accumulate(inner, body.results[n_carried + j], row)
        self.sweep(body.eqns, inner, active)
        new_lam = [self.em.var(inner[a.id]) if a.id in inner else self.traced(l).var for a, l in zip(carried, lam)]
        new_mu = [self.em.var(ops.add(self.traced(m), inner[v.id])) if v.id in inner else m for v, m in zip(outer, mu)]
        block.results = tuple(new_lam) + tuple(new_mu)
        self.b.pop()
        self._stack_needed(e, block, index, b_index, position, prologue)
        outs = control(self.b, "for", inits + bounds, [v.type for v in lam + mu],
                       {"start": start, "stop": stop, "reversed": not params["reversed"],
                        "n_carried": len(inits), "stacked": ()}, (block,), self.span)
        for k, init in enumerate(e.inputs[:n_carried]):
            if init.id in active and init.type.dtype in FLOATS:
                self.accumulate(adj, init, self.traced(outs[k]))
        for v, o in zip(outer, outs[n_carried:]):
            self.accumulate(adj, v, self.traced(o))

    def _position(self, index: Var, start: Var, stop: Var, reversed_: bool) -> Var:
        """Which row of the forward loop's stacks step `index` wrote (they are in the order the steps ran)."""
        if reversed_:
            last = self.b.emit("sub", [stop, self.em.var(np.asarray(1, dtype=np.int64))], {}, self.span)
            return self.b.emit("sub", [last, index], {}, self.span)
        return self.b.emit("sub", [index, start], {}, self.span)

    def _steps(self, e: Eqn) -> Any:
        """The trip count of a loop as a dim: stop - start, or a symbol the executor binds when the
        loop runs (bounds known only then)."""
        from ..runtime.types import dim_op
        start, stop = e.params["start"], e.params["stop"]
        if start is not None and stop is not None:
            return dim_op("-", stop, start)
        if e.params.get("steps") is None:
            e.params = {**e.params, "steps": self.b.dims.declare(f"steps#{next(_STEP_SYMBOLS)}")}
        return e.params["steps"]

    def _stack_needed(self, e: Eqn, backward: Block, index: Var, b_index: Var, position: Var,
                      prologue: list[Eqn]) -> None:
        """The forward body's values that the backward body reads become stacked outputs of the forward
        loop; the backward body reads row `position` of each (and its own step for the step index)."""
        body = e.regions[0]
        inside = {a.id for a in body.args[1:]} | {o.id for x in body.eqns for o in x.outputs}
        needed = [v for i, v in _region_free(backward).items() if i in inside]
        n = self._steps(e) if needed else 0
        rename: dict[int, Var] = {index.id: b_index}
        rows: list[Eqn] = []
        for v in needed:
            stacked = Var(TensorType(v.type.dtype, (n,) + tuple(v.type.shape)))
            body.results = body.results + (v,)
            e.outputs = e.outputs + (stacked,)
            e.params = {**e.params, "stacked": e.params["stacked"] + (0,)}
            self.b.push(Block())
            row = self.b.emit("index", [stacked, position], {"axis": 0}, self.span)
            rows.extend(self.b.pop().eqns)
            rename[v.id] = row
        _rename(backward, rename)
        backward.eqns[:0] = prologue + rows

    def export(self, e: Eqn, k: int, backward: Block) -> None:
        """Values of branch k that its adjoint reads become extra outputs of the forward `if` (zeros
        from the other branch), so the adjoint's branch reads them from outside, computed once."""
        r = e.regions[k]
        inside = {o.id for x in r.eqns for o in x.outputs} | {v.id for v in r.results}
        needed = [v for i, v in _region_free(backward).items() if i in inside]
        rename: dict[int, Var] = {}
        for v in needed:
            out = Var(v.type)
            rename[v.id] = out
            e.outputs = e.outputs + (out,)
            for j, region in enumerate(e.regions):
                if j == k:
                    region.results = region.results + (v,)
                    continue
                self.b.push(region)
                region.results = region.results + (self.zeros(v),)
                self.b.pop()
        _rename(backward, rename)


def _rename(block: Block, rename: dict[int, Var]) -> None:
    if not rename:
        return
    for e in block.eqns:
        e.inputs = tuple(rename.get(i.id, i) for i in e.inputs)
        for r in e.regions:
            _rename(r, rename)
    block.results = tuple(rename.get(v.id, v) for v in block.results)


def gradients(builder: Builder, f: Var, wrt: list[Var], span: Span | None, seed: Var | None = None) -> list[Var]:
    """The gradient of the scalar `f` (or the VJP with `seed`) with respect to each of `wrt`, as vars."""
    eqns = [e for block in builder.blocks for e in block.eqns]
    active = {v.id for v in wrt}
    _mark_active(eqns, active)
    sweep = ReverseSweep(builder, span)
    with builder.quiet():
        if seed is None:
            seed = sweep.em.var(np.ones((), dtype=NUMPY_DTYPE[f.type.dtype]))
            if f.type.shape:
                seed = builder.emit("broadcast_to", [seed], {"shape": tuple(f.type.shape)}, span)
        adj = sweep.sweep(eqns, {f.id: sweep.traced(seed)}, active) if f.id in active else {}
        out = []
        for v in wrt:
            g = sweep.em.var(adj[v.id]) if v.id in adj else sweep.zeros(v)
            if g.type.dtype != v.type.dtype:
                g = builder.cast(g, v.type.dtype, span)
            out.append(g)
    return out


def grad_of(builder: Builder, f: Var, wrt: list[Var], span: Span | None, seed: Var | None = None) -> list[Var]:
    """`gradients` with the user's mistakes reported at `span` (error vars returned then)."""
    reported = len(builder.reporter.diagnostics)
    try:
        return gradients(builder, f, wrt, span, seed)
    except NotDifferentiable as e:
        if not any(d.severity == "error" for d in builder.reporter.diagnostics[reported:]):
            notes = [(e.span, "the operation")] if e.span is not None and e.span != span else []
            builder.reporter.error(builder.user_span(span), str(e), *notes)
        return [Var(ERROR_TYPE) for _ in wrt]
