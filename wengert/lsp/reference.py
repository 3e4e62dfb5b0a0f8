"""Signatures and one-line docs of the built-ins and the standard library's fns and layers, for
hover and completion. Signatures come from the checker's tables (the `@builtin` registry, the
`fn`/`layer` definitions); the docs from docs/language.md, the living language reference (the
bullet of §7 or §8 that names the function), when the package runs from a checkout."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..dsl import ast
from ..dsl.builtins import Builtin

LANGUAGE_MD = Path(__file__).resolve().parents[2] / "docs" / "language.md"
SECTIONS = ("## 7.", "## 8.")  # layers and built-in operations


def signature(item: Any) -> str:
    """`sum(x, axis=None, keepdims=false)` for a Builtin; `Dense(x, units)` for a FnDef."""
    if isinstance(item, Builtin):
        parts = [n if n not in item.defaults else f"{n}={_literal(item.defaults[n])}" for n in item.names]
        return f"{item.name}({', '.join(parts)})"
    if isinstance(item, ast.FnDef):
        parts = []
        for p in item.params:
            default = ""
            if p.default is not None:
                line = p.span.source.line(p.default.span.line)
                default = "=" + line[p.default.span.column - 1:p.default.span.end_column - 1] \
                    if p.default.span.line == p.default.span.end_line else "=..."
            parts.append(p.name + default)
        return f"{item.name}({', '.join(parts)})"
    return str(item)


def arguments(item: Any) -> list[str]:
    if isinstance(item, Builtin):
        return list(item.names)
    if isinstance(item, ast.FnDef):
        return [p.name for p in item.params]
    return []


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    return "none" if v is None else str(v)


@lru_cache(maxsize=None)
def _bullets(path: Path = LANGUAGE_MD) -> tuple[tuple[str, str], ...]:
    """(section, bullet) for the bullets of the reference's sections on layers and built-ins."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ()
    out: list[list[str]] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = next((s for s in SECTIONS if line.startswith(s)), "")
        elif section and re.match(r"\s*- ", line):
            out.append([section, line.strip()[2:]])
        elif section and out and line.startswith("  ") and line.strip() and out[-1][1]:
            out[-1][1] += " " + line.strip()
        elif out:
            out.append([section, ""])  # a blank or unindented line ends the bullet
    return tuple((s, b) for s, b in out if b)


@lru_cache(maxsize=None)
def doc(name: str) -> str:
    """One line about `name` from docs/language.md, or ''."""
    bullets = sorted(_bullets(), key=lambda sb: sb[0] != "## 8.")  # the built-ins' section first
    for _, bullet in bullets:
        own = re.match(rf"`{re.escape(name)}\(", bullet)
        if own:  # a layer's own bullet: "`Dense(x, units)`: `x @ W + b`; params ..."
            rest = bullet[_closing(bullet, own.end() - 1) + 1:].lstrip("`").lstrip(":, ")
            return _first_sentence(rest)
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w])")
    for _, bullet in bullets:
        mention = next((m for m in re.finditer(r"`([^`]*)`", bullet) if word.search(m.group(1))), None)
        if mention is None:
            continue
        head = re.match(r"(.*?):\s", bullet)
        parts = [head.group(1) if head and head.end() <= mention.start() else ""]
        if re.fullmatch(rf"{re.escape(name)}(\(.*\))?", mention.group(1)):
            after = bullet[mention.end():]
            if after.lstrip().startswith("("):  # "`dropout(x, rate)` (identity outside training)"
                at = len(after) - len(after.lstrip())
                parts.append(after[at:_closing(after, at) + 1])
        return " ".join(p for p in parts if p) or _first_sentence(bullet)
    return ""


def _closing(text: str, at: int) -> int:
    """The index of the bracket closing the one at `at` (or the end of the text)."""
    depth = 0
    for i in range(at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text) - 1


def _first_sentence(text: str, limit: int = 200) -> str:
    text = text.split("```")[0].rstrip(": ")  # not the formulas of a code block
    m = re.match(r"(.+?\.)(\s|$)", text)
    text = (m.group(1) if m else text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
