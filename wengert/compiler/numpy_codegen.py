"""The NumPy renderer: a step's optimised graph as one generated Python function, a statement
per node from the `EMITTERS` registry (ufuncs and reductions with `out=` into buffers kept
between replays, reshapes as methods; other kernels as calls of their `impl` with bound
params), adjoint accumulations in place when nothing reads the left operand later, values
without a buffer deleted after their last use. Same kernels, same order as the interpreter:
bit-identical results."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..runtime import primitives
from ..runtime.executor import Context
from .graph import Graph, GuardFailed, Meta, Node


# ---------------------------------------------------------------- emitters: one per primitive kernel
@attrs.define
class Emitter:
    """Code for a primitive's forward kernel: `code(args, params, meta, out)` gives an expression
    (`meta`: the result's shape and dtype; `out`: a buffer's name when `writes_out`, else None);
    `names` go into the plan's namespace."""

    code: Callable[[list[str], dict[str, Any], Meta, str | None], str]
    writes_out: bool = False
    names: dict[str, Any] = attrs.Factory(dict)


EMITTERS: dict[str, Emitter] = {}


def emitter(name: str, writes_out: bool = False, **names: Any):
    def register(fn):
        EMITTERS[name] = Emitter(fn, writes_out, names)
        return fn
    return register


def _out(out: str | None) -> str:
    return f", out={out}" if out else ""


def _ufunc(prim: str, ufunc: np.ufunc) -> None:
    local = f"_np_{ufunc.__name__}"
    EMITTERS[prim] = Emitter(lambda args, params, value, out: f"{local}({', '.join(args)}{_out(out)})", True,
                             {local: ufunc})


for _prim, (_kind, _kernel) in {**primitives.elementwise.UNARY, **primitives.elementwise.BINARY}.items():
    if isinstance(_kernel, np.ufunc):
        _ufunc(_prim, _kernel)


@emitter("div", writes_out=True, _np_true_divide=np.true_divide, _np_floor_divide=np.floor_divide)
def _emit_div(args, params, value, out):
    fn = "_np_floor_divide" if value.dtype.kind in "iu" else "_np_true_divide"
    return f"{fn}({', '.join(args)}{_out(out)})"


@emitter("matmul", writes_out=True, _np_matmul=np.matmul)
def _emit_matmul(args, params, value, out):
    return f"_np_matmul({args[0]}, {args[1]}{_out(out if value.shape else None)})"


def _reduction(ufunc: np.ufunc):
    def code(args, params, value, out):
        axes, keepdims = tuple(params["axes"]), params.get("keepdims", False)
        return f"_np_{ufunc.__name__}_reduce({args[0]}, axis={axes!r}, keepdims={keepdims!r}{_out(out)})"
    return code


for _prim, _ufn in {"reduce_sum": np.add, "reduce_max": np.maximum, "reduce_min": np.minimum,
                    "reduce_prod": np.multiply}.items():
    # np.sum(x, axis) is np.add.reduce(x, axis): the same pairwise summation
    EMITTERS[_prim] = Emitter(_reduction(_ufn), True, {f"_np_{_ufn.__name__}_reduce": _ufn.reduce})


@emitter("reshape")
def _emit_reshape(args, params, value, out):
    return f"{args[0]}.reshape({tuple(params['shape'])!r})"  # np.reshape, without its Python wrapper


@emitter("transpose")
def _emit_transpose(args, params, value, out):
    return f"{args[0]}.transpose({tuple(int(p) for p in params['perm'])!r})"


@emitter("broadcast_to", _np_broadcast_to=np.broadcast_to)
def _emit_broadcast_to(args, params, value, out):
    return f"_np_broadcast_to({args[0]}, {tuple(params['shape'])!r})"


@emitter("where", _np_where=np.where)
def _emit_where(args, params, value, out):
    return f"_np_where({', '.join(args)})"


@emitter("stop_gradient")
def _emit_identity(args, params, value, out):
    return args[0]


