"""`wengert lsp`: the Language Server Protocol server on stdio (pygls).

Each open document is checked by the real checker (analysis.py): on open at once, on every
change after a pause of `DEBOUNCE_S` (typing does not start a check per keystroke); its
diagnostics, and those of the files it imports, are published by file, with each note as
related information. Requests (hover, definition, ...) use the analysis of the document's
current version, made on demand if the pause has not ended. A handler that fails answers its
request with an error (pygls does that) and the session goes on.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsprotocol import types as lsp
from pygls import uris
from pygls.lsp.server import LanguageServer

from .. import diagnostics as dg
from . import features
from .analysis import Analysis, analyse, real_path

DEBOUNCE_S = 0.3
SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
            "note": lsp.DiagnosticSeverity.Information}
SYMBOL_KIND = {"input": lsp.SymbolKind.Variable, "param": lsp.SymbolKind.Field, "state": lsp.SymbolKind.Field,
               "value": lsp.SymbolKind.Variable, "arg": lsp.SymbolKind.Variable, "loop": lsp.SymbolKind.Variable,
               "fn": lsp.SymbolKind.Function, "layer": lsp.SymbolKind.Class, "data": lsp.SymbolKind.Struct,
               "train": lsp.SymbolKind.Event, "import": lsp.SymbolKind.Module}
COMPLETION_KIND = {"fn": lsp.CompletionItemKind.Function, "builtin": lsp.CompletionItemKind.Function,
                   "layer": lsp.CompletionItemKind.Class, "argument": lsp.CompletionItemKind.Property,
                   "key": lsp.CompletionItemKind.Property, "keyword": lsp.CompletionItemKind.Keyword,
                   "dtype": lsp.CompletionItemKind.TypeParameter, "param": lsp.CompletionItemKind.Field,
                   "state": lsp.CompletionItemKind.Field, "data": lsp.CompletionItemKind.Struct,
                   "train": lsp.CompletionItemKind.Event}
log = logging.getLogger("wengert.lsp")


class WengertServer(LanguageServer):
    def __init__(self) -> None:
        from .. import __version__
        super().__init__("wengert", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}  # uri -> the latest analysis
        self.parsed: dict[str, Analysis] = {}  # uri -> the latest analysis of a text that parsed
        self.published: dict[str, set[str]] = {}  # uri -> files it published diagnostics for
        self.timers: dict[str, asyncio.TimerHandle] = {}

    def analysis(self, uri: str) -> Analysis:
        doc = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached.version == doc.version and doc.version is not None:
            return cached
        a = analyse(doc.path or uri, doc.source, doc.version)
        self.analyses[uri] = a
        if a.parsed:
            self.parsed[uri] = a
        return a

    def publish(self, uri: str) -> None:
        """Check a document and publish the diagnostics of every file it has mistakes in (or had)."""
        self.timers.pop(uri, None)
        a = self.analysis(uri)
        before = self.published.get(uri, set())
        self.published[uri] = {self.target(uri, path) for path in a.diagnostics}
        for target in sorted(before | self.published[uri]):
            self.send(target)

    def target(self, uri: str, path: str) -> str:
        """The URI of a file a document's analysis has diagnostics for (the document's own URI for it)."""
        return uri if Path(path) == Path(self.analyses[uri].source.path).absolute() else uris.from_fs_path(path)

    def send(self, target: str) -> None:
        """Publish a file's diagnostics: what the analyses of every open document say about it
        (a library imported by two open programs gets the mistakes both calls reveal)."""
        found: list[lsp.Diagnostic] = []
        seen: set[tuple[str, str]] = set()
        for uri in self.published:
            for path, diagnostics in self.analyses[uri].diagnostics.items():
                if self.target(uri, path) != target:
                    continue
                for d in diagnostics:
                    if (d.location, d.message) not in seen:
                        seen.add((d.location, d.message))
                        found.append(to_lsp_diagnostic(d, uri))
        own = self.analyses.get(target)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=target, diagnostics=found, version=own.version if own is not None else None))

    def publish_later(self, uri: str) -> None:
        old = self.timers.pop(uri, None)
        if old is not None:
            old.cancel()
        self.timers[uri] = asyncio.get_running_loop().call_later(DEBOUNCE_S, self._publish_safely, uri)

    def _publish_safely(self, uri: str) -> None:
        try:
            self.publish(uri)
        except Exception:  # a checker bug must not end the session; it is logged for a report
            log.exception("checking %s failed", uri)
            self.window_log_message(lsp.LogMessageParams(lsp.MessageType.Error, f"wengert: checking {uri} failed"))


server = WengertServer()


# ---------------------------------------------------------------- positions
def to_column(text: str, character: int) -> int:
    """An LSP character offset (UTF-16 code units) on a line -> a 1-based column in characters."""
    units = 0
    for i, ch in enumerate(text):
        if units >= character:
            return i + 1
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text) + 1


def to_character(text: str, column: int) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text[: column - 1])


def to_range(span: dg.Span) -> lsp.Range:
    start = lsp.Position(span.line - 1, to_character(span.source.line(span.line), span.column))
    end = lsp.Position(span.end_line - 1, to_character(span.source.line(span.end_line), span.end_column))
    return lsp.Range(start, end)


def to_location(span: dg.Span) -> lsp.Location:
    return lsp.Location(uris.from_fs_path(real_path(span.source.path)), to_range(span))


def position(ls: WengertServer, uri: str, pos: lsp.Position) -> tuple[Analysis, int, int]:
    a = ls.analysis(uri)
    return a, pos.line + 1, to_column(a.source.line(pos.line + 1), pos.character)


def to_lsp_diagnostic(d: dg.Diagnostic, uri: str) -> lsp.Diagnostic:
    where = to_range(d.span) if d.span is not None else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    related = [lsp.DiagnosticRelatedInformation(to_location(span) if span is not None
                                                else lsp.Location(uri, where), note) for span, note in d.notes]
    return lsp.Diagnostic(where, d.message, severity=SEVERITY.get(d.severity, lsp.DiagnosticSeverity.Error),
                          source="wengert", related_information=related or None)


# ---------------------------------------------------------------- document sync
@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: WengertServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls._publish_safely(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: WengertServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.publish_later(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: WengertServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls._publish_safely(params.text_document.uri)  # files importing it are checked again on their next change


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: WengertServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    timer = ls.timers.pop(uri, None)
    if timer is not None:
        timer.cancel()
    touched = ls.published.pop(uri, set())
    ls.analyses.pop(uri, None)
    ls.parsed.pop(uri, None)
    for target in sorted(touched):  # what the other open documents still say about them
        ls.send(target)


# ---------------------------------------------------------------- requests
@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: WengertServer, params: lsp.HoverParams) -> lsp.Hover | None:
    a, line, col = position(ls, params.text_document.uri, params.position)
    text = features.hover(a, line, col)
    if text is None:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: WengertServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
    a, line, col = position(ls, params.text_document.uri, params.position)
    target = features.import_target(a, line, col)
    if target is not None:
        return [lsp.Location(uris.from_fs_path(target), lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))]
    return [to_location(loc.span) for loc in features.definition(a, line, col)]


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def references(ls: WengertServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
    a, line, col = position(ls, params.text_document.uri, params.position)
    return [to_location(loc.span) for loc in features.references(a, line, col, params.context.include_declaration)]


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: WengertServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
    a, line, col = position(ls, params.text_document.uri, params.position)
    try:
        sym = features.rename_target(a, line, col)
    except features.RenameError:
        return None
    found = a.index.at(line, col)
    return to_range(found.span if found is not None else sym.span)


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
def rename(ls: WengertServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit:
    from pygls.exceptions import JsonRpcInvalidRequest
    uri = params.text_document.uri
    a, line, col = position(ls, uri, params.position)
    try:
        edits = features.rename(a, line, col, params.new_name)
    except features.RenameError as e:
        raise JsonRpcInvalidRequest(str(e)) from None
    return lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(to_range(span), new) for span, new in edits]})


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbols(ls: WengertServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    def convert(o: features.Outline) -> lsp.DocumentSymbol:
        return lsp.DocumentSymbol(o.name, SYMBOL_KIND.get(o.kind, lsp.SymbolKind.Variable), to_range(o.span),
                                  to_range(o.selection), detail=o.detail or o.kind,
                                  children=[convert(c) for c in o.children])
    return [convert(o) for o in features.outline(ls.analysis(params.text_document.uri))]


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["(", ",", "|"]))
def completion(ls: WengertServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    a, line, col = position(ls, uri, params.position)
    if not a.parsed and uri in ls.parsed:
        a = ls.parsed[uri]  # a half-typed line: the names of the last text that parsed
    text = ls.workspace.get_text_document(uri).source
    items = [lsp.CompletionItem(c.label, kind=COMPLETION_KIND.get(c.kind, lsp.CompletionItemKind.Variable),
                                detail=c.detail or None, documentation=c.doc or None,
                                insert_text=c.insert, sort_text=f"{c.rank}{c.label}")
             for c in features.completions(a, text, line, col)]
    return lsp.CompletionList(is_incomplete=False, items=items)


LEGEND = lsp.SemanticTokensLegend(token_types=list(features.TOKEN_TYPES), token_modifiers=[])


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
def semantic_tokens(ls: WengertServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    lines = doc.source.split("\n")
    data: list[int] = []
    last_line, last_char = 0, 0
    for line, col, length, kind in features.semantic_tokens(doc.source):
        text = lines[line - 1]
        char = to_character(text, col)
        width = to_character(text, col + length) - char
        data += [line - 1 - last_line, char - last_char if line - 1 == last_line else char, width,
                 features.TOKEN_TYPES.index(kind), 0]
        last_line, last_char = line - 1, char
    return lsp.SemanticTokens(data=data)


def main() -> None:
    """Serve on stdin/stdout until the client says `exit`."""
    logging.basicConfig(level=logging.WARNING, format="wengert lsp: %(message)s")
    server.start_io()
