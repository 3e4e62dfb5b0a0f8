"""Values typed as text for a program's inputs and params: the CLI's `-i NAME=VALUE` and
`wengert inspect`'s `:set NAME=VALUE` (a literal, `file.npy` or `file.npz:KEY`)."""
from __future__ import annotations

import ast as pyast
from typing import Any

import numpy as np

from .diagnostics import Diagnostic, DiagnosticError


def parse_inputs(items: tuple[str, ...]) -> dict[str, Any]:
    """`-i NAME=VALUE`, `-i NAME=file.npy`, `-i NAME=file.npz:KEY` -> arrays."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise usage_error(f"`-i {item}`: expected NAME=VALUE, NAME=file.npy or NAME=file.npz:KEY")
        try:
            if text.endswith(".npy"):
                out[name] = np.load(text, allow_pickle=False)
            elif ".npz:" in text:
                path, _, key = text.rpartition(":")
                with np.load(path, allow_pickle=False) as archive:
                    if key not in archive.files:
                        raise usage_error(f"input `{name}`: {path} has no array `{key}` (it has {', '.join(archive.files)})")
                    out[name] = archive[key]
            else:
                lowered = text.replace("true", "True").replace("false", "False")
                out[name] = np.asarray(pyast.literal_eval(lowered))
        except (OSError, ValueError, SyntaxError) as e:
            raise usage_error(f"input `{name}`: cannot read `{text}`: {e}") from None
    return out


def usage_error(message: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.plain("wengert", message)])
