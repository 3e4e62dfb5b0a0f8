"""wengert: deep-learning programs as small .dl files."""
from .dsl.diagnostics import Diagnostic, DiagnosticError
from .program import Program, compile, load
from .runtime.gradcheck import GradCheckError, check_grads

__all__ = ["Diagnostic", "DiagnosticError", "GradCheckError", "Program", "check_grads", "compile", "load"]
__version__ = "0.1.0"
