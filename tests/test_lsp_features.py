"""The language server's answers (wengert/lsp/features.py) on programs checked by the real
checker, and a handler that fails inside a running server."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from wengert.lsp import features
from wengert.lsp.analysis import analyse, real_path

LIB = """\
fn double(t) = 2 * t
fn broken(t) = t + undefined_thing
layer Twice(x, units) {
  param W: dtype(x)[dim(x, -1), units] = glorot()
  return x @ W
}
"""

MAIN = """\
import "lib.dl"
input x: f32[2, 3]
fn mm(a) = a @ a
y = mm(x)
z = double(x) + nope
w = Twice(x, 5)
v = broken(x)
"""

MODEL = """\
input x: f32[batch, 4]
input y: f32[batch]
input s: f64[3]
fn sq(t) {
  u = t * t
  return u
}
a = sq(x)
b = sq(s)
h1 = Dense(x, 8)
g = h1.W
data blobs = random_classification(examples=10, features=4, seed=0)
loss = mean(Dense(h1, 1))
train {
  data = blobs
  minimize = loss
  epochs = 1
}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "lib.dl").write_text(LIB)
    (tmp_path / "main.dl").write_text(MAIN)
    (tmp_path / "model.dl").write_text(MODEL)
    return tmp_path


def where(loc: features.Location) -> tuple[str, int, int]:
    return Path(real_path(loc.span.source.path)).name, loc.span.line, loc.span.column


def test_diagnostics_are_published_by_file_with_notes(files):
    a = analyse(str(files / "main.dl"), MAIN)
    main, lib = a.diagnostics[str(files / "main.dl")], a.diagnostics[str(files / "lib.dl")]
    assert [(d.span.line, d.span.column, d.message.split(":")[0]) for d in main] == [
        (3, 12, "inner dimensions do not match"), (5, 17, "undefined name `nope`")]
    (d,) = lib
    assert (d.span.line, d.span.column) == (2, 20) and d.message == "undefined name `undefined_thing`"
    assert [(n.line, n.column, text) for n, text in d.notes] == [(7, 5, "in this call of `broken`")]

    pytest.importorskip("pygls")
    from wengert.lsp.server import to_lsp_diagnostic
    out = to_lsp_diagnostic(d, (files / "main.dl").as_uri())
    assert (out.range.start.line, out.range.start.character) == (1, 19)
    (related,) = out.related_information
    assert related.location.uri == (files / "main.dl").as_uri() and related.location.range.start.line == 6
    assert related.message == "in this call of `broken`"


def test_hover_shows_each_type_a_local_has_and_layer_params(files):
    a = analyse(str(files / "model.dl"), MODEL)
    text = features.hover(a, 5, 3)  # `u` in sq, called on f32[batch, 4] and on f64[3]
    assert "u: f32[batch, 4]\nu: f64[3]" in text and "one type per call" in text
    assert "t: f32[batch, 4]" in features.hover(a, 5, 7)  # the first use of t: both calls
    assert "a: f32[batch, 4]" in features.hover(a, 8, 1)
    hover = features.hover(a, 13, 14)  # the unnamed Dense: numbered params
    assert "creates `Dense_1.W: f32[8, 1]`, `Dense_1.b: f32[1]`" in hover
    assert features.hover(a, 11, 6).startswith("```wengert\nh1.W: f32[4, 8]")


def test_definitions(files):
    a = analyse(str(files / "main.dl"), MAIN)
    assert [where(d) for d in features.definition(a, 6, 6)] == [("lib.dl", 3, 7)]  # Twice
    assert [where(d) for d in features.definition(a, 5, 6)] == [("lib.dl", 1, 4)]  # double
    assert features.import_target(a, 1, 10) == str((files / "lib.dl").resolve())
    m = analyse(str(files / "model.dl"), MODEL)
    assert [where(d) for d in features.definition(m, 15, 11)] == [("model.dl", 12, 6)]  # data blobs
    assert [where(d) for d in features.definition(m, 16, 14)] == [("model.dl", 13, 1)]  # minimize = loss
    assert [where(d) for d in features.definition(m, 6, 10)] == [("model.dl", 5, 3)]  # u, local to sq
    assert [where(d) for d in features.definition(m, 5, 7)] == [("model.dl", 4, 7)]  # the argument t
    # a layer's param: the call that created it, then its declaration in the standard library
    (call, decl) = features.definition(m, 11, 5)
    assert where(call) == ("model.dl", 10, 6)
    assert where(decl)[0] == "layers.dl" and decl.span.source.line(decl.span.line).lstrip().startswith("param W")


