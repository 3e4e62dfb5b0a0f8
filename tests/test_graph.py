"""`wengert graph` and `wengert report`: pictures of the IR and of the Wengert list, and the HTML page.

Tests that render through Graphviz are skipped when `dot` is not on PATH; the others ask for
.dot output (the DOT text is ours) or check the fallback that writes .dot without Graphviz.
"""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import lower

import wengert
from wengert.cli import main
from wengert.inspect import graph as graphs
from wengert.runtime.ir import CallFrame

ROOT = Path(__file__).resolve().parents[1]
CH09 = str(ROOT / "models" / "ch09" / "listing_9_01.dl")
CNN = str(ROOT / "models" / "cnn_pipe.dl")
XS = ["-i", "x1=1", "-i", "x2=2"]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def svg_texts(path: Path) -> list[str]:
    """Every <text> of an SVG (one per label line in Graphviz's output); the file must parse as XML."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return ["".join(t.itertext()) for t in root.iter() if t.tag.endswith("text")]


def node_fill(path: Path, node_id: str) -> str:
    """The fill colour of a node, found by its <title> (the DOT node id)."""
    for g in ET.parse(path).getroot().iter():
        if g.tag.endswith("g") and g.get("class") == "node":
            title = next(t for t in g if t.tag.endswith("title"))
            if title.text == node_id:
                shape = next(s for s in g if s.tag.endswith(("path", "polygon", "ellipse")))
                return shape.get("fill")
    raise AssertionError(f"no node {node_id}")


@pytest.fixture
def cnn_inputs(tmp_path):
    rng = np.random.default_rng(0)
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, rng.normal(size=(2, 28, 28, 1)).astype(np.float32))
    np.save(y, np.eye(10, dtype=np.float32)[[3, 7]])
    return ["-i", f"x={x}", "-i", f"y={y}"]


# ---------------------------------------------------------------- chapter 9 (figures 9-1 to 9-7)
@needs_dot
def test_ch09_trace_with_adjoints_svg(tmp_path):
    out = tmp_path / "f.svg"
    result = cli("graph", CH09, "--of", "f", *XS, "--trace", "--adjoints", "-o", out)
    assert result.exit_code == 0, result.output
    texts = svg_texts(out)
    for label in ["v7 = sqrt(v6)", "f · f64[]", "value 2.23607", "adjoint 1",
                  "v1 = x1", "input · f64[]", "adjoint 0.447214", "v4 = x2", "adjoint 0.894427",
                  "v6 = add(v2, v5)", "value 5", "adjoint 0.223607", "v2 = pow(v1, v0)", "v0 = 2"]:
        assert label in texts, label
    assert node_fill(out, "n7") == graphs._COLORS["output"]  # the output is highlighted
    assert node_fill(out, "n1") == graphs._COLORS["input"]


@needs_dot
def test_ch09_png(tmp_path):
    out = tmp_path / "f.png"
    assert cli("graph", CH09, "--of", "f", *XS, "--trace", "-o", out).exit_code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ch09_dot_text_edges_and_tangents(tmp_path):
    out = tmp_path / "f.dot"
    result = cli("graph", CH09, "--of", "f", *XS, "--trace", "--tangents", "--wrt", "x1", "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("digraph wengert {")
    for edge in ["n1 -> n2;", "n0 -> n2;", "n4 -> n5;", "n2 -> n6;", "n5 -> n6;", "n6 -> n7;"]:
        assert edge in text  # operands point at their results
    assert "tangent 0.447214" in text and "tangent 2" in text  # d/dx1 along the list
    assert "adjoint" not in text


def test_ch09_ir_graph_without_inputs(tmp_path):
    out = tmp_path / "ir.dot"
    result = cli("graph", CH09, "--of", "f", "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "f = sqrt\\nf64[]" in text and "x1\\ninput · f64[]" in text and "shape=\"ellipse\"" in text
    assert "value" not in text  # nothing was evaluated


def test_ir_graph_with_inputs_shows_values():
    prog = wengert.load(CH09)
    text = graphs.graph_dot(prog, "f", {"x1": 1.0, "x2": 2.0}, adjoints=True)
    assert "f = sqrt\\nf64[]\\nvalue 2.23607\\nadjoint 1" in text
    assert "adjoint 0.447214" in text and "adjoint 0.894427" in text


# ---------------------------------------------------------------- the CNN: layers collapse
@needs_dot
def test_cnn_trace_collapsed_and_expanded(tmp_path, cnn_inputs):
    out = tmp_path / "cnn.svg"
    result = cli("graph", CNN, "--of", "loss", *cnn_inputs, "--trace", "--adjoints", "-o", out)
    assert result.exit_code == 0, result.output
    texts = svg_texts(out)
    assert any(t.startswith("Conv2D_1 (Conv2D)") for t in texts)
    assert "f32[2,28,28,1] → f32[2,26,26,32]" in texts  # the layer's in and out shapes
    assert any(t.startswith("Dense_2 (Dense)") for t in texts) and any(t.startswith("softmax") for t in texts)
    assert "v1 = Conv2D_1.W" in texts  # params stay nodes of their own, feeding their layer
    assert not any("conv2d(" in t for t in texts)
    assert any(t.startswith("adjoint") for t in texts)

    expanded = tmp_path / "cnn_expanded.svg"
    result = cli("graph", CNN, "--of", "loss", *cnn_inputs, "--trace", "--adjoints", "--expand", "-o", expanded)
    assert result.exit_code == 0, result.output
    texts = svg_texts(expanded)
    assert "v2 = conv2d(v0, v1)" in texts and "v4 = add(v2, v3)" in texts
    assert "Conv2D_1 (Conv2D)" in texts  # now the label of a cluster around its equations
    assert ET.parse(expanded).getroot().find(".//{*}g[@class='cluster']") is not None


@needs_dot
def test_cnn_ir_graph_symbolic_shapes(tmp_path):
    out = tmp_path / "cnn_ir.svg"
    assert cli("graph", CNN, "--of", "loss", "-o", out).exit_code == 0
    texts = svg_texts(out)
    assert "Conv2D_1 (Conv2D)" in texts and "MaxPooling2D" in texts and "Dropout" in texts
    assert "f32[batch, 28, 28, 1] → f32[batch, 26, 26, 32]" in texts
    assert not any(t.startswith("conv2d") for t in texts)
    out2 = tmp_path / "cnn_ir_expanded.svg"
    assert cli("graph", CNN, "--of", "loss", "--expand", "-o", out2).exit_code == 0
    texts = svg_texts(out2)
    assert "conv2d" in texts and "Conv2D_1 (Conv2D)" in texts


def test_layer_calls_are_recorded_on_equations():
    module = wengert.load(CNN).module
    by_prim = {}
    for e in module.main.eqns:
        by_prim.setdefault(e.prim, []).append(e.layer)
    assert by_prim["conv2d"] == [(CallFrame("Conv2D_1", "Conv2D", "layer"),),
                                 (CallFrame("Conv2D_2", "Conv2D", "layer"),)]
    assert [f[0].callee for f in by_prim["where"]] == ["relu", "relu", "relu"]  # stdlib fns called by the user
    assert by_prim["cast"] == [()]  # `mean` is a built-in: no frame
    m = lower("""
        input x: f32[4, 3]
        layer Block(x) {
          h = Dense(x, 5)
          return relu(h)
        }
        fn twice(x) = 2 * x
        enc = Block(x)
        out = twice(Dense(enc, 2))
    """)
    frames = [tuple(f.instance for f in e.layer) for e in m.main.eqns]
    assert ("enc", "enc.h") in frames  # nested: the outer call first; `h = Dense(..)` names it h
    assert ("enc", "relu#1") in frames  # a stdlib fn called from the user's layer body
    assert ("Dense_1",) in frames  # an unbound layer call gets its param prefix
    assert () in frames  # `twice` is the user's own fn


def test_trace_entries_carry_layer():
    prog = wengert.load(CNN)
    rng = np.random.default_rng(1)
    t = prog.trace("logits", x=rng.normal(size=(1, 28, 28, 1)).astype(np.float32))
    conv = [e for e in t if e.op == "conv2d"]
    assert [e.layer[0].instance for e in conv] == ["Conv2D_1", "Conv2D_2"]
    assert all(e.layer == () for e in t if e.op in ("input", "param"))


# ---------------------------------------------------------------- without Graphviz
def test_fallback_writes_dot_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name, *a, **k: None)
    out = tmp_path / "pic" / "f.svg"
    result = cli("graph", CH09, "--of", "f", *XS, "--trace", "--adjoints", "-o", out)
    assert result.exit_code == 0, result.output
    assert not out.exists()
    dot = out.with_suffix(".dot")
    assert dot.read_text().startswith("digraph wengert {") and "adjoint 0.447214" in dot.read_text()
    assert "apt-get install graphviz" in result.output and f"dot -Tsvg {dot}" in result.output


def test_fallback_when_path_has_no_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    assert graphs.dot_binary() is None
    written = graphs.render("digraph g { a -> b; }\n", tmp_path / "g.png")
    assert written.fallback and written.path == tmp_path / "g.dot"


def test_bad_output_name_and_unknown_value(tmp_path):
    result = cli("graph", CH09, "--of", "f", "-o", tmp_path / "f.txt")
    assert result.exit_code == 2 and "must end in .svg, .png, .pdf, .dot" in result.output
    result = cli("graph", CH09, "--of", "g", "-o", tmp_path / "f.dot")
    assert result.exit_code == 2 and "unknown value `g`" in result.output
    result = cli("graph", CH09, "--of", "f", "--trace", "-o", tmp_path / "f.dot")
    assert result.exit_code == 2 and "input `x1` is needed" in result.output
    result = cli("graph", CH09, "--of", "f", *XS, "--tangents", "-o", tmp_path / "f.dot")
    assert result.exit_code == 2 and "--tangents needs --wrt" in result.output


def test_dot_strings_are_escaped():
    assert graphs._q('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    assert graphs._attrs({"label": 'say "hi"'}) == '[label="say \\"hi\\""]'


# ---------------------------------------------------------------- the report
def no_network_assets(page: str) -> bool:
    return not re.search(r"https?://", page) and "<script" not in page and "<link" not in page \
        and "<img" not in page


@needs_dot
def test_report_ch09(tmp_path):
    out = tmp_path / "report.html"
    result = cli("report", CH09, "--of", "f", *XS, "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert "f = sqrt(x1 ** 2 + x2 ** 2)" in page  # the source
    assert '<tr id="L18" class="hit"><td class="ln">18</td>' in page  # numbered; the lines that ran marked
    assert "<svg" in page and "value 2.23607" in page  # the graph, inlined
    assert "<th>adjoint</th>" in page and "<td class=\"code\">sqrt f</td>" in page  # the trace table
    assert "∂f/∂x1" in page and "∂f/∂x2" in page
    assert ">0.447214</td>" in page and ">0.894427</td>" in page  # the gradients
    assert no_network_assets(page)
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    ET.fromstring(svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg" '
                                      'xmlns:xlink="http://www.w3.org/1999/xlink"', 1))  # well formed


@needs_dot
def test_report_cnn_gradients_of_params(tmp_path, cnn_inputs):
    out = tmp_path / "cnn.html"
    result = cli("report", CNN, "--of", "loss", *cnn_inputs, "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for name in ["Conv2D_1.W", "Conv2D_1.b", "Dense_2.W", "Dense_2.b", "x", "y"]:
        assert f"∂loss/∂{name}" in page
    assert "f32[3, 3, 1, 32], norm" in page and "more rows" in page  # big gradients are cut short
    assert "Conv2D_1 (Conv2D)" in page and no_network_assets(page)


def test_report_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name, *a, **k: None)
    out = tmp_path / "report.html"
    result = cli("report", CH09, "--of", "f", *XS, "-o", out)
    assert result.exit_code == 0, result.output
    assert "apt-get install graphviz" in result.output
    page = out.read_text()
    assert "<svg" not in page and "digraph wengert" in page and "∂f/∂x1" in page
    assert no_network_assets(page)


def test_report_of_a_non_scalar_has_no_gradients(tmp_path, cnn_inputs, monkeypatch):
    monkeypatch.setattr(graphs.shutil, "which", lambda name, *a, **k: None)
    out = tmp_path / "probs.html"
    result = cli("report", CNN, "--of", "probs", *cnn_inputs[:2], "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "a gradient needs a scalar" in page and "Gradients of" not in page
    assert "<th>adjoint</th>" not in page and "<td class=\"code\">div probs</td>" in page
