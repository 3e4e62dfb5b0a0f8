"""wengert: deep-learning programs as small .dl files."""
from . import parallel  # noqa: F401,E402  (registers hogwild and downpour with wengert.train.engines)
from .diagnostics import Diagnostic, DiagnosticError
from .program import Program, compile, load
from .runtime.gradcheck import GradCheckError, check_grads

__all__ = ["Diagnostic", "DiagnosticError", "GradCheckError", "Program", "check_grads", "compile", "load"]
__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """`%load_ext wengert` in IPython/Jupyter: the `%%wengert NAME` cell magic (wengert/notebook/)."""
    from .notebook import load_ipython_extension as load
    load(ipython)
