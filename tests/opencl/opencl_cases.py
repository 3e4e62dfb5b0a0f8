"""The case tables of tests/test_gradients.py (every §8 built-in, broadcasting shape groups),
loaded once for the OpenCL tests, so that both backends are checked on the same programs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "test_gradients.py"


def load():
    name = "_wengert_gradient_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
