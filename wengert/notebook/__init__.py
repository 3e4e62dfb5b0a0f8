"""wengert in Jupyter: `%load_ext wengert` registers the `%%wengert NAME` cell magic (magic.py).
The displays themselves belong to the objects: `Program._repr_html_` (inputs, params and values
with their types), `Trace._repr_html_` (the Wengert list, with adjoints and tangents when it has
them), `Program.graph(...)` (a `Drawing`, shown as the SVG of `wengert graph`) and
`Program.train` (rich's progress in the notebook, the history as a table at the end)."""
from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from .magic import WengertMagics
    ipython.register_magics(WengertMagics)
