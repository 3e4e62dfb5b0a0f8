"""One check of a document as the editor holds it: the checker's diagnostics, by file (the
document's and those of the files it imports), and the document's `Index`."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import attrs

from ..diagnostics import Diagnostic, DiagnosticError, Source
from ..dsl.builder import STDLIB_PREFIX
from ..dsl.lower import lower_source
from .index import Index, Recorder


@attrs.define
class Analysis:
    source: Source
    diagnostics: dict[str, list[Diagnostic]]  # absolute path -> its diagnostics (the document's always there)
    index: Index
    parsed: bool  # False when the text does not parse (the index is then empty)
    version: int | None = None


def analyse(path: str, text: str, version: int | None = None) -> Analysis:
    source = Source(path, text)
    recorder = Recorder()
    try:
        module = lower_source(source, recorder)
        found = list(module.notes)
    except DiagnosticError as e:
        found = list(e.diagnostics)
    by_file: dict[str, list[Diagnostic]] = {os.path.abspath(path): []}
    for d in found:
        by_file.setdefault(file_of(d, path), []).append(d)
    return Analysis(source, by_file, Index(source, recorder), recorder.tree is not None, version)


def file_of(d: Diagnostic, document: str) -> str:
    """The file a diagnostic is about (one without a span: the document, at its first line)."""
    if d.span is None:
        return os.path.abspath(document)
    return real_path(d.span.source.path)


def real_path(path: str) -> str:
    """A file on disk for a span's path: the standard library's `<stdlib>/layers.dl` included."""
    if path.startswith(STDLIB_PREFIX):
        return str(Path(str(resources.files("wengert.dsl").joinpath("stdlib", path[len(STDLIB_PREFIX):]))))
    return os.path.abspath(path)
