"""wengert: deep-learning programs as small .dl files."""
from .dsl.diagnostics import Diagnostic, DiagnosticError

__all__ = ["Diagnostic", "DiagnosticError"]
__version__ = "0.1.0"