# ---------------------------------------------------------------- the plan
@attrs.define(eq=False)
class Plan:
    """One compiled step: `fn(ctx, *roots)` returns (values, adjoints); None for no adjoint."""

    fn: Callable[..., tuple[tuple, tuple]]
    roots: list[tuple[str, str]]  # (kind, name) of each argument
    source: str
    random: bool  # reads the context: draws random numbers (rewound when a guard fails), `training()`
    guarded: bool
    replays: int = 0
    grad_types: list[tuple[np.dtype, tuple[int, ...]]] = attrs.Factory(list)  # dtype, shape of each wrt root
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = attrs.Factory(list)  # not allocated yet
    level: str = "numpy"  # the renderer that wrote it: "numpy" or "native"
    fallback: str | None = None  # why a native plan became a NumPy one
    native: Any = None  # native_codegen.NativeStep when the whole step is one native call
    runners: dict = attrs.Factory(dict)  # fused-epoch runners built on this plan (compiler/epochs.py)

    def run(self, ctx: Context | None, *roots: Any) -> tuple[tuple, tuple]:
        """One replay. Buffers are allocated by the first, after compiling has freed its values."""
        if self.buffers:
            space = self.fn.__globals__
            for name, shape, dtype in self.buffers:
                space[name] = np.empty(shape, dtype)
            self.buffers = []
        return self.fn(ctx, *roots)


def namespace() -> dict[str, Any]:
    """What every generated step function refers to besides its emitters' names."""
    return {"_GuardFailed": GuardFailed, "_isfinite": np.isfinite, "_np_where": np.where,
            "_np_multiply": np.multiply, "_np_add": np.add, "_all": np.logical_and.reduce}


def name_leaf(node: Node, n: int, name: dict[int, str], roots: list[tuple[str, str]], ns: dict[str, Any],
              store: Storage, value: Any = None) -> bool:
    """Name a root (an argument `a{k}`) or a constant (`_c{n}`, its `value`, default the node's);
    False for any other node."""
    if node.op == "root":
        name[n] = f"a{len(roots)}"
        roots.append((node.params["kind"], node.params["name"]))
    elif node.op == "const":
        name[n] = f"_c{n}"
        ns[name[n]] = node.value if value is None else value
    else:
        return False
    store.set(n, {n})
    return True


def guard_line(value: str, want: Any) -> str:
    """The statement that leaves a replay whose branch or trip count differs from the compiling trace's."""
    test = f"bool({value}) is not {want!r}" if isinstance(want, bool) else f"int({value}) != {want!r}"
    return f"if {test}: raise _GuardFailed"


def step_function(ns: dict[str, Any], lines: list[str], n_roots: int, values: str, grads: str,
                  filename: str) -> Callable:
    """`step(ctx, a0, ...)` from its body lines, executed in `ns`."""
    body = "\n".join("    " + line for line in lines) or "    pass"
    params = ", ".join(["ctx"] + [f"a{k}" for k in range(n_roots)])
    source = f"def step({params}):\n{body}\n    return ({values},), ({grads},)\n"
    exec(compile(source, filename, "exec"), ns)  # noqa: S102 - our own generated code
    ns["step"].source = source
    return ns["step"]


def generate(graph: Graph, order: list[int], rep: dict[int, int], value_nodes: list[int],
              grad_nodes: list[int | None], guards: list[tuple[int, Any]]) -> Plan:
    nodes = graph.nodes
    ns = namespace()
    name: dict[int, str] = {}
    roots: list[tuple[str, str]] = []
    lines: list[str] = []
    outputs = {rep[n] for n in value_nodes} | {rep[n] for n in grad_nodes if n is not None}
    last_use: dict[int, int] = {}
    for pos, n in enumerate(order):
        for a in nodes[n].args:
            last_use[a] = pos
    store = Storage()  # which buffers values may share (for in-place adds)
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = []
    guards_at: dict[int, list[Any]] = {}
    for n, want in guards:
        guards_at.setdefault(rep[n], []).append(want)
    random = False
    for pos, n in enumerate(order):
        node = nodes[n]
        if not name_leaf(node, n, name, roots, ns, store):
            name[n] = f"v{n}"
            args = [name[a] for a in node.args]
            lines.extend(emit_host(node, n, args, pos, ns, nodes, store, last_use, outputs, buffers))
            random |= node.effect
        for want in guards_at.get(n, ()):
            if nodes[n].op == "const":
                continue  # decided by the shapes alone
            lines.append(guard_line(name[n], want))
        # values without a buffer of their own are freed after their last use (peak memory)
        dead = [name[a] for a in dict.fromkeys(node.args) if last_use[a] == pos and a not in outputs
                and a not in store.owns and name[a].startswith("v")]
        if dead:
            lines.append(f"del {', '.join(dead)}")
    fn = step_function(ns, lines, len(roots), ", ".join(name[rep[n]] for n in value_nodes),
                       ", ".join("None" if n is None else name[rep[n]] for n in grad_nodes), "<wengert plan>")
    return Plan(fn, roots, fn.source, random, bool(guards), buffers=buffers)


