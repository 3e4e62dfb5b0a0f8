"""Source files and spans: where in a .dl file something was written."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

NOT_REGULAR = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


@attrs.frozen
class Source:
    """The text of one .dl file (or of a string compiled from Python)."""

    path: str
    text: str

    @property
    def shown(self) -> bool:
        """Whether diagnostics may quote this source's lines: a .dl program or text typed or compiled from
        Python (`<string>`, `<inspect>`, the stdlib), never a file of another kind (a key, a data file)."""
        return self.path.endswith(".dl") or self.path.startswith("<")

    @property
    def lines(self) -> list[str]:
        # Only \n ends a line, as for the parser (splitlines would also split at \f, \v, U+2028).
        return [line.rstrip("\r") for line in self.text.split("\n")] or [""]

    def line(self, number: int) -> str:
        lines = self.lines
        return lines[number - 1] if 1 <= number <= len(lines) else ""


@attrs.frozen
class Span:
    """A region of a source file; lines and columns count from 1, end is exclusive."""

    source: Source = attrs.field(eq=False, repr=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def file(self) -> str:
        return self.source.path

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of self to the end of other."""
        return Span(self.source, self.line, self.column, other.end_line, other.end_column)


def file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be read as a file ("is a FIFO (named pipe), not a regular file"), or None when it is
    a regular file or does not exist (the caller says "no such file" its own way). Devices, FIFOs and
    directories are refused before opening them: /dev/zero never ends and a FIFO blocks forever."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except UnicodeEncodeError:
        return "the file name is not valid text (it has an unpaired surrogate)"
    except ValueError:
        return "the file name contains a NUL character"
    except OSError as e:
        return f"cannot read it: {e.strerror}"
    kind = NOT_REGULAR.get(stat.S_IFMT(mode))
    return None if kind is None and stat.S_ISREG(mode) else f"is {kind or 'not a regular file'}, not a regular file"


def read_source(path: str | Path) -> Source:
    """Read a .dl file, refusing binary or non-UTF-8 content and anything but a regular file with a diagnostic."""
    from . import Diagnostic, DiagnosticError

    path = Path(path)
    shown = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    problem = file_problem(path)
    if problem is not None:
        raise DiagnosticError([Diagnostic.plain(shown, problem)])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DiagnosticError([Diagnostic.plain(shown, "no such file")]) from None
    except OSError as e:
        raise DiagnosticError([Diagnostic.plain(shown, f"cannot read file: {e.strerror}")]) from None
    if b"\x00" in raw[:8192]:
        raise DiagnosticError([Diagnostic.plain(shown, "binary file (contains NUL bytes), not a .dl program")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        src = Source(shown, raw.decode("utf-8", errors="replace"))
        raise DiagnosticError(
            [Diagnostic(Span(src, line, column, line, column + 1), f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x})")]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return Source(shown, text)
