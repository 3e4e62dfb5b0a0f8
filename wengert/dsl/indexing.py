"""Indexing and slicing: static slices, integer indices (static or run-time), gathers."""
from __future__ import annotations

from typing import Any

from ..runtime.ir import Var
from ..runtime.types import ERROR_TYPE, INTS, dim_op
from . import ast
from .values import describe, is_dim


def lower_index(lw, e: ast.Index, scope) -> Any:
    base = lw.expr(e.base, scope)
    if isinstance(base, list) and len(e.items) == 1 and not isinstance(e.items[0], ast.Slice):
        i = lw.expr(e.items[0], scope)  # indexing a static list, such as shape(x)[0]
        if isinstance(i, int) and -len(base) <= i < len(base):
            return base[i]
    v = lw.tensor(base, e.base.span)
    if v.type.is_error:
        return v
    shape = lw.dims.resolve_shape(v.type.shape)
    if len(e.items) > len(shape):
        lw.b.error(e.span, f"too many indices: {lw.fmt(v.type)} has rank {len(shape)} but {len(e.items)} "
                           "indices were given")
        return Var(ERROR_TYPE)
    starts, stops, steps = [], [], []
    drop: list[int] = []
    dynamic: list[tuple[int, Var, str]] = []  # (axis, index tensor, "index" | "gather")
    for axis, d in enumerate(shape):
        item = e.items[axis] if axis < len(e.items) else None
        start, stop, step = 0, d, 1
        if isinstance(item, ast.Slice):
            bounds = _slice_bounds(lw, item, d, scope)
            if bounds is None:
                return Var(ERROR_TYPE)
            start, stop, step = bounds
        elif item is not None:
            i = lw.expr(item, scope)
            if isinstance(i, int) and not isinstance(i, bool):
                if isinstance(d, int) and not -d <= i < d:
                    lw.b.error(item.span, f"index {i} is out of range for axis {axis} of size {d}")
                    return Var(ERROR_TYPE)
                start = i if i >= 0 else dim_op("+", d, i)
                stop = dim_op("+", start, 1)
                drop.append(axis)
            else:
                iv = lw.tensor(i, item.span)
                if iv.type.is_error:
                    return iv
                if iv.type.dtype not in INTS:
                    lw.b.error(item.span, f"an index must be an integer, got {lw.fmt(iv.type)}"
                               + (" (boolean masks are not supported; use where)" if iv.type.dtype == "bool" else ""))
                    return Var(ERROR_TYPE)
                dynamic.append((axis, iv, "index" if iv.type.rank == 0 else "gather"))
        starts.append(start)
        stops.append(stop)
        steps.append(step)
    if sum(1 for *_, k in dynamic if k == "gather") > 1:
        lw.b.error(e.span, "at most one axis may be indexed by an integer tensor")
        return Var(ERROR_TYPE)
    out = v
    if any(a != 0 or b is not d or s != 1 for a, b, s, d in zip(starts, stops, steps, shape)):
        out = lw.b.emit("slice", [out], {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)}, e.span)
    if drop:
        kept = tuple(dd for i, dd in enumerate(out.type.shape) if i not in drop)
        out = lw.b.emit("reshape", [out], {"shape": kept}, e.span)
    position = {axis: axis - sum(1 for x in drop if x < axis) for axis in range(len(shape))}
    for axis, iv, kind in sorted(dynamic, key=lambda t: -t[0]):
        out = lw.b.emit(kind, [out, iv], {"axis": position[axis]}, e.span)
    return out


def _slice_bounds(lw, item: ast.Slice, d, scope):
    vals = []
    for part in (item.start, item.stop, item.step):
        if part is None:
            vals.append(None)
            continue
        v = lw.expr(part, scope)
        if not is_dim(v):
            lw.b.error(part.span, f"slice bounds must be integers known when the program is checked, got {describe(v)}")
            return None
        vals.append(v)
    start, stop, step = vals
    step = 1 if step is None else step
    if not isinstance(step, int) or step == 0:
        lw.b.error(item.span, "a slice step must be a non-zero integer")
        return None
    if isinstance(d, int) and d < 0:
        lw.b.error(item.span, f"cannot slice an axis of negative size {d}")
        return None
    if isinstance(d, int) and all(isinstance(x, int) or x is None for x in (start, stop)):
        a, b, s = slice(start, stop, step).indices(d)
        if s < 0:
            lw.b.error(item.span, "negative slice steps are not supported")
            return None
        return a, max(a, b), s
    if step < 0:
        lw.b.error(item.span, "negative slice steps are not supported")
        return None

    def norm(x, default):
        if x is None:
            return default
        if isinstance(x, int) and x < 0:
            return dim_op("+", d, x)
        return x
    return norm(start, 0), norm(stop, d), step
