"""Lowering a program's inference graph to ONNX.

`Lowering` walks the IR block of the requested values with training off. Values known while
exporting (constants, `training()`, fixed dims, loop indices, and whatever is computed from
them alone) are folded with the primitives' own NumPy kernels, so `if training() then ...` takes
its inference branch and a `for` over a fixed range is unrolled (the LSTM's scan); every other
equation goes through its rule in `rules.RULES` (JAX's lowering rules, one per primitive), which
emits ONNX nodes. A folded value becomes an ONNX constant only when a node reads it. Params and
state become initializers; symbolic dims become named ONNX dims (`batch`), and the ones an
equation needs at run time (a reshape to [batch, 28, 28, 1]) are read from the inputs' shapes.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError
from ..runtime import primitives
from ..runtime.executor import free_vars
from ..runtime.ir import Block, Eqn, Var
from ..runtime.types import NUMPY_DTYPE, DimOp, Sym

OPSET = 18  # ONNX opset of the exported models: Reduce* take their axes as an input from 18 on


class ExportError(DiagnosticError):
    """Something in the program with no ONNX form, reported at its line."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise DiagnosticError([Diagnostic.plain("wengert", "exporting to ONNX needs the `onnx` package: "
                                                           "pip install 'wengert[onnx]'")]) from None
    return onnx


class Lowering:
    """One export: the nodes, initializers and names made so far."""

    def __init__(self, prog, wanted: str):
        self.onnx = _onnx()
        self.wanted = wanted  # the values exported, for messages
        self.prog = prog
        self.module = prog.module
        self.nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}
        self.env: dict[int, str] = {}  # var id -> ONNX value name
        self.static: dict[int, np.ndarray] = {}  # var id -> value known while exporting
        self.dims: dict[Any, str] = {}  # dim -> ONNX name of an int64 [1] tensor holding it
        self._names = itertools.count()
        self.eqn: Eqn | None = None  # the equation being lowered (for messages)

    # ---------------------------------------------------------------- names and constants
    def fresh(self, hint: str = "v") -> str:
        return f"{hint}_{next(self._names)}"

    def node(self, op: str, inputs: list[str], hint: str = "v", outputs: int = 1, **attrs: Any) -> str:
        names = [self.fresh(hint) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, **attrs))
        return names[0]

    def const(self, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.fresh("const")
        self.initializers[name] = self.onnx.numpy_helper.from_array(array, name)
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64))

    def name(self, var: Var) -> str:
        """The ONNX name of a var's value (a folded value becomes a constant here)."""
        if var.id not in self.env:
            if var.id not in self.static:
                raise self.error(f"internal: `{var}` has no value")  # pragma: no cover
            self.env[var.id] = self.const(self.static[var.id])
        return self.env[var.id]

    def error(self, message: str) -> ExportError:
        span = self.eqn.span if self.eqn is not None else None
        return ExportError([Diagnostic(span, message) if span is not None
                            else Diagnostic.plain(self.module.path, message)])

    # ---------------------------------------------------------------- dims
    def dim(self, d: Any) -> str:
        """An int64 [1] tensor holding dim `d` (a number, a symbol bound by an input, or
        arithmetic on them)."""
        d = self.module.dims.resolve(d)
        if isinstance(d, (int, np.integer)):
            return self.ints([int(d)])
        key = str(d)
        if key not in self.dims:
            if isinstance(d, Sym):
                self.dims[key] = self._symbol(d)
            elif isinstance(d, DimOp):
                op = {"+": "Add", "-": "Sub", "*": "Mul", "//": "Div", "%": "Mod"}[d.op]
                self.dims[key] = self.node(op, [self.dim(d.a), self.dim(d.b)], "dim")
            else:
                raise self.error(f"cannot export the dim `{d}`")
        return self.dims[key]

    def _symbol(self, sym: Sym) -> str:
        for name, decl in self.module.inputs.items():
            for axis, d in enumerate(self.module.dims.resolve_shape(decl.var.type.shape)):
                if isinstance(d, Sym) and d.name == sym.name and decl.var.id in self.env:
                    shape = self.node("Shape", [self.env[decl.var.id]], "shape")
                    return self.node("Slice", [shape, self.ints([axis]), self.ints([axis + 1])], f"dim_{sym.name}")
        raise self.error(f"the dim `{sym}` is not the size of an input the exported values read")

    def shape(self, dims) -> str:
        """An int64 [rank] tensor of a shape whose dims may be symbolic."""
        dims = [self.module.dims.resolve(d) for d in dims]
        if all(isinstance(d, (int, np.integer)) for d in dims):
            return self.ints(dims)
        return self.node("Concat", [self.dim(d) for d in dims], "shape", axis=0) if dims else self.ints([])

    def concrete(self, d: Any) -> int | None:
        d = self.module.dims.resolve(d)
        return int(d) if isinstance(d, (int, np.integer)) else None

    # ---------------------------------------------------------------- blocks
    def block(self, block: Block, wanted: list[Var] | None = None) -> None:
        """Lower the equations of `block` that its results (or the vars `wanted`) need."""
        ids = {v.id for v in (block.results if wanted is None else wanted)}
        needed = []
        for e in reversed(block.eqns):
            if any(o.id in ids for o in e.outputs):
                needed.append(e)
                ids.update(i.id for i in e.inputs)
                for r in e.regions:
                    ids |= free_vars(r)
        for e in reversed(needed):
            self.lower(e)

    def lower(self, e: Eqn) -> None:
        from .rules import CONTROL, RULES, why_not
        self.eqn = e
        if e.prim in CONTROL:
            CONTROL[e.prim](self, e)
            return
        if self._fold(e):
            return
        rule = RULES.get(e.prim)
        if rule is None:
            reason = why_not(e.prim)
            raise self.error(f"`{e.prim}` has no ONNX form{f' ({reason})' if reason else ''}, so {self.wanted} "
                             "cannot be exported")
        out = rule(self, e, *[self.name(v) for v in e.inputs], **e.params)
        self.eqn = e
        self.env[e.outputs[0].id] = out
        self.static.pop(e.outputs[0].id, None)

    def _fold(self, e: Eqn) -> bool:
        """Compute an equation while exporting when all it reads is known then."""
        prim = primitives.REGISTRY[e.prim]
        if prim.needs_context or prim.impl is None or not all(v.id in self.static for v in e.inputs):
            return False
        params = dict(e.params)
        if any(_symbolic(p, self.module.dims) for p in params.values()):
            return False
        params = {k: _concrete(self.module.dims, v) for k, v in params.items()}
        self.known(e.outputs[0], prim.impl(*(self.static[v.id] for v in e.inputs), **params))
        return True

    def known(self, var: Var, value: Any) -> None:
        """`var` is known while exporting (a constant node is made only if a node reads it)."""
        self.static[var.id] = np.asarray(value)
        self.env.pop(var.id, None)

    def alias(self, target: Var, source: Var) -> None:
        if source.id in self.static:
            self.known(target, self.static[source.id])
        else:
            self.static.pop(target.id, None)
            self.env[target.id] = self.env[source.id]


