"""`wengert graph`: the dataflow graph or the Wengert list of a program, drawn with Graphviz.

Two pictures of what a named value depends on:
- the IR (`graph_items_ir`): one node per equation of the checked program (types with their
  symbolic dims such as `batch`); with inputs, each node also shows its value from one run;
- the trace (`graph_items_trace`, `--trace`): one node per entry of one evaluation's
  Wengert list, like the book's figures 9-1 to 9-7.
Either can show each node's adjoint (reverse mode) and/or tangent (forward mode).

Equations made while inlining a layer call (or a standard-library fn called from the user's
code) carry the calls in `Eqn.layer` / `Entry.layer` (`ir.CallFrame`, outermost first). By
default each outermost call collapses into one node (`Conv2D_1 (Conv2D)` with its input and
output shapes); `expand=True` draws every equation, inside nested clusters instead.

The DOT text is written here (`to_dot`); `render` runs Graphviz's `dot` for .svg/.png/.pdf.
Without `dot` on PATH the .dot file is written next to the requested output and the
caller is told how to install Graphviz (not an error: exit status 0).
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..diagnostics import Diagnostic, DiagnosticError
from ..runtime.executor import free_vars
from ..runtime.ir import CallFrame, Eqn
from ..runtime.ops import Dual, primal

FORMATS = (".svg", ".png", ".pdf", ".dot")
INSTALL_HINT = ("install Graphviz (`apt-get install graphviz`, `brew install graphviz`, "
                "or see https://graphviz.org/download/)")

_COLORS = {"input": "#dbeafe", "param": "#fef3c7", "state": "#e5e7eb", "iter": "#e5e7eb",
           "layer": "#ede9fe", "fn": "#f3f4f6", "output": "#fecaca", "op": "#ffffff", "const": "#ffffff"}
_ROOTS = ("input", "param", "state", "iter")


@attrs.define
class Item:
    """One node before grouping: an equation (IR) or a trace entry."""

    key: int
    op: str  # a primitive, "const", or a root kind: input / param / state / iter
    tag: str  # "v7" in a trace, "" in the IR
    name: str
    type: str  # "f64[]", "f32[batch,26,26,32]"
    operands: tuple[int, ...]
    layer: tuple[CallFrame, ...] = ()
    value: Any = None
    adjoint: Any = None
    tangent: Any = None
    has_value: bool = False


@attrs.define
class Picture:
    items: list[Item]
    output: int  # key of the highlighted item
    title: str
    values: bool = False
    adjoints: bool = False
    tangents: bool = False


# ---------------------------------------------------------------- building the items
def evaluate(prog, of: str, inputs: dict[str, Any], adjoints: bool = False, tangents: bool = False,
             wrt: list[str] | None = None):
    """One recorded evaluation of `of`, with adjoints and/or tangents (tangent 1 along each of `wrt`)."""
    seeds = None
    if tangents:
        if not wrt:
            raise DiagnosticError([Diagnostic.plain("wengert", "--tangents needs --wrt NAME (the direction to seed)")])
        prog._wrt(list(wrt))
        seeds = {n: np.ones_like(prog._root_value(n, inputs)) for n in wrt}
    adjoint_wrt = list(wrt) if adjoints and wrt and not tangents else None
    if adjoint_wrt:
        prog._wrt(adjoint_wrt)
    return prog.trace_with_derivatives(of, inputs, adjoints=adjoints, tangents=seeds, wrt=adjoint_wrt)


def items_from_trace(trace, of: str) -> tuple[list[Item], int]:
    """The entries `of` depends on (through operands), as items keyed by entry index."""
    out = trace.outputs.get(of, len(trace) - 1)
    keep, stack = set(), [out]
    while stack:
        i = stack.pop()
        if i < 0 or i in keep:
            continue
        keep.add(i)
        stack.extend(trace[i].operands)
    items = []
    for e in trace:
        if e.index not in keep:
            continue
        items.append(Item(e.index, e.op, f"v{e.index}", e.name, f"{e.dtype}[{','.join(map(str, e.shape))}]",
                          tuple(i for i in e.operands if i >= 0), tuple(e.layer), e.primal, e.adjoint,
                          _first_direction(e.tangent, e.shape), True))
    return items, out


def items_from_ir(prog, of: str, trace=None) -> tuple[list[Item], int]:
    """The equations of the main block that `of` depends on (and the roots they read); with a
    trace of one evaluation, each also carries its value (and derivatives)."""
    module = prog.module
    target = prog._var(of)
    live, needed = {target.id}, []
    for e in reversed(module.main.eqns):
        if any(o.id in live for o in e.outputs):
            needed.append(e)
            live |= _reads(e)
    needed.reverse()
    node_of: dict[int, int] = {}  # var id -> node key
    items: list[Item] = []

    def derived(item: Item, var_id: int) -> Item:
        if trace is not None and var_id in trace.var_entry:
            entry = trace[trace.var_entry[var_id]]
            item.value, item.adjoint, item.has_value = entry.primal, entry.adjoint, True
            item.tangent = _first_direction(entry.tangent, entry.shape)
        return item

    for name, decl in list(module.inputs.items()) + list(module.params.items()):
        if decl.var.id in live:
            kind = "input" if name in module.inputs else decl.kind
            items.append(derived(Item(decl.var.id, kind, "", name, str(module.type_of(decl.var)), ()), decl.var.id))
            node_of[decl.var.id] = decl.var.id
    for e in needed:
        key = e.outputs[0].id
        operands = tuple(dict.fromkeys(node_of[i] for i in sorted(_reads(e), key=_order(e)) if i in node_of))
        names = [n for n, v in module.values.items() if v.id in {o.id for o in e.outputs}]
        types = ", ".join(str(module.type_of(o)) for o in e.outputs)
        item = Item(key, e.prim, "", names[-1] if names else "", types, operands, tuple(e.layer))
        if e.prim == "const":
            item.value, item.has_value = e.params["value"], True
        items.append(derived(item, key))
        for o in e.outputs:
            node_of[o.id] = key
    return items, node_of.get(target.id, target.id)


def _reads(e: Eqn) -> set[int]:
    ids = {i.id for i in e.inputs}
    for r in e.regions:
        ids |= free_vars(r)
    return ids


def _order(e: Eqn):
    position = {v.id: k for k, v in enumerate(e.inputs)}
    return lambda vid: (position.get(vid, len(position)), vid)


def _first_direction(tangent: Any, shape: tuple[int, ...]) -> Any:
    if tangent is None:
        return None
    t = primal(tangent)
    return t[0] if np.ndim(t) > len(shape) else t


def picture(prog, of: str, inputs: dict[str, Any], trace: bool = False, adjoints: bool = False,
            tangents: bool = False, wrt: list[str] | None = None) -> Picture:
    """What `wengert graph` draws: the IR or the trace of `of`, with what was asked for."""
    prog._var(of)  # an unknown name is reported before anything runs
    evaluated = trace or adjoints or tangents or bool(inputs) or not prog.module.inputs
    t = evaluate(prog, of, inputs, adjoints, tangents, wrt) if evaluated else None
    items, out = items_from_trace(t, of) if trace else items_from_ir(prog, of, t)
    what = "Wengert list" if trace else "dataflow graph"
    title = f"{Path(prog.module.path).name}: {what} of {of}"
    if inputs:
        title += " at " + ", ".join(f"{k}={_brief(v)}" for k, v in inputs.items())
    return Picture(items, out, title, values=evaluated, adjoints=adjoints, tangents=tangents)


# ---------------------------------------------------------------- DOT text
def to_dot(pic: Picture, expand: bool = False, rankdir: str | None = None) -> str:
    items = {it.key: it for it in pic.items}
    group_of: dict[int, str] = {}  # item key -> collapsed node id
    groups: dict[str, list[Item]] = {}
    if not expand:
        ids: dict[str, str] = {}  # outermost call instance -> node id
        for it in pic.items:
            if it.layer:
                gid = ids.setdefault(it.layer[0].instance, f"g{len(ids)}")
                group_of[it.key] = gid
                groups.setdefault(gid, []).append(it)

    def node_id(key: int) -> str:
        return group_of.get(key) or f"n{key}"

    consumers: dict[int, set[str]] = {}
    for it in pic.items:
        for k in it.operands:
            consumers.setdefault(k, set()).add(node_id(it.key))

    lines = []
    shown = sum(1 for it in pic.items if it.key not in group_of) + len(groups)
    direction = rankdir or ("LR" if shown <= 12 else "TB")
    lines.append("digraph wengert {")
    lines.append(f'  graph [rankdir={direction}, fontname="Helvetica", fontsize=12, labelloc=t, '
                 f'nodesep=0.3, ranksep=0.35, label={_q(pic.title)}];')
    lines.append('  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", '
                 'fillcolor="#ffffff", color="#374151"];')
    lines.append('  edge [color="#6b7280", arrowsize=0.7];')

    # nodes, in clusters when expanded
    tree: dict = {"items": [], "children": {}}
    for it in pic.items:
        if it.key in group_of:
            continue
        node = tree
        for frame in (it.layer if expand else ()):
            node = node["children"].setdefault(frame.instance, {"frame": frame, "items": [], "children": {}})
        node["items"].append(it)
    counter = iter(range(1 << 30))

    def emit(node: dict, indent: str) -> None:
        for it in node["items"]:
            lines.append(f"{indent}{node_id(it.key)} {_attrs(_item_style(it, pic, it.key == pic.output))};")
        for child in node["children"].values():
            frame = child["frame"]
            lines.append(f"{indent}subgraph cluster_{next(counter)} {{")
            lines.append(f'{indent}  label={_q(_frame_title(frame))}; style="rounded,filled"; '
                         f'fillcolor="{"#f5f3ff" if frame.kind == "layer" else "#f9fafb"}"; color="#a78bfa";')
            emit(child, indent + "  ")
            lines.append(f"{indent}}}")
    emit(tree, "  ")

    for gid, members in groups.items():
        keys = {m.key for m in members}
        frame = members[0].layer[0]
        outs = [m for m in members if m.key == pic.output or (consumers.get(m.key, set()) - {gid})]
        rep = outs[-1] if outs else members[-1]
        own = f"{frame.instance}." if frame.kind == "layer" else "\0"
        ins = []
        for m in members:
            for k in m.operands:
                if k in keys or k not in items:
                    continue
                src = items[k]
                if src.op in ("param", "state") and src.name.startswith(own):
                    continue
                if src.op == "const" and src.key not in group_of:
                    continue
                ins.append(src.type)
        ins = list(dict.fromkeys(ins))
        tags = [m.tag for m in members if m.tag]
        title = _frame_title(frame) + (f" · {tags[0]}…{tags[-1]}" if len(tags) > 1 else f" · {tags[0]}" if tags else "")
        label = [title, f"{', '.join(ins) or '()'} → {', '.join(dict.fromkeys(o.type for o in outs or [rep]))}"]
        label += _derivative_lines(rep, pic)
        style = {"label": "\n".join(label), "shape": "box3d" if frame.kind == "layer" else "box",
                 "style": "filled" if frame.kind == "layer" else "rounded,filled",
                 "fillcolor": _COLORS[frame.kind]}
        if pic.output in keys:
            style.update(fillcolor=_COLORS["output"], penwidth="2", color="#b91c1c")
        lines.append(f"  {gid} {_attrs(style)};")

    edges = []
    for it in pic.items:
        for k in it.operands:
            if k in items:
                edges.append((node_id(k), node_id(it.key)))
    for a, b in dict.fromkeys(edges):
        if a != b:
            lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _frame_title(frame: CallFrame) -> str:
    return f"{frame.instance} ({frame.callee})" if frame.kind == "layer" else frame.callee


def _item_style(it: Item, pic: Picture, is_output: bool) -> dict[str, str]:
    if it.op in _ROOTS:
        head = [f"{it.tag} = {it.name}" if it.tag else it.name, f"{it.op} · {it.type}"]
        style = {"shape": "ellipse", "style": "filled" if it.op != "state" else "filled,dashed", "margin": "0.05,0.04"}
    elif it.op == "const":
        text = _brief(it.value) if it.value is not None and np.size(it.value) <= 4 else f"const {it.type}"
        head = [f"{it.tag} = {text}" if it.tag else text]
        style = {"style": "rounded,dashed", "fontsize": "9", "color": "#9ca3af", "fontcolor": "#4b5563"}
        return {"label": "\n".join(head), **style}
    else:
        if it.tag:  # a trace entry reads like the Wengert list: v7 = sqrt(v6)
            head = [f"{it.tag} = {it.op}({', '.join(f'v{k}' for k in it.operands)})",
                    f"{it.name} · {it.type}" if it.name else it.type]
        else:
            head = [f"{it.name} = {it.op}" if it.name else it.op, it.type]
        style = {}
    label = head + _derivative_lines(it, pic)
    style.update(label="\n".join(label), fillcolor=_COLORS.get(it.op, _COLORS["op"]))
    if is_output:
        style.update(fillcolor=_COLORS["output"], penwidth="2", color="#b91c1c")
    return style


def _derivative_lines(it: Item, pic: Picture) -> list[str]:
    out = []
    if pic.values and it.has_value:
        out.append(f"value {_brief(it.value)}")
    if pic.tangents and it.has_value:
        out.append(f"tangent {_brief(it.tangent)}")
    if pic.adjoints and it.has_value:
        out.append(f"adjoint {_brief(it.adjoint)}")
    return out


def _brief(v: Any) -> str:
    """A value short enough for a node: 6 significant digits for a scalar, a few elements otherwise."""
    if v is None:
        return "-"
    if isinstance(v, Dual):
        v = v.primal
    a = np.asarray(primal(v))
    if a.dtype == np.bool_:
        return str(a.item()).lower() if a.ndim == 0 else "[" + ", ".join(str(x).lower() for x in a.ravel()[:4]) + \
            (", …]" if a.size > 4 else "]")
    if a.ndim == 0:
        return f"{a.item():.6g}" if a.dtype.kind == "f" else str(a.item())
    flat = a.ravel()
    shown = [f"{x:.4g}" if a.dtype.kind == "f" else str(x) for x in flat[:3 if a.size > 4 else 4]]
    return "[" + ", ".join(shown) + (", …]" if a.size > 4 else "]")


def _q(text: str) -> str:
    """A DOT quoted string: backslashes and quotes escaped, newlines as centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n") + '"'