def test_references_and_rename(files):
    m = analyse(str(files / "model.dl"), MODEL)
    assert [(r.span.line, r.span.column) for r in features.references(m, 10, 1)] == [(10, 1), (11, 5), (13, 19)]
    edits = features.rename(m, 4, 7, "v")  # the argument t of sq: only inside sq
    assert sorted((s.line, s.column) for s, _ in edits) == [(4, 7), (5, 7), (5, 11)]
    edits = features.rename(m, 10, 1, "hidden")  # h1, and so the name of its params: h1.W
    assert sorted((s.line, s.column, s.end_column) for s, _ in edits) == [(10, 1, 3), (11, 5, 7), (13, 19, 21)]
    with pytest.raises(features.RenameError, match="already bound"):
        features.rename(m, 5, 3, "t")
    with pytest.raises(features.RenameError, match="defined in this program"):
        features.rename(m, 10, 6, "Linear")  # Dense lives in the standard library
    with pytest.raises(features.RenameError, match="not a name"):
        features.rename(m, 8, 1, "input")


def test_document_symbols(files):
    m = analyse(str(files / "model.dl"), MODEL)
    outline = {o.name: o for o in features.outline(m)}
    assert [o.name for o in features.outline(m)] == ["x", "y", "s", "sq", "a", "b", "h1", "g", "blobs", "loss", "train"]
    assert outline["x"].detail == "f32[batch, 4]" and outline["sq"].detail == "sq(t)"
    assert [c.name for c in outline["sq"].children] == ["t", "u"]
    assert outline["blobs"].kind == "data"
    assert [o.name for o in features.outline(analyse("t.dl", "input x: f32[n]\ntrain {\n  epochs = 1\n}\n"))] == \
        ["x", "train"]  # an unnamed train block is there by its keyword; the dim n is not


def test_symbolic_dims_hover_and_rename(files):
    m = analyse(str(files / "model.dl"), MODEL)
    text = features.hover(m, 2, 14)  # `batch` in `input y: f32[batch]`
    assert "dim batch" in text and "`x: f32[batch, 4]`, `y: f32[batch]`" in text
    assert [where(d) for d in features.definition(m, 2, 14)] == [("model.dl", 1, 14)]
    edits = features.rename(m, 1, 14, "n")
    assert sorted((s.line, s.column) for s, _ in edits) == [(1, 14), (2, 14)]
    with pytest.raises(features.RenameError):
        features.rename(m, 14, 1, "fit")  # the keyword of an unnamed train block


def test_completion(files):
    m = analyse(str(files / "model.dl"), MODEL)

    def labels(text: str, line: int, column: int) -> list[str]:
        return [c.label for c in features.completions(m, text, line, column)]

    assert labels("q = Dense(x, ", 1, 14)[:2] == ["x=", "units="]
    assert labels("q = conv2d(x, W, s", 1, 19)[:2] == ["stride="] + ["s"]  # then the names: the input s, ...
    assert labels("q = conv2d(x, W, ", 1, 18)[:4] == ["x=", "W=", "stride=", "padding="]
    assert labels("data d = moons(ex", 1, 18)[0] == "examples="
    assert labels("train {\n  data = blobs\n  ep", 3, 5) == ["epochs"]
    assert labels("q = sof", 1, 8) == ["softmax", "softmax_crossentropy", "softplus"]
    assert labels("q = h", 1, 6)[0] == "h1" and "hinge" in labels("q = h", 1, 6)
    inside = features.completions(m, MODEL, 5, 8)  # in sq's body: its argument t is a name in scope
    assert any(c.label == "t" and c.kind == "arg" for c in inside)
    outside = features.completions(m, MODEL, 8, 8)
    assert not any(c.label == "t" and c.kind == "arg" for c in outside)
    dense = next(c for c in features.completions(m, "q = Den", 1, 8) if c.label == "Dense")
    assert dense.detail == "Dense(x, units)" and dense.doc.startswith("`x @ W + b`")


