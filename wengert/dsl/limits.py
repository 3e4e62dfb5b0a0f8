"""The checker's budgets: what a program may ask for before anything is allocated or inlined.

A value's size is checked when its equation is made (`Builder.emit`), a param's when it is declared,
both against the machine's memory; static lists (`unit_forget_bias`) against MAX_STATIC_ITEMS;
inlining of fns and layers against MAX_CALLS calls and MAX_EQUATIONS equations; a source file against MAX_TOKENS."""
from __future__ import annotations

import math
import os
from typing import Any, Iterator

import attrs

MAX_STATIC_ITEMS = 10_000_000  # numbers in a list the checker builds itself (a literal, unit_forget_bias)
MAX_EQUATIONS = 1_000_000  # equations one program may make (fn and layer bodies are copied at each call)
MAX_CALLS = 200_000  # fn and layer calls one program may inline
MAX_TOKENS = 250_000  # in one .dl file (a long list of numbers is one): ~20 s of parsing on a slow machine


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def human_bytes(n: int) -> str:
    units = ("B", "KB", "MB", "GB", "TB", "PB", "EB")
    power = 0
    while n >= 1000 ** (power + 1) and power < len(units) - 1:
        power += 1
    if power == 0:
        return f"{n} B"
    if n >= 1000 ** (power + 1):
        return f"more than {1000 ** len(units) // 1000 ** power:,} {units[power]}"
    return f"{n * 10 // 1000 ** power / 10:.1f} {units[power]}"


def _at_least(d: Any) -> int | None:
    """A lower bound of a dim over sizes >= 1 of its symbols: exact for ints, 1 for a symbol, and the
    bound of a sum or product of such dims (`batch + 2**32`); None where no simple bound holds."""
    from ..runtime.types import DimOp, Sym
    if isinstance(d, int):
        return d
    if isinstance(d, Sym):
        return 1
    if isinstance(d, DimOp) and d.op in ("+", "*"):
        a, b = _at_least(d.a), _at_least(d.b)
        if a is not None and b is not None and a >= 0 and b >= 0:
            return a + b if d.op == "+" else a * b
    return None


def too_large(shape: tuple, itemsize: int, memory: int) -> str | None:
    """Why a tensor of `shape` cannot exist on this machine, or None: static dims exactly, symbolic ones
    by their least size (every symbol 1), so `pad(x, [[2**32, 0]])` on an input is refused too."""
    bounds = [_at_least(d) for d in shape]
    if any(b is None for b in bounds):
        return None
    size = math.prod(bounds) * itemsize
    if size <= memory:
        return None
    least = "" if all(isinstance(d, int) for d in shape) else "at least "
    return f"needs {least}{human_bytes(size)}, more than this machine's memory ({human_bytes(memory)})"


def _calls(node: Any) -> Iterator[Any]:
    """Every call of a name inside an AST node (not inside nested fn definitions)."""
    from . import ast
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (list, tuple)):
            stack.extend(n)
            continue
        if not attrs.has(type(n)) or isinstance(n, ast.FnDef) and n is not node:
            continue
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            yield n
        stack.extend(getattr(n, f.name) for f in attrs.fields(type(n)) if f.name != "span")


def inlined_copies(stmts: Any, fns: dict[str, Any]) -> tuple[str, int, Any] | None:
    """Before lowering: how many copies of each fn the program's calls would inline (each call copies the
    callee's body, calls in it included). Returns (the fn copied most, its copies, the top-level call that
    makes most of them) when the total is beyond MAX_CALLS, else None. Read from the syntax, so a call in
    a loop body counts once, as it is lowered once."""
    memo: dict[str, dict[str, int]] = {}

    def inside(name: str, active: frozenset) -> dict[str, int]:
        """Copies of each fn made by one call of `name` (itself included)."""
        if name in memo:
            return memo[name]
        counts = {name: 1}
        if name not in active:  # recursion is reported by the checker itself
            for call in _calls(fns[name]):
                if call.func.id in fns:
                    for k, v in inside(call.func.id, active | {name}).items():
                        counts[k] = counts.get(k, 0) + v
        memo[name] = counts
        return counts

    totals: dict[str, int] = {}
    worst: dict[str, tuple[int, Any]] = {}
    for call in _calls(list(stmts)):
        if call.func.id in fns:
            for k, v in inside(call.func.id, frozenset()).items():
                totals[k] = totals.get(k, 0) + v
                if v > worst.get(k, (0, None))[0]:
                    worst[k] = (v, call)
    if sum(totals.values()) <= MAX_CALLS:
        return None
    most = max(totals, key=totals.__getitem__)
    return most, totals[most], worst[most][1]


def count_text(n: int) -> str:
    """1,048,576 as 2^20; other counts with separators."""
    return f"2^{n.bit_length() - 1}" if n >= 1024 and n & (n - 1) == 0 else f"{n:,}"