def _symbolic(value: Any, dims) -> bool:
    if isinstance(value, (Sym, DimOp)):
        return not isinstance(dims.resolve(value), (int, np.integer))
    if isinstance(value, (tuple, list)):
        return any(_symbolic(v, dims) for v in value)
    return False


def _concrete(dims, value: Any) -> Any:
    if isinstance(value, (Sym, DimOp)):
        return int(dims.resolve(value))
    if isinstance(value, tuple):
        return tuple(_concrete(dims, v) for v in value)
    return value


ONNX_DTYPES = {"f32": "FLOAT", "f64": "DOUBLE", "i32": "INT32", "i64": "INT64", "bool": "BOOL"}


def onnx_dtype(dtype: str) -> int:
    return getattr(_onnx().TensorProto, ONNX_DTYPES[dtype])


def export(prog, names: list[str], opset: int = OPSET) -> Any:
    """The ONNX model (a ModelProto) computing `names` from the inputs they read, with the
    program's current params and state as initializers, checked by onnx.checker."""
    onnx = _onnx()
    low = Lowering(prog, ", ".join(f"`{n}`" for n in names))
    module = prog.module
    outputs = [prog._var(n) for n in names]
    needed = prog._needed_inputs(outputs)
    graph_inputs = []
    for n in needed:
        decl = module.inputs[n]
        low.env[decl.var.id] = n
        graph_inputs.append(_value_info(onnx, module, n, decl.var))
    store = prog.params
    for n, decl in module.params.items():
        low.env[decl.var.id] = n
    low.block(module.main, outputs)
    low.eqn = None
    graph_outputs = []
    for n, var in zip(names, outputs):
        source = low.name(var)
        low.nodes.append(onnx.helper.make_node("Identity", [source], [n]))
        graph_outputs.append(_value_info(onnx, module, n, var))
    used = {i for node in low.nodes for i in node.input}
    initializers = [onnx.numpy_helper.from_array(np.asarray(store[n]), n) for n in module.params if n in used]
    initializers += [t for name, t in low.initializers.items() if name in used]
    graph = onnx.helper.make_graph(low.nodes, module.path.rsplit("/", 1)[-1], graph_inputs, graph_outputs,
                                   initializer=initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="wengert")
    model.ir_version = min(model.ir_version, 9)  # readable by onnxruntime releases of the last years
    onnx.checker.check_model(model, full_check=True)
    return model


def _value_info(onnx, module, name: str, var: Var):
    dims = []
    for d in module.dims.resolve_shape(var.type.shape):
        dims.append(int(d) if isinstance(d, (int, np.integer)) else str(d))
    return onnx.helper.make_tensor_value_info(name, onnx_dtype(var.type.dtype), dims)


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(NUMPY_DTYPE[dtype])
