"""Control flow: `for` blocks with loop-carried names, `scan`, and lazy `if/then/else`."""
from __future__ import annotations

import copy
from typing import Any

import attrs

from ..runtime.ir import Block, Var
from ..runtime.types import ERROR_TYPE, INTS, TensorType, promote
from . import ast
from .builder import control
from .values import describe, is_dim


# ---------------------------------------------------------------- snapshots for re-lowering
def snapshot(lw) -> tuple:
    return (len(lw.reporter.diagnostics), dict(lw.params), copy.deepcopy([f.counters for f in lw.layer_frames]),
            dict(lw.updates), copy.deepcopy(lw.dims))


def restore(lw, snap: tuple) -> None:
    n, params, counters, updates, dims = snap
    del lw.reporter.diagnostics[n:]
    lw.params.clear()
    lw.params.update(params)
    for frame, c in zip(lw.layer_frames, counters):
        frame.counters = c
    lw.updates.clear()
    lw.updates.update(updates)
    lw.dims.parent, lw.dims.value, lw.dims.bound_at = dims.parent, dims.value, dims.bound_at


def join_types(lw, a: TensorType, b: TensorType) -> TensorType | None:
    """The type both a and b convert to (promotion and broadcasting), or None."""
    from ..runtime.primitives import ShapeError
    from ..runtime.primitives.common import broadcast_shapes
    if a.dtype == "bool" or b.dtype == "bool":
        if a.dtype != b.dtype:
            return None
        dtype, weak = "bool", False
    else:
        dtype, weak = promote(a, b)
    try:
        shape = broadcast_shapes(lw.dims, a.shape, b.shape)
    except ShapeError:
        return None
    return TensorType(dtype, shape, weak)


def conform(lw, v: Var, t: TensorType, span) -> Var:
    """Cast and broadcast v to type t."""
    v = lw.b.cast(v, t.dtype, span)
    if len(v.type.shape) != len(t.shape) or any(lw.dims.same(a, b) is not True for a, b in zip(v.type.shape, t.shape)):
        v = lw.b.emit("broadcast_to", [v], {"shape": t.shape}, span)
    return v


def same_type(lw, a: TensorType, b: TensorType) -> bool:
    return a.dtype == b.dtype and a.rank == b.rank and all(lw.dims.same(x, y) for x, y in zip(a.shape, b.shape))


# ---------------------------------------------------------------- for
def _assigned(stmts, out: list[str]) -> list[str]:
    for s in stmts:
        if isinstance(s, ast.Assign) and s.name not in out:
            out.append(s.name)
        elif isinstance(s, ast.For):
            _assigned(s.body.stmts, out)
    return out


def _lookup_in_function(scope, name: str):
    """Like scope.lookup, but names from outside the enclosing fn/layer are not carried by its loops."""
    s = scope
    while s is not None:
        if name in s.names:
            return s.names[name]
        if s.kind in ("fn", "layer"):
            return None
        s = s.parent
    return None


def _bound(lw, v: Any, span) -> tuple[Any, Var | None]:
    """A loop bound: a static dim, or an integer scalar tensor known at run time."""
    if is_dim(v):
        if isinstance(v, int) and not -2 ** 63 <= v < 2 ** 63:
            shown = str(v) if v.bit_length() < 100 else f"a number of about {int(v.bit_length() * 0.30103)} digits"
            lw.b.error(span, f"a loop bound must fit in an i64, got {shown}")
            return None, Var(ERROR_TYPE)
        return v, None
    if isinstance(v, Var):
        if v.type.is_error:
            return None, v
        if v.type.dtype in INTS and v.type.rank == 0:
            return None, v
        lw.b.error(span, f"a loop bound must be an integer scalar, got {lw.fmt(v.type)}")
        return None, Var(ERROR_TYPE)
    lw.b.error(span, f"a loop bound must be an integer, got {describe(v)}")
    return None, Var(ERROR_TYPE)


