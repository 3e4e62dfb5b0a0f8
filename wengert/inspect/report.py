"""`wengert report`: one self-contained HTML page about one evaluation of a program.

The page holds the program's source (numbered, the lines the evaluation ran marked), the
Wengert list drawn by Graphviz (the SVG inlined; without `dot`, the DOT text and how to
install Graphviz), the list as a table with values and adjoints, and the gradient of the
named value with respect to each param and each float input given, as small tables. It
loads nothing from the network: the CSS is inline and there are no scripts or images.
"""
from __future__ import annotations

import html
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import DiagnosticError
from ..runtime.ops import primal
from ..runtime.trace import cell
from ..runtime.types import FLOATS
from . import graph as graphs

MAX_ROWS = 2000  # trace table rows shown
GRID_ROWS, GRID_COLS = 8, 10  # gradient table cells shown

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --accent: #7c3aed; --hit: #fef9c3; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1160px; padding: 20px 24px 40px; color: var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 22px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 14px 0 6px; }
code, pre, td.num, td.code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
.meta { color: var(--muted); margin: 2px 0; }
.meta code { color: var(--ink); }
.source { border: 1px solid var(--line); border-radius: 6px; overflow-x: auto; background: #fafafa; }
.source table { border-collapse: collapse; width: 100%; }
.source td { padding: 0 10px; white-space: pre; vertical-align: top; }
.source td.ln { color: var(--muted); text-align: right; user-select: none; border-right: 1px solid var(--line);
                width: 1%; }
.source tr.hit td.code { background: var(--hit); }
.graph { border: 1px solid var(--line); border-radius: 6px; padding: 8px; text-align: center; overflow-x: auto; }
.graph svg { max-width: 100%; height: auto; }
table.data { border-collapse: collapse; margin: 4px 0 8px; }
table.data th, table.data td { border: 1px solid var(--line); padding: 2px 8px; text-align: left; }
table.data th { background: #f3f4f6; font-weight: 600; }
table.data td.num { text-align: right; }
table.data tr.out td { background: #fee2e2; font-weight: 600; }
.grads { display: flex; flex-wrap: wrap; gap: 6px 28px; }
.note { color: var(--muted); font-size: 12px; }
a { color: var(--accent); text-decoration: none; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
"""


def build_report(prog, of: str, inputs: dict[str, Any], expand: bool = False, command: str | None = None) -> str:
    """The HTML text of the report."""
    module = prog.module
    notes: list[str] = []
    adjoints = True
    try:
        trace = graphs.evaluate(prog, of, inputs, adjoints=True)
    except DiagnosticError as e:  # a non-scalar value: no gradients, the values only
        if not any("needs a scalar" in d.message for d in e.diagnostics):
            raise
        notes.append(e.diagnostics[0].message)
        trace, adjoints = graphs.evaluate(prog, of, inputs), False
    pic = graphs.Picture(*graphs.items_from_trace(trace, of), "", values=True, adjoints=adjoints)
    pic.title = f"{Path(module.path).name}: Wengert list of {of}" + (
        " at " + ", ".join(f"{k}={graphs._brief(v)}" for k, v in inputs.items()) if inputs else "")
    dot_text = graphs.to_dot(pic, expand=expand)
    out_index = trace.outputs.get(of, len(trace) - 1)
    value = trace[out_index].primal

    parts = [(f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              f"<title>{_e(Path(module.path).name)}: {_e(of)} — wengert report</title>\n"
              f"<style>{CSS}</style>\n</head>\n<body>")]
    parts.append(f"<h1>{_e(Path(module.path).name)}</h1>")
    given = ", ".join(f"<code>{_e(k)}</code> = {_e(cell(v))}" for k, v in inputs.items())
    parts.append(f"<p class=\"meta\"><code>{_e(of)}</code> = <code>{_e(cell(value))}</code>"
                 + (f" at {given}" if given else "") + "</p>")
    params = [n for n, p in module.params.items() if p.kind == "param"]
    parts.append(f"<p class=\"meta\">{len(trace)} entries in the Wengert list; "
                 f"{len(params)} params ({module.param_count:,} numbers); seed {prog.seed}</p>")
    if command:
        parts.append(f"<p class=\"meta\">made by <code>{_e(command)}</code></p>")
    for n in notes:
        parts.append(f"<p class=\"note\">{_e(n)}</p>")

    parts.append("<h2>Program</h2>")
    parts.append(_source(module.source_text, {e.span.line for e in trace if e.span is not None
                                              and e.span.source.path == module.path}))
    parts.append("<h2>Graph</h2>")
    parts.append(_picture(dot_text))
    parts.append("<h2>Wengert list</h2>")
    parts.append(trace.to_html(out_index, adjoints=adjoints, tangents=False, link=module.path, limit=MAX_ROWS))
    if adjoints:
        parts.append(f"<h2>Gradients of {_e(of)}</h2>")
        parts.append(_gradients(prog, trace, of, inputs))
    from .. import __version__
    parts.append(f"<footer>wengert {_e(__version__)}</footer>\n</body>\n</html>\n")
    return "\n".join(parts)


def write_report(prog, of: str, inputs: dict[str, Any], out: str | Path, expand: bool = False,
                 command: str | None = None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(prog, of, inputs, expand=expand, command=command), encoding="utf-8")
    return out


def command_line(file: str, of: str, items: tuple[str, ...], out: str, expand: bool = False,
                 params: str | None = None) -> str:
    words = ["wengert", "report", file, "--of", of] + [w for item in items for w in ("-i", item)] + ["-o", out]
    words += ["--params", params] if params else []
    return " ".join(shlex.quote(w) for w in words) + (" --expand" if expand else "")


# ---------------------------------------------------------------- pieces
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _source(text: str, hits: set[int]) -> str:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        cls = ' class="hit"' if n in hits else ""
        rows.append(f'<tr id="L{n}"{cls}><td class="ln">{n}</td><td class="code">{_e(line) or " "}</td></tr>')
    return '<div class="source"><table>' + "".join(rows) + "</table></div>"


def _picture(dot_text: str) -> str:
    exe = graphs.dot_binary()
    if exe is None:
        return ('<p class="note">Graphviz\'s <code>dot</code> was not found, so the graph is given as DOT text; '
                "install Graphviz (<code>apt-get install graphviz</code>, <code>brew install graphviz</code>, "
                "graphviz.org) and run <code>wengert report</code> again to see it drawn.</p>"
                f'<details open><summary>DOT</summary><pre>{_e(dot_text)}</pre></details>')
    svg = graphs.run_dot(dot_text, "svg", exe).decode("utf-8")
    return f'<div class="graph">{inline_svg(svg)}</div>'


def inline_svg(svg: str) -> str:
    """Graphviz's SVG document as an element for an HTML page: no XML prolog, DOCTYPE (which
    names a URL), comments or namespace declarations (HTML parsers do not need them)."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.strip()


def gradients(prog, trace, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The adjoints of the params and of the float inputs given, from a trace with adjoints."""
    module = prog.module
    names = [n for n, p in module.params.items() if p.kind == "param"]
    names += [n for n, d in module.inputs.items() if n in inputs and d.var.type.dtype in FLOATS]
    roots = {(e.op, e.name): e for e in trace if e.op in ("input", "param")}
    out = {}
    for n in names:
        kind = "input" if n in module.inputs else "param"
        value = prog._root_value(n, inputs)
        entry = roots.get((kind, n))
        adj = entry.adjoint if entry is not None else None
        out[n] = np.zeros_like(value) if adj is None else np.asarray(primal(adj), dtype=value.dtype).reshape(value.shape)
    return out


def _gradients(prog, trace, of: str, inputs: dict[str, Any]) -> str:
    grads = gradients(prog, trace, inputs)
    if not grads:
        return '<p class="note">no params and no float inputs given</p>'
    blocks = []
    for name, g in grads.items():
        shape = f"{prog.module.type_of(_root_var(prog, name)).dtype}[{', '.join(map(str, g.shape))}]"
        norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
        blocks.append(f"<div><h3>∂{_e(of)}/∂{_e(name)} <span class=\"note\">{_e(shape)}"
                      + (f", norm {norm:.6g}" if g.ndim else "") + "</span></h3>" + _grid(g) + "</div>")
    return '<div class="grads">' + "".join(blocks) + "</div>"


def _root_var(prog, name: str):
    decl = prog.module.params.get(name) or prog.module.inputs[name]
    return decl.var


def _grid(g: np.ndarray) -> str:
    """A small table of an array's values, rounded: rows are the leading axes, columns the last one."""
    a = np.asarray(g)
    if a.ndim == 0:
        return f'<table class="data grad"><tr><td class="num">{a.item():.6g}</td></tr></table>'
    m = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
    rows, cols = m.shape
    index = list(np.ndindex(*a.shape[:-1])) if a.ndim > 1 else [()]
    out = ['<table class="data grad"><tr><th></th>'
           + "".join(f"<th>{j}</th>" for j in range(min(cols, GRID_COLS)))
           + ("<th>…</th>" if cols > GRID_COLS else "") + "</tr>"]
    for i in range(min(rows, GRID_ROWS)):
        head = ",".join(map(str, index[i])) if index[i] else ""
        cells = "".join(f'<td class="num">{x:.6g}</td>' for x in m[i, :GRID_COLS])
        out.append(f"<tr><th>{_e(head)}</th>{cells}{'<td>…</td>' if cols > GRID_COLS else ''}</tr>")
    if rows > GRID_ROWS:
        out.append(f'<tr><th>…</th><td colspan="{min(cols, GRID_COLS) + (cols > GRID_COLS)}" class="note">'
                   f"{rows - GRID_ROWS} more rows</td></tr>")
    out.append("</table>")
    return "".join(out)
