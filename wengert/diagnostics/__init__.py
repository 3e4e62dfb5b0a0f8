"""Diagnostics, the ground floor every part of wengert may use: user mistakes reported as
`file:line:col: error: message` with the source line and a caret (`Diagnostic`, collected by a
`Reporter`, raised as a `DiagnosticError`), and where in a source they were made (`Source`,
`Span`, source.py). It imports nothing of wengert. Each layer's own error type (ShapeError,
DataError, FeedError, AnomalyError, ...) lives with its layer, built on `DiagnosticError`."""
from __future__ import annotations

import difflib
import re
from typing import Iterable

import attrs

from .source import Source, Span, file_problem, read_source

__all__ = ["Diagnostic", "DiagnosticError", "Reporter", "Source", "Span", "did_you_mean", "file_problem",
           "ignored_codes", "read_source"]


@attrs.frozen
class Diagnostic:
    span: Span | None
    message: str
    severity: str = "error"
    file: str | None = None  # used when there is no span (a file that cannot be read)
    notes: tuple[tuple[Span | None, str], ...] = ()
    code: str = ""  # a warning's stable name, as silenced by `# wengert: ignore[CODE]`

    @classmethod
    def plain(cls, file: str, message: str) -> "Diagnostic":
        return cls(None, message, file=file)

    def with_note(self, span: Span | None, message: str) -> "Diagnostic":
        return attrs.evolve(self, notes=self.notes + ((span, message),))

    @property
    def location(self) -> str:
        if self.span is None:
            return self.file or "<unknown>"
        return str(self.span)

    def render(self) -> str:
        message = f"{self.message} [{self.code}]" if self.code else self.message
        parts = [_render_one(self.span, self.severity, message, self.file)]
        for span, note in self.notes:
            parts.append(_render_one(span, "note", note, self.file))
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.render()


MAX_SHOWN = 120  # characters of a source line shown under a diagnostic


def _render_one(span: Span | None, severity: str, message: str, file: str | None) -> str:
    if span is None:
        return f"{file or '<unknown>'}: {severity}: {message}"
    head = f"{span}: {severity}: {message}"
    if not span.source.shown:
        return head  # never quote a file that is not a program (`wengert check secret.txt`, `import "/etc/x"`)
    text = span.source.line(span.line)
    if not text and span.line > len(span.source.lines):
        return head
    width = max(1, (span.end_column - span.column) if span.end_line == span.line else len(text) - span.column + 1)
    start = span.column - 1
    if len(text) > MAX_SHOWN:  # show a window of a very long line around the span
        lo = max(0, start - MAX_SHOWN // 2)
        shown = text[lo: lo + MAX_SHOWN]
        width = min(width, len(shown) - (start - lo))
        text = ("..." if lo else "") + shown + ("..." if lo + MAX_SHOWN < len(text) else "")
        start = start - lo + (3 if lo else 0)
    # Tabs in the prefix keep their width so the caret lines up under the span.
    prefix = "".join(c if c == "\t" else " " for c in text[:start])
    return f"{head}\n    {text}\n    {prefix}{'^' * max(1, width)}"


class DiagnosticError(Exception):
    """One or more user mistakes; the CLI prints them and exits with status 2."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class Reporter:
    """Collects diagnostics so that independent mistakes are reported together."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, *notes: tuple[Span | None, str]) -> Diagnostic:
        d = Diagnostic(span, message, notes=tuple(notes))
        if not any(x.span == d.span and x.location == d.location and x.message == d.message for x in self.diagnostics):
            self.diagnostics.append(d)  # one mistake inside an inlined fn is reported once
        return d

    def note(self, span: Span | None, message: str) -> None:
        self.diagnostics.append(Diagnostic(span, message, severity="note"))

    def warning(self, span: Span | None, code: str, message: str, *notes: tuple[Span | None, str]) -> None:
        """A likely mistake that does not stop the program, unless its line says
        `# wengert: ignore[CODE]` (codes comma separated)."""
        if span is not None and code in ignored_codes(span.source.line(span.line)):
            return
        d = Diagnostic(span, message, severity="warning", notes=tuple(notes), code=code)
        if d not in self.diagnostics:
            self.diagnostics.append(d)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def make_warnings_errors(self) -> None:
        """`--strict`: every warning becomes an error."""
        self.diagnostics = [attrs.evolve(d, severity="error") if d.severity == "warning" else d
                            for d in self.diagnostics]

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def raise_if_failed(self) -> None:
        if self.failed:
            raise DiagnosticError(self.diagnostics)


_IGNORE = re.compile(r"#.*\bwengert:\s*ignore\[([A-Za-z0-9_\-,\s]*)\]")


def ignored_codes(line: str) -> set[str]:
    """The warning codes a source line silences with `# wengert: ignore[code, ...]`."""
    m = _IGNORE.search(line)
    return {c.strip() for c in m.group(1).split(",")} if m else set()


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean `x`?)' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f" (did you mean `{close[0]}`?)" if close else ""
