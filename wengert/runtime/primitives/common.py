"""Helpers shared by the shape rules."""
from __future__ import annotations

from ..types import Dim, DimConflict, DimEnv, Sym, TensorType
from . import ShapeError


class BroadcastConflict(ShapeError):
    """Broadcasting met a symbolic dim and a literal size (`batch` against 3) on one axis.

    Binding the symbol there would turn a modelling mistake (a target of the wrong rank, a
    forgotten Flatten) into a check that says "ok" and a feed that fails far from it, so it is
    an error; the builder words it with the operands' types."""

    def __init__(self, axis: int, sym: Sym, size: int):
        super().__init__(f"broadcasting pairs the symbolic dim `{sym}` with {size} (axis {axis})")
        self.axis, self.sym, self.size = axis, sym, size


def broadcast_shapes(env: DimEnv, *shapes: tuple[Dim, ...], what: str = "operands") -> tuple[Dim, ...]:
    """NumPy broadcasting over (possibly symbolic) dims; symbols are assumed not to be 1, and are
    never bound to a literal size by broadcasting (BroadcastConflict)."""
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
            if isinstance(result, Sym) and isinstance(d, int) or isinstance(d, Sym) and isinstance(result, int):
                sym, size = (result, d) if isinstance(result, Sym) else (d, result)
                raise BroadcastConflict(axis - rank, sym, size)
            try:
                result = env.unify(result, d)
            except DimConflict:
                shown = " and ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
                raise ShapeError(f"shapes {shown} cannot be broadcast together "
                                 f"(axis {axis - rank}: {result} vs {d})"
                                 + env.explain([s[axis] for s in padded])) from None
        out.append(result)
    return tuple(out)


def outer_broadcast(env: DimEnv, shapes: list[tuple[Dim, ...]], out: tuple[Dim, ...]) -> tuple[int, int] | None:
    """Two axes of a broadcast result (negative, from the right) that have the same symbolic size
    but come from different operands (`[batch, 1]` with `[batch]` gives `[batch, batch]`): almost
    always a target of the wrong rank. None when there are none."""
    rank = len(out)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    sources = [frozenset(k for k, s in enumerate(padded) if env.resolve(s[axis]) != 1) for axis in range(rank)]
    resolved = [env.resolve(d) for d in out]
    for i in range(rank):
        for j in range(i + 1, rank):
            if isinstance(resolved[i], Sym) and resolved[i] == resolved[j] and sources[i] and sources[j] \
                    and not sources[i] & sources[j]:
                return i - rank, j - rank
    return None


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