def lower_for(lw, s: ast.For, scope) -> None:
    from .lower import Binding, Scope
    it, rev = s.iter, False
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "reversed" and len(it.args) == 1:
        it, rev = it.args[0], True
    if not isinstance(it, ast.Range):
        lw.b.error(it.span, "`for` iterates over a range `a..b` or `reversed(a..b)`")
        return
    start, start_var = _bound(lw, lw.expr(it.start, scope), it.start.span)
    stop, stop_var = _bound(lw, lw.expr(it.stop, scope), it.stop.span)
    if any(v is not None and v.type.is_error for v in (start_var, stop_var)):
        return
    names = []
    for n in _assigned(s.body.stmts, []):
        if n == s.var:
            lw.b.error(s.span, f"the loop variable `{n}` cannot be assigned in the loop")
            return
        b = _lookup_in_function(scope, n)
        if b is None:
            continue
        if b.kind in ("input", "param", "state", "arg"):
            lw.b.error(s.span, f"cannot assign to {b.kind if b.kind != 'arg' else 'argument'} `{n}` inside a loop")
            return
        names.append(n)
    inits = [lw.tensor(scope.lookup(n).value, s.span) for n in names]
    if any(v.type.is_error for v in inits):
        return
    types = [v.type for v in inits]
    for attempt in range(4):
        snap = snapshot(lw)
        index = Var(TensorType("i64", ()), s.var)
        args = [Var(t, n) for t, n in zip(types, names)]
        block = lw.b.push(Block(args=(index, *args)))
        inner = Scope(scope, kind="loop")
        inner.carried, inner.assigned = set(names), set()
        inner.names[s.var] = Binding(index, s.span, "loop")
        for n, a in zip(names, args):
            inner.names[n] = Binding(a, s.span, "loop")
        for stmt in s.body.stmts:
            lw.stmt(stmt, inner)
        results = [lw.tensor(inner.names[n].value, s.span) for n in names]
        lw.b.pop()
        if any(r.type.is_error for r in results):
            return
        widened = [join_types(lw, t, r.type) for t, r in zip(types, results)]
        bad = [(n, t, r) for n, t, r, w in zip(names, types, results, widened) if w is None]
        if bad:
            n, t, r = bad[0]
            lw.b.error(s.span, f"loop-carried `{n}` changes type from {lw.fmt(t)} to {lw.fmt(r.type)} in the loop body")
            return
        if all(same_type(lw, w, t) for w, t in zip(widened, types)) or attempt == 3:
            break
        restore(lw, snap)
        types = [attrs.evolve(w, weak=w.weak and t.weak) for w, t in zip(widened, types)]
    lw.b.push(block)
    block.results = tuple(conform(lw, r, t, s.span) for r, t in zip(results, types))
    lw.b.pop()
    inits = [conform(lw, v, t, s.span) for v, t in zip(inits, types)]
    operands = inits + [v for v in (start_var, stop_var) if v is not None]
    outs = control(lw.b, "for", operands, types, {"start": start, "stop": stop, "reversed": rev,
                                                  "n_carried": len(names), "stacked": ()}, (block,), s.span)
    for n, out in zip(names, outs):
        out.hint = n
        _rebind(lw, scope, n, out)


def _rebind(lw, scope, name: str, value: Var) -> None:
    s = scope
    while s is not None and name not in s.names:
        s = s.parent
    if s is None:
        return
    s.names[name].value = value
    if s.parent is None and name in lw.values:
        lw.values[name] = value


