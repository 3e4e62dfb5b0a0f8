"""Reverse mode over a recorded Wengert list (adjoints, walking it backwards)."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import anomaly, ops, primitives
from .trace import Trace


def release_unneeded(trace: Trace, output: int) -> None:
    """Drop the values no derivative rule will read: inactive entries that are not operands
    of an active entry (and not the output), so the reverse pass holds only what it needs."""
    needed = {output}
    for e in trace.entries:
        if e.active:
            needed.add(e.index)
            needed.update(e.operands)
    for e in trace.entries:
        if e.index not in needed:
            e.value = None


def backward(trace: Trace, output: int, cotangent: Any = None, detect_anomaly: bool = False,
             path: str | None = None) -> None:
    """Fill `entry.adjoint` for every active entry that the output depends on.

    Each primitive's VJP rule maps the output's adjoint to its operands' adjoints; rules
    go through ops.bind, so if the trace holds dual numbers (forward mode on top), the
    adjoints carry tangents too: forward-over-reverse. With `detect_anomaly`, the first rule
    (in backward order) that gives an operand a NaN/Inf adjoint raises `AnomalyError` at its
    entry's span (`path` names the file for entries without one).
    """
    with np.errstate(all="ignore"):
        _backward(trace, output, cotangent, detect_anomaly, path)


def _label(e) -> str:
    return f"v{e.index} (`{e.name}`)" if e.name else f"v{e.index}"


def _check_adjoint(trace: Trace, e, target, g: Any, path: str | None) -> None:
    count = anomaly.nonfinite(target.adjoint)
    if count is not None:
        operands = [(_label(trace.entries[i]), trace.entries[i].value) for i in e.operands if i >= 0]
        raise anomaly.backward_error(e.span, e.op, _label(target), target.adjoint, count, g, operands, e.index,
                                     file=path)


def _backward(trace: Trace, output: int, cotangent: Any, detect_anomaly: bool = False,
              path: str | None = None) -> None:
    entries = trace.entries
    out = entries[output]
    seed = np.ones_like(ops.primal(out.value)) if cotangent is None else cotangent
    out.adjoint = seed
    for e in reversed(entries[: output + 1]):
        g = e.adjoint
        if g is None or not e.active or not e.operands:
            continue
        rule = primitives.REGISTRY[e.op].vjp
        if rule is None:
            raise NotImplementedError(f"reverse mode is not defined for `{e.op}`")
        operands = [entries[i].value for i in e.operands]
        cts = rule(g, e.value, *operands, **e.params)
        for i, ct in zip(e.operands, cts):
            if ct is None or i < 0:
                continue
            target = entries[i]
            if not target.active:
                continue
            target.adjoint = ct if target.adjoint is None else ops.add(target.adjoint, ct)
            if detect_anomaly:
                _check_adjoint(trace, e, target, g, path)
