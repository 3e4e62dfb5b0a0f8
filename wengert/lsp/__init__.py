"""`wengert lsp`: the language server (docs/editors.md). analysis.py runs the checker on an
editor's text, index.py resolves its names, reference.py has the built-ins' signatures and docs,
features.py answers the requests, server.py is the protocol (pygls, the `lsp` extra)."""
