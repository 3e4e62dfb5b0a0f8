"""Exporting a trained program for other software: `to_onnx` lowers the inference graph of named
values to an ONNX model (lowering.py walks the IR, rules.py has a lowering rule per primitive)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .lowering import OPSET, ExportError, export

__all__ = ["OPSET", "ExportError", "export", "to_onnx"]


def to_onnx(prog, names: list[str], path: str | Path, opset: int = OPSET):
    """Write the ONNX model of `names` to `path` (atomically); returns the model."""
    model = export(prog, names, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return model
