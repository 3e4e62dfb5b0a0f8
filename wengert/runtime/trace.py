"""The Wengert list: one entry per primitive evaluation, in the order it ran."""
from __future__ import annotations

import html
from typing import Any, Iterator

import attrs
import numpy as np

from .ops import Dual, primal


@attrs.define(eq=False)
class Entry:
    index: int
    op: str  # a primitive, or "input" / "param" / "state" / "iter" for the roots
    operands: tuple[int, ...]
    params: dict[str, Any]
    shape: tuple[int, ...]
    dtype: str
    span: Any  # the .dl source span that produced it
    value: Any  # ndarray, a Dual in forward mode, or None once freed
    name: str = ""  # the user's name (input, param, named value) when it has one
    active: bool = False  # depends on something being differentiated
    adjoint: Any = None  # filled by the reverse pass
    tangent: Any = None  # filled by forward mode (batched: directions first)
    layer: tuple = ()  # the equation's `layer` (ir.CallFrame, outermost first): which layer call made it

    @property
    def primal(self) -> Any:
        return primal(self.value)


@attrs.define
class Trace:
    entries: list[Entry] = attrs.Factory(list)
    outputs: dict[str, int] = attrs.Factory(dict)  # requested name -> entry index
    source_text: str = ""
    var_entry: dict[int, int] = attrs.Factory(dict)  # IR var id -> entry index (the last one, in loops)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]

    def __str__(self) -> str:
        return self.format(values=True)

    def format(self, values: bool = True, adjoints: bool = False, tangents: bool = False,
               start: int = 0, stop: int | None = None, marks: dict[str, str] | None = None) -> str:
        """A table like the book's figures 9-3..9-7: index, op, operands, shape, value (and derivative).
        `marks` notes ops by name (`{"inv": "host round trip"}` on an OpenCL device)."""
        marks = marks or {}
        rows = [["#", "op", "operands", "type", "line"] + (["value"] if values else [])
                + (["tangent"] if tangents else []) + (["adjoint"] if adjoints else [])]
        for e in self.entries[start:stop]:
            label = e.op + (f" ({marks[e.op]})" if e.op in marks else "") + (f" {e.name}" if e.name else "")
            row = [f"v{e.index}", label, ", ".join(f"v{i}" for i in e.operands),
                   f"{e.dtype}[{','.join(map(str, e.shape))}]", f"{e.span.line}:{e.span.column}" if e.span else ""]
            if values:
                row.append(_short(e.primal))
            if tangents:
                row.append(_short(e.tangent[0] if e.tangent is not None and np.ndim(e.tangent) > len(e.shape)
                                  else e.tangent))
            if adjoints:
                row.append(_short(primal(e.adjoint)))
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_html(self, output: int | None = None, adjoints: bool | None = None, tangents: bool | None = None,
                link: str | None = None, limit: int = 2000) -> str:
        """The list as an HTML table (`wengert report`, Jupyter): index, op, operands, type, line,
        value, and the adjoint/tangent columns (by default when some entry has one). The row of
        `output` is marked; with `link`, lines of that file link to `#L<line>` anchors."""
        adjoints = any(e.adjoint is not None for e in self.entries) if adjoints is None else adjoints
        tangents = any(e.tangent is not None for e in self.entries) if tangents is None else tangents
        head = ["#", "op", "operands", "type", "line", "value"] + (["tangent"] if tangents else []) \
            + (["adjoint"] if adjoints else [])
        rows = ['<table class="data trace"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
                + "</tr></thead><tbody>"]
        for e in self.entries[:limit]:
            label = e.op + (f" {e.name}" if e.name else "")
            where = ""
            if e.span is not None:
                text = f"{e.span.line}:{e.span.column}"
                where = f'<a href="#L{e.span.line}">{text}</a>' if e.span.source.path == link else _e(text)
            cells = [f"v{e.index}", _e(label), _e(", ".join(f"v{i}" for i in e.operands)),
                     _e(f"{e.dtype}[{','.join(map(str, e.shape))}]"), where, _e(cell(e.primal))]
            if tangents:
                t = e.tangent
                cells.append(_e(cell(t[0] if t is not None and np.ndim(primal(t)) > len(e.shape) else t)))
            if adjoints:
                cells.append(_e(cell(e.adjoint)))
            mark = ' class="out"' if e.index == output else ""
            rows.append(f"<tr{mark}>" + "".join(f'<td class="code">{c}</td>' for c in cells) + "</tr>")
        rows.append("</tbody></table>")
        if len(self) > limit:
            rows.append(f'<p class="note">the first {limit} of {len(self)} entries</p>')
        return "".join(rows)

    def _repr_html_(self) -> str:  # Jupyter
        outputs = ", ".join(f"<code>{_e(n)}</code> = v{i}" for n, i in self.outputs.items())
        return (f"<p>Wengert list: {len(self)} entries" + (f"; {outputs}" if outputs else "") + "</p>"
                + self.to_html(output=next(iter(self.outputs.values()), None)))


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def cell(v: Any, limit: int = 6) -> str:
    """A value for a table cell: 6 significant digits; an array's first few elements."""
    if v is None:
        return "-"
    a = np.asarray(primal(v))
    if a.dtype == np.bool_:
        text = [str(x).lower() for x in a.ravel()[:limit]]
    elif a.dtype.kind == "f":
        text = [f"{x:.6g}" for x in a.ravel()[:limit]]
    else:
        text = [str(x) for x in a.ravel()[:limit]]
    if a.ndim == 0:
        return text[0]
    return "[" + ", ".join(text) + (f", … ({a.size} values)]" if a.size > limit else "]")


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, Dual):
        v = v.primal
    a = np.asarray(v)
    if a.ndim == 0:
        return f"{a.item():.6g}" if a.dtype.kind == "f" else str(a.item())
    return np.array2string(a, precision=4, threshold=8, edgeitems=2, max_line_width=60).replace("\n", "")
