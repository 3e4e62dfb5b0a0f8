"""wengert in Jupyter: the displays of a Program, a trace and a graph, the `%%wengert` cell magic,
and docs/notebook.ipynb executed by nbclient in a real kernel."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import wengert
from wengert.progress import history_table

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"

NET = """\
input x: f32[batch, 4]
input y: f32[batch, 3]
h = Dense(x, 3)
loss = mean((h - y) ** 2)
"""


def test_a_program_shows_its_inputs_params_and_values_with_types():
    page = wengert.compile(NET)._repr_html_()
    for row in ("<td>input</td><td><code>x</code></td><td><code>f32[batch, 4]</code>",
                "<td>param</td><td><code>h.W</code></td><td><code>f32[4, 3]</code>",
                "<td>value</td><td><code>h</code></td><td><code>f32[batch, 3]</code>",
                "<td>value</td><td><code>loss</code></td><td><code>f32[]</code>"):
        assert row in page
    assert "1 params" not in page and "2 params (15 numbers)" in page


def test_a_trace_shows_values_and_adjoints_when_it_has_them():
    prog = wengert.load(ROOT / "models" / "ch09" / "listing_9_01.dl")
    plain = prog.trace("f", x1=1.0, x2=2.0)._repr_html_()
    assert "<th>value</th>" in plain and "<th>adjoint</th>" not in plain
    assert "<td class=\"code\">sqrt f</td>" in plain and "2.23607" in plain
    full = prog.trace_with_derivatives("f", {"x1": 1.0, "x2": 2.0}, adjoints=True)._repr_html_()
    assert "<th>adjoint</th>" in full
    assert "0.447214" in full and "0.894427" in full  # df/dx1 = 1/sqrt(5), df/dx2 = 2/sqrt(5)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_a_graph_displays_as_the_svg_of_wengert_graph(tmp_path):
    prog = wengert.load(ROOT / "models" / "ch09" / "listing_9_01.dl")
    drawing = prog.graph("f", x1=1.0, x2=2.0, trace=True, adjoints=True)
    svg = drawing._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "sqrt" in svg and "0.447214" in svg  # the node and x1's adjoint
    from wengert.inspect.graph import graph_dot
    assert drawing.dot == graph_dot(prog, "f", {"x1": 1.0, "x2": 2.0}, trace=True, adjoints=True)
    assert drawing.save(tmp_path / "f.svg").path.read_text() == svg


def test_the_history_is_a_table():
    table = history_table([{"epoch": 1, "loss": 0.5, "seconds": 0.1}, {"epoch": 2, "loss": 0.25, "seconds": 0.1}])
    assert [c.header for c in table.columns] == ["epoch", "loss", "seconds"]
    assert list(table.columns[1].cells) == ["0.5", "0.25"]


def test_the_cell_magic_binds_a_program_or_shows_the_diagnostic(capsys):
    ip = pytest.importorskip("IPython").core.interactiveshell.InteractiveShell.instance()
    ip.run_line_magic("load_ext", "wengert")
    ip.run_cell_magic("wengert", "net", NET)
    assert isinstance(ip.user_ns["net"], wengert.Program)
    assert ip.user_ns["net"].run("loss", x=np.ones((2, 4), np.float32), y=np.ones((2, 3), np.float32)).shape == ()
    capsys.readouterr()
    ip.run_cell_magic("wengert", "bad", "input x: f32[batch, 4]\nh = Dense(x, 3) + z\n")
    err = capsys.readouterr().err
    assert err.startswith("<bad>:3:19: error: undefined name `z`")
    assert "    h = Dense(x, 3) + z\n" in err and "\n                      ^\n" in err
    assert "Traceback" not in err and "bad" not in ip.user_ns


@pytest.mark.slow
def test_the_docs_notebook_executes_in_a_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_path if env_path else "")  # the kernel imports this copy
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        os.environ["PYTHONPATH"] = env_path
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs)
    svg = "\n".join(o.get("data", {}).get("image/svg+xml", "") for o in outputs)
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "<td>input</td><td><code>x1</code></td><td><code>f64[]</code>" in html  # the Program
    assert "Wengert list: 8 entries" in html and "<th>adjoint</th>" in html and "0.447214" in html  # traces
    if shutil.which("dot"):
        assert "<svg" in svg and "sqrt" in svg  # the graph
    else:  # without Graphviz the drawing shows its DOT text
        assert "digraph" in "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "<broken>:3:20: error: undefined name `x2`" in streams and "Traceback" not in streams
    assert "training history" in html  # the history table at the end of training
