"""Emitting IR equations with shape/dtype inference and user-facing errors.

The Builder is the one place where an equation is created: it runs the primitive's
shape rule, reports a rejected operand at the user's source span, and hands back a
poisoned var (type ERROR) so that one mistake is reported once, not cascaded.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError, Reporter, Span
from ..runtime import primitives
from ..runtime.ir import Block, CallFrame, Eqn, Var
from ..runtime.primitives.common import BroadcastConflict, fmt, outer_broadcast
from ..runtime.types import ERROR_TYPE, FLOATS, ITEMSIZE, NUMPY_DTYPE, DimEnv, TensorType, promote
from . import limits
from .values import DType, is_dim

STDLIB_PREFIX = "<stdlib>/"


class Builder:
    def __init__(self, reporter: Reporter, dims: DimEnv):
        self.reporter = reporter
        self.dims = dims
        self.blocks: list[Block] = [Block()]
        self.call_sites: list[tuple[str, Span]] = []  # (function name, call span) being inlined
        self.layers: list[CallFrame] = []  # recorded on each Eqn as `layer` (pictures group by it)
        self._fn_calls = 0
        self.input_names: dict[int, str] = {}  # Var.id -> name, for hints that name an `input` line
        self._quiet = 0  # > 0 while emitting equations the user did not write (a `grad`): no warnings
        self.memory_limit = limits.physical_memory()  # the Lowerer's (a test may lower it)
        self.equations = 0  # made so far, and the calls inlined per fn: a budget against exponential inlining
        self.calls: dict[str, int] = {}

    def enter_call(self, callee: str, kind: str, instance: str, definition: Span | None, site: Span | None) -> bool:
        """Push a CallFrame for a layer call, or for a standard-library fn called from user code
        (the rest of the standard library is inlined into that frame); True when one was pushed."""
        if kind != "layer":
            if definition is None or site is None or not definition.source.path.startswith(STDLIB_PREFIX) \
                    or site.source.path.startswith(STDLIB_PREFIX):
                return False
            self._fn_calls += 1
            instance = f"{callee}#{self._fn_calls}"
        self.layers.append(CallFrame(instance, callee, kind))
        return True

    def count_call(self, callee: str, span: Span | None) -> None:
        """Count one inlined call; past the budget (limits.py) checking stops with a diagnostic that names the
        fn copied most (a fn calling another twice per level doubles the copies at each level)."""
        self.calls[callee] = self.calls.get(callee, 0) + 1
        total = sum(self.calls.values()) if self.equations <= limits.MAX_EQUATIONS else limits.MAX_CALLS + 1
        if total > limits.MAX_CALLS:
            most = max(self.calls, key=self.calls.__getitem__)
            raise DiagnosticError([Diagnostic(self.user_span(span), (
                f"this program inlines more than {self.calls[most]:,} copies of `{most}` (fns and layers are "
                f"copied at each call; checking stops at {limits.MAX_CALLS:,} calls or {limits.MAX_EQUATIONS:,} "
                "equations): call it fewer times, or step it with `for` or `scan`"))])

    # ---- where errors go ----
    def user_span(self, span: Span | None) -> Span | None:
        """The span to show a user: inside the standard library, the user's call site."""
        if span is None or not span.source.path.startswith(STDLIB_PREFIX):
            return span
        for _, site in reversed(self.call_sites):
            if not site.source.path.startswith(STDLIB_PREFIX):
                return site
        return span

    def error(self, span: Span | None, message: str) -> None:
        shown = self.user_span(span)
        if shown is not span and self.call_sites:
            inner = next((n for n, s in reversed(self.call_sites) if not s.source.path.startswith(STDLIB_PREFIX)), None)
            message = f"in `{inner}`: {message}" if inner else message
        notes = []
        if shown is span:
            for name, site in reversed(self.call_sites):
                if site.source.path.startswith(STDLIB_PREFIX):
                    continue
                notes.append((site, f"in this call of `{name}`"))
                break
        self.reporter.error(shown, message, *notes)

    # ---- blocks ----
    @property
    def block(self) -> Block:
        return self.blocks[-1]

    def push(self, block: Block) -> Block:
        self.blocks.append(block)
        return block

    def pop(self) -> Block:
        return self.blocks.pop()

    # ---- equations ----
    def emit(self, prim: str, inputs: list[Var], params: dict[str, Any] | None = None, span: Span | None = None,
             hint: str = "") -> Var:
        params = params or {}
        if any(v.type.is_error for v in inputs):
            return Var(ERROR_TYPE)
        primitive = primitives.get(prim)
        self.dims.current_span = span
        try:
            out = primitive.shape_rule(self.dims, *(v.type for v in inputs), **params)
        except BroadcastConflict as e:
            self.error(span, self._broadcast_message(inputs, e))
            return Var(ERROR_TYPE)
        except primitives.ShapeError as e:
            self.error(span, str(e))
            return Var(ERROR_TYPE)
        if primitive.broadcasts and not self._quiet:
            self._check_outer(inputs, out, span)
        problem = limits.too_large(tuple(self.dims.resolve_shape(out.shape)), ITEMSIZE.get(out.dtype, 8),
                                   self.memory_limit) if not out.is_error else None
        if problem is not None:
            self.error(span, f"this value ({out.dtype}[{', '.join(map(str, self.dims.resolve_shape(out.shape)))}]) "
                             f"{problem}")
            return Var(ERROR_TYPE)
        var = Var(out, hint)
        self.equations += 1
        self.block.eqns.append(Eqn(prim, tuple(inputs), (var,), params, self.user_span(span), layer=tuple(self.layers)))
        return var

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """No warnings for the equations emitted inside (derivatives, not the user's expressions)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    # ---- broadcasting mistakes ----
    def _broadcast_message(self, inputs: list[Var], e: BroadcastConflict) -> str:
        """`batch` against 3: both operands' types, the axis, and how to line the axes up."""
        shown = " and ".join(fmt(self.dims, v.type) for v in inputs)
        message = (f"cannot broadcast {shown}: axis {e.axis} pairs the symbolic dim `{e.sym}` with {e.size}, "
                   f"and broadcasting never binds a symbolic dim to a size")
        holder = next((v for v in inputs if len(v.type.shape) >= -e.axis
                       and self.dims.resolve(v.type.shape[e.axis]) == e.sym), None)
        wider = max(inputs, key=lambda v: v.type.rank)
        if holder is not None and holder.type.rank < wider.type.rank and all(
                self.dims.same(a, b) is not False for a, b in zip(holder.type.shape, wider.type.shape)):
            # y: f32[batch] against p: f32[batch, 3]: the leading axes agree, a trailing one is missing
            wanted = f"{holder.type.dtype}[{', '.join(str(self.dims.resolve(d)) for d in wider.type.shape)}]"
            name = self.input_names.get(holder.id)
            if name is not None:
                return message + f"; did you mean `input {name}: {wanted}`?"
            return message + (f"; hint: the {fmt(self.dims, holder.type)} operand lacks trailing axes: "
                              f"reshape it to {wanted} or expand_dims it")
        if wider.type.rank > 2:
            return message + (f"; hint: line the axes up with reshape or squeeze (a layer applied to the "
                              f"{fmt(self.dims, wider.type)} feature map may need Flatten first)")
        return message + "; hint: line the axes up with reshape, squeeze or expand_dims"

    def _check_outer(self, inputs: list[Var], out: TensorType, span: Span | None) -> None:
        axes = outer_broadcast(self.dims, [v.type.shape for v in inputs], out.shape)
        if axes is None:
            return
        shown = " and ".join(fmt(self.dims, v.type) for v in inputs)
        sym = self.dims.resolve(out.shape[axes[0]])
        self.reporter.warning(self.user_span(span), "outer-broadcast",
                              f"broadcasting {shown} gives {fmt(self.dims, out)}: axes {axes[0]} and {axes[1]} both "
                              f"have size `{sym}` from different operands (an outer product; a prediction "
                              f"[{sym}, 1] against labels [{sym}]?); reshape or squeeze one operand to line "
                              f"them up")

    def const(self, value: Any, span: Span | None, dtype: str | None = None, weak: bool | None = None) -> Var:
        """A constant from a static: numbers are weakly typed, arrays keep their dtype."""
        try:
            arr = np.asarray(value)
        except OverflowError:
            self.error(span, "number too large for a tensor")
            return Var(ERROR_TYPE)
        if dtype is None:
            if arr.dtype == np.bool_:
                dtype = "bool"
            elif arr.dtype.kind in "iu":
                dtype = "i64"
            elif arr.dtype.kind == "f":
                dtype = "f64"
            else:
                self.error(span, f"cannot make a tensor from {value!r}")
                return Var(ERROR_TYPE)
            weak = dtype != "bool" if weak is None else weak
        return self.emit("const", [], {"value": arr.astype(NUMPY_DTYPE[dtype]), "weak": bool(weak)}, span)

    def cast(self, v: Var, dtype: str, span: Span | None) -> Var:
        if v.type.dtype == dtype or v.type.is_error:
            return v
        # A literal constant is re-made at the new dtype, so no cast appears in the trace.
        producer = self._producer(v)
        if producer is not None and producer.prim == "const" and v.type.weak:
            value = producer.params["value"]
            if dtype in ("i32", "i64") and value.size and value.dtype.kind in "iu":
                info = np.iinfo(NUMPY_DTYPE[dtype])
                if value.min() < info.min or value.max() > info.max:  # astype would wrap around
                    self.error(span, f"the integer {value.max() if value.max() > info.max else value.min()} does "
                                     f"not fit in {dtype} ({info.min}..{info.max})")
                    return Var(ERROR_TYPE)
            with np.errstate(over="ignore"):  # a float beyond f32's range is inf there, as in torch and JAX
                remade = value.astype(NUMPY_DTYPE[dtype])
            return self.emit("const", [], {"value": remade, "weak": False}, span)
        return self.emit("cast", [v], {"dtype": dtype}, span)

    def _producer(self, v: Var):
        for block in reversed(self.blocks):
            for e in reversed(block.eqns[-8:]):
                if v in e.outputs:
                    return e
        return None

    def to_float(self, v: Var, span: Span | None) -> Var:
        if v.type.dtype in FLOATS or v.type.is_error:
            return v
        if v.type.dtype == "bool":
            self.error(span, f"arithmetic on bool ({v.type}); use cast(x, f32) first")
            return Var(ERROR_TYPE)
        return self.cast(v, "f64", span)

    def promote_all(self, vs: list[Var], span: Span | None, allow_bool: bool = False) -> list[Var]:
        """Cast operands to their common dtype; mixing bool with numbers is arithmetic on bool."""
        live = [v for v in vs if not v.type.is_error]
        if len(live) != len(vs) or not live:
            return vs
        kinds = {v.type.dtype == "bool" for v in live}
        if len(kinds) > 1 and not allow_bool:
            shown = next(v for v in live if v.type.dtype == "bool")
            self.error(span, f"arithmetic on bool ({shown.type}); use cast(x, f32) first")
            return [Var(ERROR_TYPE) for _ in vs]
        t = live[0].type
        for v in live[1:]:
            dtype, weak = promote(t, v.type)
            t = TensorType(dtype, (), weak)
        return [self.cast(v, t.dtype, span) for v in vs]

    def dtype_of(self, v: Any) -> str:
        if isinstance(v, Var):
            return v.type.dtype
        if isinstance(v, DType):
            return v.name
        if isinstance(v, bool):
            return "bool"
        return "i64" if is_dim(v) else "f64"


def control(builder: Builder, prim: str, inputs: list[Var], out_types: list[TensorType], params: dict[str, Any],
            regions: tuple[Block, ...], span: Span | None) -> list[Var]:
    """Emit an `if` or `for` equation (their types are computed by the lowering, not a rule)."""
    outs = [Var(t) for t in out_types]
    builder.block.eqns.append(Eqn(prim, tuple(inputs), tuple(outs), params, builder.user_span(span), regions,
                                  layer=tuple(builder.layers)))
    return outs
