"""`wengert lsp` driven over stdio by a plain JSON-RPC client, as an editor would: diagnostics
on open and change, hover with symbolic dims, definitions (the standard library's `Dense`, a
param, an import), references, rename, symbols, completion, semantic tokens, a failing handler
that does not end the session, shutdown and exit."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")

from lsp_client import Client

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """\
input x: f32[batch, 4]
input y: f32[batch, 16]
param w: f32[16] = normal(0, 1)

fn sq(t) = t ** 2

h = Dense(x, 16)
z = relu(h) * w + bais
loss = mean(sq(z - y))
"""


def pos(line: int, character: int) -> dict:
    return {"line": line, "character": character}


def doc(uri: str) -> dict:
    return {"uri": uri}


def start(tmp_path: Path) -> tuple[subprocess.Popen, Client]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "wengert.cli", "lsp"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    client = Client(proc.stdout, proc.stdin)
    init = client.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(),
                                         "capabilities": {}})
    caps = init["result"]["capabilities"]
    assert caps["hoverProvider"] and caps["definitionProvider"] and caps["completionProvider"]
    assert caps["semanticTokensProvider"]["legend"]["tokenTypes"][:2] == ["keyword", "type"]
    client.notify("initialized", {})
    return proc, client


def test_an_editor_session(tmp_path):
    path = tmp_path / "model.dl"
    path.write_text(PROGRAM)
    uri = path.as_uri()
    proc, c = start(tmp_path)
    try:
        c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "wengert", "version": 1,
                                                           "text": PROGRAM}})
        found = c.diagnostics(uri)
        assert len(found) == 1
        d = found[0]
        assert d["message"].startswith("undefined name `bais`")
        assert d["severity"] == 1 and d["source"] == "wengert"
        # line 8 (0-based 7), `bais` starts at column 19 (0-based 18) and is 4 wide
        assert d["range"] == {"start": pos(7, 18), "end": pos(7, 22)}

        # the fix, as an incremental change: `bais` -> `w`; the diagnostics are cleared
        c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": pos(7, 18), "end": pos(7, 22)}, "text": "w"}]})
        assert c.diagnostics(uri) == []

        # hover a value: its type with the symbolic dim
        hover = c.request("textDocument/hover", {"textDocument": doc(uri), "position": pos(6, 0)})["result"]
        assert "h: f32[batch, 16]" in hover["contents"]["value"]
        # hover the layer call: its signature and the params it creates
        hover = c.request("textDocument/hover", {"textDocument": doc(uri), "position": pos(6, 5)})["result"]
        text = hover["contents"]["value"]
        assert "layer Dense(x, units)" in text and "`h.W: f32[4, 16]`" in text and "`h.b: f32[16]`" in text
        # hover a built-in: signature and the doc line from docs/language.md
        hover = c.request("textDocument/hover", {"textDocument": doc(uri), "position": pos(8, 8)})["result"]
        assert "mean(x, axis=none, keepdims=false)" in hover["contents"]["value"]
        assert "Reductions" in hover["contents"]["value"]

        # go to the definition of Dense: the standard library's layers.dl, at `layer Dense`
        (loc,) = c.request("textDocument/definition", {"textDocument": doc(uri), "position": pos(6, 5)})["result"]
        stdlib = ROOT / "wengert" / "dsl" / "stdlib" / "layers.dl"
        assert loc["uri"] == stdlib.as_uri()
        line = stdlib.read_text().split("\n")[loc["range"]["start"]["line"]]
        assert line[loc["range"]["start"]["character"]:].startswith("Dense(")
        assert line.startswith("layer ")
        # ... and of the param w (used on line 8)
        (loc,) = c.request("textDocument/definition", {"textDocument": doc(uri), "position": pos(7, 18)})["result"]
        assert loc == {"uri": uri, "range": {"start": pos(2, 6), "end": pos(2, 7)}}

        # references of h, and a rename of it
        refs = c.request("textDocument/references", {"textDocument": doc(uri), "position": pos(6, 0),
                                                     "context": {"includeDeclaration": True}})["result"]
        assert [r["range"]["start"] for r in refs] == [pos(6, 0), pos(7, 9)]
        edit = c.request("textDocument/rename", {"textDocument": doc(uri), "position": pos(7, 9),
                                                 "newName": "hidden"})["result"]
        assert sorted(e["range"]["start"]["line"] for e in edit["changes"][uri]) == [6, 7]
        assert "error" in c.request("textDocument/rename", {"textDocument": doc(uri), "position": pos(8, 8),
                                                            "newName": "avg"})  # `mean` is a built-in

        # complete a prefix to a built-in (on a new line `q = sof`)
        c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3}, "contentChanges": [
            {"range": {"start": pos(9, 0), "end": pos(9, 0)}, "text": "q = sof"}]})
        items = c.request("textDocument/completion", {"textDocument": doc(uri), "position": pos(9, 7)})
        labels = {i["label"]: i for i in items["result"]["items"]}
        assert "softmax" in labels and "softplus" in labels and "sq" not in labels
        assert labels["softmax"]["detail"].startswith("softmax(")
        (d,) = c.diagnostics(uri)  # `sof` is not a name (yet)
        assert d["message"].startswith("undefined name `sof`") and d["range"]["start"] == pos(9, 4)

        # typing on: three changes in quick succession are checked once, at the last version
        for version, (first, last, text) in enumerate([(7, 7, "tmax("), (12, 12, "z"), (13, 13, ")")], start=4):
            c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
                {"range": {"start": pos(9, first), "end": pos(9, last)}, "text": text}]})
        n = c.wait_for(lambda n: n.get("method") == "textDocument/publishDiagnostics")
        assert n["params"]["version"] == 6 and n["params"]["diagnostics"] == []
        with pytest.raises(TimeoutError):
            c.wait_for(lambda n: n.get("method") == "textDocument/publishDiagnostics", timeout=1)
        hover = c.request("textDocument/hover", {"textDocument": doc(uri), "position": pos(9, 0)})["result"]
        assert "q: f32[batch, 16]" in hover["contents"]["value"]

        # document symbols
        symbols = c.request("textDocument/documentSymbol", {"textDocument": doc(uri)})["result"]
        assert [s["name"] for s in symbols][:4] == ["x", "y", "w", "sq"]

        # semantic tokens: `input` is a keyword, `f32` a type
        data = c.request("textDocument/semanticTokens/full", {"textDocument": doc(uri)})["result"]["data"]
        assert data[:5] == [0, 0, 5, 0, 0] and data[10:15] == [0, 3, 3, 1, 0]

        # a request the server cannot answer is an error, and the session goes on
        bad = c.request("textDocument/hover", {"textDocument": doc("file:///no/such/file.dl"),
                                               "position": pos(0, 0)})
        assert "error" in bad or bad["result"] is None
        hover = c.request("textDocument/hover", {"textDocument": doc(uri), "position": pos(0, 6)})["result"]
        assert "x: f32[batch, 4]" in hover["contents"]["value"]

        assert c.request("shutdown")["result"] is None
        c.notify("exit")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
