"""Syntax highlighting: the Pygments lexer (`pygmentize -l wengert`), and the VS Code extension's
manifest and TextMate grammar."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String

from wengert.dsl.highlight import WengertLexer

ROOT = Path(__file__).resolve().parent.parent


def tokens(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in WengertLexer().get_tokens(text) if v.strip()]


def test_the_token_classes_of_a_model():
    lines = (ROOT / "models" / "moons.dl").read_text().split("\n")

    def first(prefix: str) -> str:
        return next(line for line in lines if line.startswith(prefix))

    P = Punctuation
    assert tokens(first("input x")) == [(Keyword.Declaration, "input"), (Name, "x"), (P, ":"), (Keyword.Type, "f64"),
                                        (P, "["), (Name, "batch"), (P, ","), (Number.Integer, "2"), (P, "]")]
    assert tokens(first("param W1")) == [
        (Keyword.Declaration, "param"), (Name, "W1"), (P, ":"), (Keyword.Type, "f64"), (P, "["),
        (Number.Integer, "2"), (P, ","), (Number.Integer, "1000"), (P, "]"), (Operator, "="), (Name.Builtin, "normal"),
        (P, "("), (Name.Attribute, "mean"), (Operator, "="), (Number.Integer, "0"), (P, ","),
        (Name.Attribute, "std"), (Operator, "="), (Number.Integer, "1"), (P, ")")]
    assert [t for t, _ in tokens(first("z1"))] == [Name, Operator, Name, Operator, Name, Operator, Name]
    assert tokens(first("reg_lambda")) == [(Name, "reg_lambda"), (Operator, "="), (Number.Float, "0.01")]
    data = {v: t for t, v in tokens(first("data (train"))}
    assert data["data"] == Keyword.Declaration and data["train"] is Name and data["moons"] == Name.Builtin
    assert data["examples"] == Name.Attribute and data["|>"] == Operator
    block = tokens("\n".join(lines[lines.index(first("train {")):]))
    assert block[0] == (Keyword.Declaration, "train")
    assert (Name.Attribute, "data") in block and (Name, "train") in block and (Name.Builtin, "adam") in block
    assert (Keyword.Constant, "true") in block and (Name.Builtin, "accuracy") in block
    assert tokens('# a comment\nimport "lib.dl"') == [(Comment.Single, "# a comment"),
                                                     (Keyword.Declaration, "import"), (String.Double, '"lib.dl"')]
    layer = {v: t for t, v in tokens("layer Block(x, units) { h = Dense(x, units); return relu(h) }")}
    assert layer["Block"] == Name.Function and layer["Dense"] == Name.Class and layer["relu"] == Name.Builtin
    assert layer["return"] == Keyword.Declaration


def test_pygmentize_highlights_a_model(tmp_path):
    if "wengert" not in {e.name for e in metadata.entry_points(group="pygments.lexers")}:
        pytest.skip("the installed wengert predates its pygments entry point (pip install -e .)")
    exe = shutil.which("pygmentize")
    cmd = [exe] if exe else [sys.executable, "-m", "pygments"]
    out = subprocess.run(cmd + ["-l", "wengert", "-f", "html", str(ROOT / "models" / "ch09" / "listing_9_01.dl")],
                         capture_output=True, text=True, check=True).stdout
    assert '<span class="kd">input</span>' in out and '<span class="kt">f64</span>' in out
    assert '<span class="nb">sqrt</span>' in out and '<span class="c1"># Listing 9-1' in out
    alias = subprocess.run(cmd + ["-l", "dl", "-f", "html"], input="seed 0\n", capture_output=True, text=True,
                           check=True).stdout
    assert '<span class="kd">seed</span>' in alias


def test_the_vscode_extension_declares_the_language_and_the_server():
    ext = ROOT / "editors" / "vscode"
    manifest = json.loads((ext / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "wengert" and language["extensions"] == [".dl"]
    assert manifest["contributes"]["configuration"]["properties"]["wengert.server.command"]["default"] == \
        ["wengert", "lsp"]
    (grammar,) = manifest["contributes"]["grammars"]
    tm = json.loads((ext / grammar["path"]).read_text())
    assert tm["scopeName"] == grammar["scopeName"] == "source.wengert"
    rules = {name: rule for name, rule in tm["repository"].items()}
    for rule in rules.values():  # the patterns are regular expressions Python reads the same way
        for r in rule.get("patterns", [rule]):
            re.compile(r["match"])
    keyword = re.compile(rules["keyword"]["patterns"][0]["match"])
    assert keyword.search("  input x: f32[2]") and not keyword.search("  data = blobs")
    assert not keyword.search("moons(seed=1)")