# ---------------------------------------------------------------- scan
def lower_scan(lw, fname: str, init: Any, xs: Any, axis: Any, span, args: Any = None) -> Var:
    """scan(f, init, xs, axis, args): f(carry, x_t, ..., *args) per step; the stacked carries.

    xs may be a list of tensors (several sequences of the same length, e.g. [xs, mask]):
    each step passes one slice of each as a separate argument. args are extra
    non-sequence arguments (Theano's non_sequences), passed unchanged to every step.
    """
    from .calls import call_named
    many = isinstance(xs, list) and bool(xs) and all(isinstance(x, Var) for x in xs)
    seqs = [lw.tensor(x, span) for x in xs] if many else [lw.tensor(xs, span)]
    carry0 = lw.tensor(init, span)
    extra = [] if args is None else (args if isinstance(args, list) else [args])
    if any(s.type.is_error for s in seqs) or carry0.type.is_error:
        return Var(ERROR_TYPE)
    seq = seqs[0]
    if not isinstance(axis, int) or not all(-s.type.rank <= axis < s.type.rank for s in seqs):
        bad = next((s for s in seqs if not isinstance(axis, int) or not -s.type.rank <= axis < s.type.rank), seq)
        lw.b.error(span, f"scan: axis {axis!r} is out of range for {lw.fmt(bad.type)}")
        return Var(ERROR_TYPE)
    axes = [axis % s.type.rank for s in seqs]
    axis %= seq.type.rank
    n = lw.dims.resolve(seq.type.shape[axis])
    for s, a in zip(seqs[1:], axes[1:]):
        if lw.dims.same(n, s.type.shape[a]) is False:
            lw.b.error(span, f"scan: the sequences have different lengths along axis {axis}: "
                             f"{lw.fmt(seq.type)} and {lw.fmt(s.type)}")
            return Var(ERROR_TYPE)
    t = carry0.type
    for attempt in range(4):
        snap = snapshot(lw)
        index = Var(TensorType("i64", ()), "t")
        carry = Var(t, "carry")
        block = lw.b.push(Block(args=(index, carry)))
        steps = [(lw.b.emit("index", [s, index], {"axis": a}, span), span) for s, a in zip(seqs, axes)]
        new = lw.tensor(call_named(lw, fname, [(carry, span), *steps, *((v, span) for v in extra)], [], span,
                                   None, _module_scope(lw)), span)
        lw.b.pop()
        if new.type.is_error:
            return new
        w = join_types(lw, t, new.type)
        if w is None:
            lw.b.error(span, f"scan: `{fname}` changes the carry from {lw.fmt(t)} to {lw.fmt(new.type)}")
            return Var(ERROR_TYPE)
        if same_type(lw, w, t) or attempt == 3:
            break
        restore(lw, snap)
        t = w
    lw.b.push(block)
    result = conform(lw, new, t, span)
    block.results = (result, result)
    lw.b.pop()
    stacked_shape = t.shape[:axis] + (n,) + t.shape[axis:] if axis <= t.rank else t.shape + (n,)
    outs = control(lw.b, "for", [conform(lw, carry0, t, span)], [t, TensorType(t.dtype, stacked_shape)],
                   {"start": 0, "stop": n, "reversed": False, "n_carried": 1, "stacked": (min(axis, t.rank),)},
                   (block,), span)
    return outs[1]


def _module_scope(lw):
    return lw.scope


# ---------------------------------------------------------------- if
def lower_if(lw, e: ast.IfElse, scope) -> Any:
    from .lower import Scope
    cond = lw.expr(e.cond, scope)
    if isinstance(cond, bool):  # decided while checking: only that branch exists
        return lw.expr(e.then if cond else e.orelse, scope)
    c = lw.tensor(cond, e.cond.span)
    if c.type.is_error:
        return c
    if c.type.dtype != "bool" or any(lw.dims.resolve(d) != 1 for d in c.type.shape):
        lw.b.error(e.cond.span, f"the condition of `if` must be a bool scalar, got {lw.fmt(c.type)} "
                                "(use where(c, a, b) for an elementwise choice)")
        return Var(ERROR_TYPE)
    if c.type.rank:
        c = lw.b.emit("reshape", [c], {"shape": ()}, e.cond.span)
    branches = []
    for body in (e.then, e.orelse):
        block = lw.b.push(Block())
        branches.append((block, lw.tensor(lw.expr(body, Scope(scope, kind="branch")), body.span)))
        lw.b.pop()
    (tb, tv), (eb, ev) = branches
    if tv.type.is_error or ev.type.is_error:
        return Var(ERROR_TYPE)
    t = join_types(lw, tv.type, ev.type)
    if t is None:
        lw.b.error(e.span, f"the branches of `if` have different types: {lw.fmt(tv.type)} and {lw.fmt(ev.type)}")
        return Var(ERROR_TYPE)
    for block, v, body in ((tb, tv, e.then), (eb, ev, e.orelse)):
        lw.b.push(block)
        block.results = (conform(lw, v, t, body.span),)
        lw.b.pop()
    return control(lw.b, "if", [c], [t], {}, (tb, eb), e.span)[0]

