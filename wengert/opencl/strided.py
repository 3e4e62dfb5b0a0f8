"""Generated kernels over strided views: elementwise maps with broadcasting (reductions: reduce.py).

A `View` is a buffer seen through an element offset and per-axis element strides, so
broadcasting (stride 0), transposes (permuted strides), slices (offset + scaled strides) and
writes into a region of a bigger array (unslice, pad, concat) are all one kernel family: a
map from input views to an output view over an iteration shape. Adjacent axes that are
contiguous in every operand are merged first, so a same-shape elementwise op is a flat loop.
Scalar operands (0-d host values) are passed as kernel arguments, never uploaded.

Sources are generated from the C expression of the op, the operand dtypes and the rank (1, 4
or more after merging; shapes, strides and offsets are kernel arguments), and compiled once through `programs.build` (cached in process and on disk by pyopencl).
"""
from __future__ import annotations

from typing import Any, Sequence

import attrs
import numpy as np

from . import programs


@attrs.frozen
class View:
    array: Any  # DeviceArray (its buffer)
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def view(a) -> View:
    return View(a, 0, a.shape, contiguous_strides(a.shape))


def broadcast(v: View, shape: tuple[int, ...]) -> View:
    """v seen with NumPy broadcasting against `shape` (stride 0 on new and size-1 axes)."""
    pad = len(shape) - len(v.shape)
    vs = (1,) * pad + v.shape
    st = (0,) * pad + v.strides
    return View(v.array, v.offset, tuple(shape), tuple(0 if d == 1 and n != 1 else s for d, n, s in zip(vs, shape, st)))


def permute(v: View, perm: Sequence[int]) -> View:
    return View(v.array, v.offset, tuple(v.shape[p] for p in perm), tuple(v.strides[p] for p in perm))


def sliced(v: View, starts, stops, steps) -> View:
    """NumPy basic slicing with normalized (start, stop, step) per axis."""
    offset, shape, strides = v.offset, [], []
    for (a, b, s), d, st in zip(zip(starts, stops, steps), v.shape, v.strides):
        a, b, s = slice(a, b, s).indices(d)
        n = len(range(a, b, s))
        offset += a * st if n else 0
        shape.append(n)
        strides.append(st * s)
    return View(v.array, offset, tuple(shape), tuple(strides))


def _merge(shape: tuple[int, ...], stride_sets: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Drop size-1 axes and merge adjacent axes that are contiguous in every operand."""
    keep = [i for i, d in enumerate(shape) if d != 1]
    shape = tuple(shape[i] for i in keep)
    sets = [tuple(s[i] for i in keep) for s in stride_sets]
    i = len(shape) - 1
    shape_l, sets_l = list(shape), [list(s) for s in sets]
    while i > 0:
        if all(s[i - 1] == s[i] * shape_l[i] for s in sets_l):
            shape_l[i - 1] *= shape_l[i]
            del shape_l[i]
            for s in sets_l:
                s[i - 1] = s[i]
                del s[i]
        i -= 1
    return tuple(shape_l), [tuple(s) for s in sets_l]


def _scalar_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.uint8) if dtype == np.bool_ else np.dtype(dtype)


_LONG = np.dtype(np.int64)


def _map_source(expr: str, out_dtype, kinds: tuple[tuple[np.dtype, bool], ...], nd: int, prelude: str) -> str:
    ot = programs.c_type(out_dtype)
    params = ["long n"] + [f"long d{k}" for k in range(nd)]
    params += [f"__global {ot}* out", "long oo"] + [f"long os{k}" for k in range(nd)]
    loads, index = [], ["long r = gid;", "long io = oo;"]
    for j, (dt, scalar) in enumerate(kinds):
        t = programs.c_type(dt)
        if scalar:
            params.append(f"{t} a{j}")
        else:
            params += [f"__global const {t}* p{j}", f"long o{j}"] + [f"long s{j}_{k}" for k in range(nd)]
            index.append(f"long i{j} = o{j};")
            loads.append(f"{t} a{j} = p{j}[i{j}];")
    for k in reversed(range(nd)):
        index.append(f"{{ long c = r % d{k}; r /= d{k}; io += c * os{k};"
                     + "".join(f" i{j} += c * s{j}_{k};" for j, (_, sc) in enumerate(kinds) if not sc) + " }")
    body = "\n    ".join(index + loads)
    return (f"{prelude}\n__kernel void map({', '.join(params)}) {{\n    long gid = get_global_id(0);\n"
            f"    if (gid >= n) return;\n    {body}\n    out[io] = ({ot})({expr});\n}}\n")


def _options(dtypes) -> tuple[str, ...]:
    return ("-DENABLE_FP64=1",) if any(np.dtype(d) == np.float64 for d in dtypes) else ()


_MAPS: dict[tuple, Any] = {}


def run_map(backend, expr: str, out: View, operands: Sequence[View | np.ndarray], prelude: str = "") -> None:
    """out[idx] = expr(a0[idx], a1[idx], ...) for every idx of out.shape (operands already broadcast)."""
    shape = out.shape
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return
    views = [op for op in operands if isinstance(op, View)]
    merged, sets = _merge(shape, [out.strides] + [v.strides for v in views])
    # Ranks 0..1 and 2..4 share one source each (leading axes of size 1): fewer distinct kernels
    # to compile (on PoCL a compile costs far more than a few extra index operations per item).
    pad = 4 - len(merged) if 1 < len(merged) < 4 else 1 - len(merged) if not merged else 0
    merged, sets = (1,) * pad + merged, [(0,) * pad + st for st in sets]
    nd = len(merged)
    kinds = tuple((op.dtype, not isinstance(op, View)) for op in operands)
    key = (backend.context.int_ptr, expr, out.dtype, kinds, nd, prelude)
    knl = _MAPS.get(key)
    if knl is None:  # generated and built once per (expression, dtypes, rank)
        src = _map_source(expr, out.dtype, kinds, nd, prelude)
        knl = _MAPS[key] = programs.kernel(backend.context, src, "map", _options([out.dtype] + [k[0] for k in kinds]))
    args: list[Any] = [np.int64(n)] + [np.int64(d) for d in merged]
    args += [out.array.buffer, np.int64(out.offset)] + [np.int64(s) for s in sets[0]]
    it = iter(sets[1:])
    for op in operands:
        if isinstance(op, View):
            args += [op.array.buffer, np.int64(op.offset)] + [np.int64(s) for s in next(it)]
        else:
            args.append(np.asarray(op).astype(_scalar_dtype(op.dtype))[()])
    backend.launch(knl, n, args)
