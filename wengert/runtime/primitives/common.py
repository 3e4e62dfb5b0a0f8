"""Helpers shared by the shape rules."""
from __future__ import annotations

from ..types import Dim, DimConflict, DimEnv, TensorType
from . import ShapeError


def broadcast_shapes(env: DimEnv, *shapes: tuple[Dim, ...], what: str = "operands") -> tuple[Dim, ...]:
    """NumPy broadcasting over (possibly symbolic) dims; symbols are assumed not to be 1."""
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(rank):
        dims = [env.resolve(s[axis]) for s in padded]
        result: Dim = 1
        for d in dims:
            if d == 1:
                continue
            if result == 1:
                result = d
                continue
            try:
                result = env.unify(result, d)
            except DimConflict:
                shown = " and ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
                raise ShapeError(f"shapes {shown} cannot be broadcast together "
                                 f"(axis {axis - rank}: {result} vs {d})"
                                 + env.explain([s[axis] for s in padded])) from None
        out.append(result)
    return tuple(out)


def _fmt_shape(env: DimEnv, shape) -> str:
    return "[" + ", ".join(str(env.resolve(d)) for d in shape) + "]"


def fmt(env: DimEnv, t: TensorType) -> str:
    return f"{t.dtype}{_fmt_shape(env, t.shape)}"


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else 0


def unify_dim(env: DimEnv, a: Dim, b: Dim, message: str) -> Dim:
    try:
        return env.unify(a, b)
    except DimConflict:
        raise ShapeError(message + env.explain([a, b])) from None