# Kernels that may return (a view of) an operand; every other kernel returns a new array.
VIEWS = {"reshape", "transpose", "broadcast_to", "slice", "index", "gather", "stop_gradient", "cast", "const",
         "item", "vjp"}


class Storage:
    """Which buffers each node's value may live in, and the nodes that may live in each buffer."""

    def __init__(self) -> None:
        self.of: dict[int, set[int]] = {}
        self.sharers: dict[int, list[int]] = {}
        self.owns: dict[int, int] = {}  # node -> the buffer (named after the node that made it) it writes

    def set(self, n: int, places: set[int]) -> None:
        self.of[n] = places
        for b in places:
            self.sharers.setdefault(b, []).append(n)


def emit_host(node: Node, n: int, args: list[str], pos: int, ns: dict[str, Any], nodes: list[Node],
          store: Storage, last_use: dict[int, int], outputs: set[int],
          buffers: list[tuple[str, tuple[int, ...], np.dtype]]) -> list[str]:
    """The statements computing one node into `v{n}`; records which storage it may share."""
    v, value = f"v{n}", node.meta
    if node.op in VIEWS:
        store.set(n, set().union(*(store.of[a] for a in node.args), {n}))
    else:
        store.set(n, {n})

    def buffer() -> str:  # allocated before the first replay, written by every replay
        buffers.append((f"_b{n}", value.shape, value.dtype))
        store.owns[n] = n
        return f"_b{n}"

    if node.op == "scale":  # ops.scale: g * d, but exactly 0 where g is 0 when d has an inf or NaN
        out = buffer() if value.array else None
        ns[f"_z{n}"] = np.zeros((), dtype=value.dtype)
        return [f"{v} = _np_multiply({args[0]}, {args[1]}{_out(out)})",
                f"if not _all(_isfinite({args[1]}), axis=None): {v} = _np_where({args[0]} != 0, {v}, _z{n})"]
    if node.op == "item":
        return [f"{v} = {args[0]}[{node.params['index']}]"]
    if node.op == "vjp":
        ns[f"_f{n}"] = functools.partial(node.params["rule"], **node.params["params"])
        return [f"{v} = _f{n}({', '.join(args)})"]
    prim = primitives.REGISTRY[node.op]
    if node.accum and node.op == "add" and _can_add_in_place(node, n, pos, nodes, store, last_use, outputs):
        store.owns[n] = store.owns[node.args[0]]
        store.set(n, {store.owns[n]})
        return [f"{v} = _np_add({args[0]}, {args[1]}, out={args[0]})"]
    em = EMITTERS.get(node.op)
    if em is not None and not prim.needs_context:
        ns.update(em.names)
        out = buffer() if em.writes_out and value.array else None
        return [f"{v} = {em.code(args, node.params, value, out)}"]
    ns[f"_f{n}"] = functools.partial(prim.impl, **node.params) if node.params else prim.impl
    return [f"{v} = _f{n}({', '.join((['ctx'] if prim.needs_context else []) + args)})"]


def _can_add_in_place(node: Node, n: int, pos: int, nodes: list[Node], store: Storage, last_use: dict[int, int],
                      outputs: set[int]) -> bool:
    """`a + b` may go into a's buffer when a owns one of the result's type and nothing that
    may share it (a itself, views of it) is read after this node."""
    a = node.args[0]
    if a not in store.owns or a in outputs or last_use.get(a) != pos or node.meta != nodes[a].meta:
        return False
    return not any(m not in (a, n) and (m in outputs or last_use.get(m, -1) >= pos)
                   for m in store.sharers.get(store.owns[a], ()))