def test_semantic_tokens_are_the_highlighters_classes():
    toks = features.semantic_tokens('input x: f32[batch]\nh = relu(x)  # note\nz = Dense(h, units=2)\n')
    assert (1, 1, 5, "keyword") in toks and (1, 10, 3, "type") in toks and (2, 5, 4, "function") in toks
    assert (2, 14, 6, "comment") in toks and (3, 5, 5, "class") in toks and (3, 14, 5, "property") in toks


def test_a_failing_handler_answers_with_an_error_and_the_session_goes_on(files, monkeypatch):
    pytest.importorskip("pygls")
    from lsp_client import Client

    from wengert.lsp import server as srv

    def broken(*args):
        raise RuntimeError("a bug in hover")
    monkeypatch.setattr(features, "hover", broken)
    to_server_r, to_server_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    ins, outs = os.fdopen(to_server_r, "rb"), os.fdopen(to_client_w, "wb")
    thread = threading.Thread(target=srv.server.start_io, args=(ins, outs), daemon=True)
    thread.start()
    c = Client(os.fdopen(to_client_r, "rb"), os.fdopen(to_server_w, "wb"))
    try:
        c.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        uri = (files / "model.dl").as_uri()
        c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "wengert", "version": 1,
                                                           "text": MODEL}})
        assert c.diagnostics(uri) == []
        answer = c.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": {"line": 0, "character": 6}})
        assert "a bug in hover" in answer["error"]["message"]
        (loc,) = c.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                       "position": {"line": 7, "character": 4}})["result"]
        assert loc["uri"] == uri and loc["range"]["start"] == {"line": 3, "character": 3}
        assert c.request("shutdown")["result"] is None
    finally:
        c.writer.close()  # end of input: the server's loop ends
        thread.join(timeout=10)


def test_every_models_file_answers_at_every_token():
    """The book's programs: each top-level value hovers with the checker's own type, and hover,
    definition and references answer (without an exception) at every token."""
    from wengert.dsl.lower import check_file
    root = Path(__file__).resolve().parent.parent / "models"
    for path in sorted(root.rglob("*.dl")):
        text = path.read_text()
        a = analyse(str(path), text)
        module = check_file(path)
        for sym in a.index.symbols:
            if sym.kind == "value" and sym.container is None and sym.name in module.values:
                var = module.values[sym.name]
                shown = f"{sym.name}: {var.type.dtype}[{', '.join(map(str, module.dims.resolve_shape(var.type.shape)))}]"
                assert shown in features.hover(a, sym.span.line, sym.span.column), (path, sym.name)
        for line, col, length, _ in features.semantic_tokens(text):
            features.hover(a, line, col)
            features.definition(a, line, col)
            features.references(a, line, col)
        assert features.outline(a), path


def test_a_library_gets_the_mistakes_every_open_program_reveals(files, monkeypatch):
    pytest.importorskip("pygls")
    from lsprotocol import types as lsp
    from wengert.lsp import server as srv

    from pygls.workspace import Workspace
    ls = srv.WengertServer()
    ls.protocol._workspace = Workspace(files.as_uri())  # what `initialize` makes
    sent: dict[str, list] = {}
    monkeypatch.setattr(ls, "text_document_publish_diagnostics",
                        lambda p: sent.__setitem__(p.uri, [d.message for d in p.diagnostics]))
    lib, main = (files / "lib.dl").as_uri(), (files / "main.dl").as_uri()
    other = (files / "other.dl").as_uri()
    for uri, text in ((main, MAIN), (other, 'import "lib.dl"\ninput x: f32[3]\nq = double(x)\n')):
        ls.workspace.put_text_document(lsp.TextDocumentItem(uri, "wengert", 1, text))
    ls.publish(main)
    assert sent[lib] == ["undefined name `undefined_thing`"] and len(sent[main]) == 2
    ls.publish(other)  # other calls no broken fn: the library keeps main's finding
    assert sent[other] == [] and sent[lib] == ["undefined name `undefined_thing`"]
    ls.workspace.put_text_document(lsp.TextDocumentItem(main, "wengert", 2, MAIN.replace("v = broken(x)\n", "")))
    ls.publish(main)  # fixed: nothing reveals it any more
    assert sent[lib] == [] and len(sent[main]) == 2
