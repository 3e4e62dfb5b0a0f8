"""`%%wengert NAME [--device D]`: check the cell as a `.dl` program and bind the `Program` to NAME.

A mistake prints its diagnostics (`<NAME>:line:col: error: ...`, lines counted in the cell, the source line and a caret),
without a traceback, and binds nothing (NAME keeps what it held). Paths in the cell (`import`, data files) are relative to the
notebook's working directory."""
from __future__ import annotations

import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..diagnostics import DiagnosticError
from ..program import compile as compile_program


@magics_class
class WengertMagics(Magics):
    @magic_arguments()
    @argument("name", help="the notebook variable to bind the checked Program to")
    @argument("--device", default="cpu", help="cpu (default) or opencl[:P:D]")
    @cell_magic
    def wengert(self, line: str, cell: str):
        """Check the cell's `.dl` program and bind it to NAME (`%%wengert net`)."""
        args = parse_argstring(self.wengert, line)
        if not args.name.isidentifier():
            raise UsageError(f"%%wengert NAME: `{args.name}` is not a Python name")
        try:
            # a blank first line stands for the `%%wengert` line, so lines count as the cell shows them
            prog = compile_program("\n" + cell, device=args.device, path=f"<{args.name}>")
        except DiagnosticError as e:
            print("\n".join(d.render() for d in e.diagnostics), file=sys.stderr)
            return None
        for note in prog.module.notes:
            print(note.render(), file=sys.stderr)
        self.shell.user_ns[args.name] = prog
        return prog
