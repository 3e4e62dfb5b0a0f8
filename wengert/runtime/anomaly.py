"""Anomaly detection: the first NaN or Inf of an evaluation or of a reverse pass, reported
as a diagnostic at the `.dl` line that produced it (`--detect-anomaly`, `prog.detect_anomaly`).

The executor calls `check` on every value it produces (and on every input, param and state
it reads) and the reverse pass on every adjoint it accumulates, only when detection is on;
off, the cost is one boolean test per equation. The messages say which pass, which op,
how many NaN/Inf of how many values, and each operand's type and value range, e.g.

    t.dl:3:5: error: NaN in the forward pass: `log` produced 3 NaN (of 8 values); operand v0 (`x`): f64[8] in [-2, 5]
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError
from .ops import Dual, primal
from .types import DTYPE_OF_NUMPY


@attrs.frozen
class Count:
    """The non-finite values of one array: how many NaN, how many +-Inf, of how many."""

    nan: int
    inf: int
    size: int
    part: str = "value"  # "value", or "tangent" for a forward-mode derivative carried by a Dual

    @property
    def kind(self) -> str:
        return "NaN" if self.nan else "Inf"

    def __str__(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.nan, "NaN"), (self.inf, "Inf")) if n]
        return f"{' and '.join(parts)} (of {self.size} value{'s' if self.size != 1 else ''})"


def _count_array(a: Any, part: str) -> Count | None:
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        return None
    finite = np.isfinite(a)
    if finite.all():
        return None
    nan = int(np.count_nonzero(np.isnan(a)))
    return Count(nan, int(a.size - np.count_nonzero(finite)) - nan, int(a.size), part)


def nonfinite(value: Any) -> Count | None:
    """None when every value is finite; else the counts, of the primal first, then (for a dual
    number) of its tangents."""
    if isinstance(value, Dual):
        found = _count_array(value.primal, "value")
        if found is None and value.tangent is not None:
            found = _count_array(value.tangent, "tangent")
        return found
    return _count_array(value, "value")


def _num(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def describe(value: Any) -> str:
    """`f64[8] in [-2, 5]`, with the NaN/Inf counted when there are any: an operand at a glance."""
    if value is None:
        return "(released)"
    a = np.asarray(primal(value))
    dtype = DTYPE_OF_NUMPY.get(a.dtype) or str(a.dtype)
    head = f"{dtype}[{','.join(map(str, a.shape))}]"
    if a.size == 0 or a.dtype.kind not in "biufc" or a.dtype.kind == "b":
        return head
    if a.dtype.kind == "c":
        a = np.abs(a)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a.ravel()
    bad = nonfinite(a)
    if finite.size == 0:
        return f"{head} with no finite value: {bad}"
    lo, hi = finite.min().item(), finite.max().item()
    text = f"{head} = {_num(lo)}" if a.size == 1 else f"{head} in [{_num(lo)}, {_num(hi)}]"
    return text + (f" with {bad}" if bad else "")


class AnomalyError(DiagnosticError):
    """The first NaN or Inf found by anomaly detection, as a diagnostic at its source span.

    `direction` is "forward" or "backward" (or "input", "param", "state" for a fed or stored
    value that already held it, "optimizer" for a step that made a param non-finite),
    `op` the primitive (or the root's name), `count` the NaN/Inf counts, `entry` the trace
    entry's index when there is a trace."""

    def __init__(self, span: Any, message: str, direction: str, op: str, count: Count, entry: int | None = None,
                 file: str | None = None, notes: Iterable[tuple[Any, str]] = ()):
        self.direction = direction
        self.op = op
        self.count = count
        self.entry = entry
        super().__init__([Diagnostic(span, message, file=file, notes=tuple(notes))])

    @property
    def diagnostic(self) -> Diagnostic:
        return self.diagnostics[0]

    def with_note(self, message: str, span: Any = None, file: str | None = None) -> AnomalyError:
        """The same error with one more note (such as where in training it happened)."""
        d = self.diagnostic
        return AnomalyError(d.span, d.message, self.direction, self.op, self.count, self.entry,
                            file=d.file or file, notes=d.notes + ((span, message),))


def _where(count: Count) -> str:
    return "" if count.part == "value" else " in its tangent (the forward-mode derivative)"


def forward_error(span: Any, op: str, value: Any, count: Count, operands: list[tuple[str, Any]],
                  entry: int | None = None, file: str | None = None) -> AnomalyError:
    """`op` at `span` produced a non-finite value; operands are (label, value) pairs."""
    message = f"{count.kind} in the forward pass: `{op}` produced {count}{_where(count)}"
    if operands:
        message += "; " + "; ".join(f"operand {label}: {describe(v)}" for label, v in operands)
    return AnomalyError(span, message, "forward", op, count, entry, file=file)


def root_error(span: Any, kind: str, name: str, value: Any, count: Count, entry: int | None = None,
               file: str | None = None) -> AnomalyError:
    """An input, param or state that holds NaN or Inf before anything is computed from it."""
    held = describe(value) if count.part == "value" else f"{describe(value)}, its tangent holds {count}"
    message = f"{count.kind} in {kind} `{name}`: {held}"
    return AnomalyError(span, message, kind, name, count, entry, file=file)


def backward_error(span: Any, op: str, target: str, adjoint: Any, count: Count, incoming: Any,
                   operands: list[tuple[str, Any]], entry: int | None = None,
                   file: str | None = None) -> AnomalyError:
    """The derivative rule of `op` gave operand `target` a non-finite adjoint."""
    message = (f"{count.kind} in the backward pass: the derivative of `{op}` gave {target} an adjoint with "
               f"{count}{_where(count)}; incoming adjoint: {describe(incoming)}")
    if operands:
        message += "; " + "; ".join(f"operand {label}: {describe(v)}" for label, v in operands)
    return AnomalyError(span, message, "backward", op, count, entry, file=file)


def optimizer_error(span: Any, optimizer: str, name: str, value: Any, grad: Any, lr: float, count: Count,
                    file: str | None = None) -> AnomalyError:
    """An optimizer step left param `name` with NaN or Inf (its gradient was finite: the
    reverse pass checks that), typically a learning rate too large for the loss."""
    message = (f"{count.kind} in the optimizer step: `{optimizer}` (lr {lr:.6g}) left param `{name}` "
               f"{describe(value)}; its gradient: {describe(grad)}")
    return AnomalyError(span, message, "optimizer", optimizer, count, file=file)