def _attrs(attrs_: dict[str, str]) -> str:
    return "[" + ", ".join(f"{k}={_q(str(v))}" for k, v in attrs_.items()) + "]"


# ---------------------------------------------------------------- rendering
@attrs.define
class Written:
    path: Path  # what was written: the requested file, or the .dot next to it
    fallback: bool = False  # True when `dot` was missing and only the .dot file was written


def dot_binary() -> str | None:
    return shutil.which("dot")


def check_output(out: str | Path) -> str:
    """The picture's format from its name (svg, png, pdf, dot), or a usage error."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise DiagnosticError([Diagnostic.plain("wengert", f"-o {out}: the picture's name must end in "
                                                           + ", ".join(FORMATS))])
    return suffix[1:]


def render(dot_text: str, out: str | Path) -> Written:
    """Write `out` (.svg/.png/.pdf through Graphviz, or .dot as is)."""
    out = Path(out)
    suffix = "." + check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".dot":
        out.write_text(dot_text, encoding="utf-8")
        return Written(out)
    exe = dot_binary()
    if exe is None:
        fallback = out.with_suffix(".dot")
        fallback.write_text(dot_text, encoding="utf-8")
        return Written(fallback, fallback=True)
    out.write_bytes(run_dot(dot_text, suffix[1:], exe))
    return Written(out)


@attrs.define
class Drawing:
    """A picture of `wengert graph` as a Python value (`Program.graph`): Jupyter displays its SVG
    (drawn by Graphviz on first use); without `dot`, its text is the DOT source and how to get it."""

    dot: str
    _svg: str | None = attrs.field(default=None, init=False, repr=False)

    @property
    def svg(self) -> str:
        if self._svg is None:
            self._svg = run_dot(self.dot, "svg").decode("utf-8")
        return self._svg

    def save(self, out: str | Path) -> Written:
        return render(self.dot, out)

    def _repr_svg_(self) -> str | None:
        return self.svg if dot_binary() is not None else None

    def __repr__(self) -> str:
        if dot_binary() is None:
            return f"{self.dot}\n# Graphviz's `dot` was not found, so this is the DOT text; {INSTALL_HINT}"
        return f"<Drawing: {self.dot.count(' -> ')} edges; .svg, .save(path)>"


def run_dot(dot_text: str, fmt: str = "svg", exe: str | None = None) -> bytes:
    exe = exe or dot_binary()
    if exe is None:
        raise DiagnosticError([Diagnostic.plain("wengert", f"Graphviz's `dot` is not on PATH; {INSTALL_HINT}")])
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, timeout=300,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DiagnosticError([Diagnostic.plain("wengert", f"Graphviz's `dot` failed: {e}")]) from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise DiagnosticError([Diagnostic.plain("wengert", f"Graphviz's `dot` failed: {message}")])
    return done.stdout


def graph_dot(prog, of: str, inputs: dict[str, Any], trace: bool = False, adjoints: bool = False,
              tangents: bool = False, wrt: Iterable[str] | None = None, expand: bool = False,
              rankdir: str | None = None) -> str:
    """The DOT text of `wengert graph`."""
    pic = picture(prog, of, inputs, trace=trace, adjoints=adjoints, tangents=tangents,
                  wrt=list(wrt) if wrt else None)
    return to_dot(pic, expand=expand, rankdir=rankdir)
