"""`wengert inspect FILE`: an interactive session over a loaded program.

A `Session` holds one `Program`, the inputs set so far and a cache of checked `:eval`
expressions. Every command is a method registered in `COMMANDS` by `@command(...)` (its
usage, one-line description and example, which `:help` prints); `Session.execute(line)`
runs one line and never raises: a mistake prints its diagnostics (or a one-line message)
and the session goes on. `interact` is the prompt_toolkit front end (history, tab
completion of commands and names); `run_lines` reads commands from a file or a pipe and
echoes each one after `>>> ` before its output, so that a script's output reads as a
transcript.

`:eval EXPR` checks a second program: the original text plus one line `__eval__ = EXPR`,
so every name, fn and layer of the program is in scope. Its diagnostics are moved onto the
expression as typed (`<inspect>:1:COL: error: ...`); the checked program is cached per
expression text and runs with the session's inputs and a copy of the session's params.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import attrs
import numpy as np
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ..diagnostics import Diagnostic, DiagnosticError, Source, Span, did_you_mean
from ..feeds import parse_value
from ..runtime.ops import primal
from ..runtime.trace import _short

EVAL_NAME = "__eval__"
EVAL_PREFIX = f"{EVAL_NAME} = "
TYPED = "<inspect>"  # the file name of diagnostics inside a typed expression
PRECISION = 6  # digits after the point when values are printed
HISTORY_FILE = "~/.wengert_history"


class CommandError(Exception):
    """A one-line mistake in a command (wrong arguments, an unknown command)."""


@attrs.frozen
class Command:
    name: str
    method: Callable[[Session, str], None]
    usage: str
    summary: str
    example: str


COMMANDS: dict[str, Command] = {}
ALIASES = {"q": "quit", "exit": "quit", "h": "help", "?": "help"}


def command(usage: str, summary: str, example: str):
    """Register a `cmd_NAME` method as the command `:NAME`."""
    def register(fn):
        name = fn.__name__.removeprefix("cmd_")
        COMMANDS[name] = Command(name, fn, usage, summary, example)
        return fn
    return register


class Session:
    def __init__(self, program, inputs: dict[str, Any] | None = None, out: TextIO | None = None,
                 interactive: bool = False):
        self.program = program
        self.inputs: dict[str, np.ndarray] = {}
        self._out = out
        self.interactive = interactive
        self.done = False
        self._eval_cache: dict[str, Any] = {}  # expression text -> Program or the DiagnosticError it raised
        for name, value in (inputs or {}).items():
            self._set_input(name, value)

    @property
    def module(self):
        return self.program.module

    # ---------------------------------------------------------------- driving
    def emit(self, text: str = "") -> None:
        print(text, file=self._out or sys.stdout)

    def page(self, text: str) -> None:
        """Long output through a pager at a terminal, printed otherwise."""
        rows = shutil.get_terminal_size().lines
        if self.interactive and text.count("\n") + 1 > rows - 2:
            import pydoc
            pydoc.pager(text)
        else:
            self.emit(text)

    def execute(self, line: str) -> bool:
        """Run one line; False when it failed (its error has been printed)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        try:
            if line.startswith(":"):
                name, _, args = line[1:].partition(" ")
                if not name:
                    raise CommandError("a command name must follow `:`; :help lists the commands")
                name = ALIASES.get(name, name)
                cmd = COMMANDS.get(name)
                if cmd is None:
                    raise CommandError(f"unknown command `:{name}`" + did_you_mean(f":{name}", [f":{c}" for c in COMMANDS])
                                       + "; :help lists the commands")
                cmd.method(self, args.strip())
            else:
                self._bare(line)
            return True
        except DiagnosticError as e:
            for d in e.diagnostics:
                self.emit(d.render())
        except CommandError as e:
            self.emit(f"error: {e}")
        except KeyboardInterrupt:
            self.emit("interrupted")
        except Exception as e:  # noqa: BLE001 -- the session never ends in a traceback
            self.emit(f"internal error: {type(e).__name__}: {e}")
        return False

    def _bare(self, line: str) -> None:
        """A line without `:` is an expression to evaluate (`:eval` implied)."""
        word = line.split()[0]
        try:
            self.cmd_eval(line)
        except DiagnosticError as e:
            if ALIASES.get(word, word) not in COMMANDS:
                raise
            hint = Diagnostic(None, f"commands start with `:` (did you mean `:{line}`?)", "note", TYPED)
            raise DiagnosticError(e.diagnostics + [hint]) from None

    # ---------------------------------------------------------------- evaluating
    @command(":eval EXPR", "evaluate any expression (also a line without `:`)", ":eval sum(x1 ** 2)")
    def cmd_eval(self, args: str) -> None:
        self.emit(_format(self.evaluate(args)))

    def evaluate(self, expr: str) -> np.ndarray:
        expr = expr.strip()
        if not expr:
            raise CommandError("`:eval` needs an expression, such as `:eval sum(w ** 2)`")
        prog = self._eval_cache.get(expr)
        if prog is None:
            try:
                prog = self._check_expression(expr)
            except DiagnosticError as e:
                prog = e
            self._eval_cache[expr] = prog
        if isinstance(prog, DiagnosticError):
            raise prog
        current = self.program.params
        prog.set_params({n: v for n, v in current.items() if n in prog.module.params})
        return self._needing(lambda: prog.run(EVAL_NAME, inputs=self.inputs))

    def _check_expression(self, expr: str):
        from ..dsl.lower import lower_source
        text = self.module.source_text
        if text and not text.endswith("\n"):
            text += "\n"
        line = text.count("\n") + 1
        source = Source(self.module.path, text + EVAL_PREFIX + expr + "\n")
        typed = Source(TYPED, expr)
        try:
            module = lower_source(source)
        except DiagnosticError as e:
            raise DiagnosticError([_relocate(d, source, line, typed) for d in e.diagnostics]) from None
        if EVAL_NAME not in module.values:
            raise DiagnosticError([Diagnostic(Span(typed, 1, 1, 1, len(expr) + 1),
                                              "this is not a tensor (a function, dtype or range?); "
                                              "only tensor expressions can be evaluated")])
        # The session's own class: inspect works on the Program it is given (Program.graph uses it).
        return type(self.program)(module, self.program.device, seed=self.program.seed)

    def _needing(self, fn: Callable[[], Any]) -> Any:
        """Run fn; an input that is needed but not set gets a hint on how to set it."""
        try:
            return fn()
        except DiagnosticError as e:
            hinted = [attrs.evolve(d, message=f"{d.message} (set it with `:set {m[1]}=VALUE`)")
                      if (m := re.match(r"input `(\w+)` is needed but was not given", d.message)) else d
                      for d in e.diagnostics]
            raise DiagnosticError(hinted) from None

    # ---------------------------------------------------------------- traces
    @command(":trace NAME [A..B]", "NAME's Wengert list, or its entries A..B (half-open)",
             ":trace f 2..6")
    def cmd_trace(self, args: str) -> None:
        name, rest = _split(args, ":trace NAME [A..B]")
        start, stop = _range(rest) if rest else (0, None)
        trace = self._trace(name)
        head = f"trace of `{name}`: {len(trace)} entries"
        if start or stop is not None:
            head += f", showing v{start}..v{min(stop, len(trace)) - 1 if stop is not None else len(trace) - 1}"
        self.page(head + "\n" + trace.format(values=True, start=start, stop=stop))

    @command(":entry NAME K", "one trace entry: op, operands, type, value, source",
             ":entry f 7")
    def cmd_entry(self, args: str) -> None:
        name, rest = _split(args, ":entry NAME K")
        trace = self._trace(name)
        e = trace[_index(rest, trace, name, ":entry NAME K")]
        lines = [f"v{e.index} = {e.op}({', '.join(f'v{i}' for i in e.operands)})"
                 + (f"   named `{e.name}`" if e.name else ""),
                 f"op:        {e.op}"]
        if e.operands:
            lines.append("operands:  " + ", ".join(
                f"v{i} ({trace[i].op}, {_type(trace[i])})" for i in e.operands))
        extra = {k: v for k, v in e.params.items() if k not in ("value", "weak")}
        if extra:
            lines.append("params:    " + ", ".join(f"{k}={_param(v)}" for k, v in extra.items()))
        lines += [f"shape:     {list(e.shape)}", f"dtype:     {e.dtype}",
                  _labelled("value:     ", _format(e.primal, full=True)), self._where(e)]
        self.page("\n".join(lines))

    @command(":adjoint NAME K", "adjoint of entry K (w.r.t. every float input and param)", ":adjoint f 2")
    def cmd_adjoint(self, args: str) -> None:
        name, rest = _split(args, ":adjoint NAME K")
        self.program._var(name)
        trace = self._needing(lambda: self.program.trace_with_derivatives(name, dict(self.inputs), adjoints=True))
        e = trace[_index(rest, trace, name, ":adjoint NAME K")]
        label = f"v{e.index} ({e.op}{' ' + e.name if e.name else ''}, {_type(e)})"
        if e.adjoint is None:
            self.emit(f"d{name}/d{label} = 0 (it does not depend on any input or param being differentiated)")
            return
        self.emit(_labelled(f"d{name}/d{label} = ", _format(primal(e.adjoint), full=True)))

    def _trace(self, name: str):
        self.program._var(name)  # an unknown name is reported with a suggestion
        return self._needing(lambda: self.program.trace(name, inputs=self.inputs))

    def _where(self, e) -> str:
        span = e.span
        if span is None and e.name:
            decl = self.module.inputs.get(e.name) or self.module.params.get(e.name)
            span = decl.span if decl is not None else None
        if span is None:
            return "source:    (none)"
        shown = Diagnostic(span, "").render().split("\n", 1)
        return f"source:    {span}" + ("\n" + shown[1] if len(shown) > 1 else "")

    # ---------------------------------------------------------------- derivatives
    @command(":grad NAME [wrt A,B] [forward|reverse]", "gradient of a scalar (default: every param, reverse)", ":grad f wrt x1,x2 forward")
    def cmd_grad(self, args: str) -> None:
        name, wrt, mode = _derivative_args(args, ":grad NAME [wrt A,B] [forward|reverse]", modes=True)
        grads = self._needing(lambda: self.program.grad(name, wrt=wrt, mode=mode, inputs=self.inputs))
        if not grads:
            raise CommandError(f"`{self.module.path}` has no params: name what to differentiate with "
                               f"`:grad {name} wrt INPUT`")
        for n, g in grads.items():
            self.emit(_labelled(f"d{name}/d{n} = ", _format(g)))

    @command(":check NAME [wrt A,B]", "both modes against numerical differentiation",
             ":check f wrt x1,x2")
    def cmd_check(self, args: str) -> None:
        from ..runtime.gradcheck import GradCheckError, check_grads
        name, wrt, _ = _derivative_args(args, ":check NAME [wrt A,B]", modes=False)
        self.program._var(name)
        try:
            self._needing(lambda: check_grads(self.program, name, wrt=wrt, inputs=self.inputs))
        except GradCheckError as e:
            raise CommandError(f"gradcheck failed: {e}") from None
        self.emit(f"ok: forward and reverse mode of `{name}` agree with numerical differentiation")

    # ---------------------------------------------------------------- changing values
    @command(":set NAME=VALUE", "set an input or a param/state (literal, .npy, .npz:KEY)", ":set x1=3")
    def cmd_set(self, args: str) -> None:
        name, sep, text = args.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise CommandError("usage: :set NAME=VALUE (a literal such as [[1,1,1]], file.npy or file.npz:KEY)")
        what = self.module.params[name].kind if name in self.module.params else "input"
        value = parse_value(name, text, what)
        if name in self.module.inputs:
            self._set_input(name, value)
            self.emit(_labelled(f"{name} = ", _format(self.inputs[name])))
        elif name in self.module.params:
            self.program.set_params({name: value})
            self.emit(_labelled(f"{name} = ", _format(self.program.params[name]))
                      + f"   ({self.module.params[name].kind})")
        elif name in self.module.values:
            raise CommandError(f"`{name}` is computed by the program; only inputs, params and state can be set")
        else:
            raise self.program._unknown(name, list(self.module.inputs) + list(self.module.params),
                                        "input, param or state")

    def _set_input(self, name: str, value: Any) -> None:
        if name not in self.module.inputs:
            raise self.program._unknown(name, self.module.inputs, "input")
        arr = self.program._convert(name, value)
        self.program._bind_dims({name: arr})  # rank and fixed dims, reported at the `input` line
        self.inputs[name] = arr

    @command(":load FILE.npz", "load params and state (as `wengert eval --params`)",
             ":load runs/moons/params.npz")
    def cmd_load(self, args: str) -> None:
        path = args.strip()
        if not path:
            raise CommandError("usage: :load FILE.npz")
        saved = self.load_params(path)
        self.emit(f"loaded {len(saved)} array{'s' if len(saved) != 1 else ''} from {path}: " + ", ".join(saved))

    def load_params(self, path: str) -> list[str]:
        return self.program.load_params(os.path.expanduser(path))

    # ---------------------------------------------------------------- listing
    @command(":values", "named values: types, values when their inputs are set", ":values")
    def cmd_values(self, args: str) -> None:
        rows = []
        for name, var in self.module.values.items():
            needed = [n for n in self.program._needed_inputs([var]) if n not in self.inputs]
            if needed:
                shown = "(needs " + ", ".join(f"`{n}`" for n in needed) + ")"
            else:
                try:
                    shown = _short(self.program.run(name, inputs=self.inputs))
                except DiagnosticError as e:
                    shown = "(error: " + e.diagnostics[0].message + ")"
            rows.append((name, str(self.module.type_of(var)), shown))
        self.emit(_table(rows) if rows else "no named values")

    @command(":params", "params and state: types and values", ":params")
    def cmd_params(self, args: str) -> None:
        store = self.program.params
        rows = [(n, f"{p.kind} {self.module.type_of(p.var)}", _short(store[n])) for n, p in self.module.params.items()]
        self.emit(_table(rows) if rows else "no params or state")

    @command(":inputs", "inputs: types and the values set", ":inputs")
    def cmd_inputs(self, args: str) -> None:
        rows = [(n, str(self.module.type_of(d.var)), _short(self.inputs[n]) if n in self.inputs else "(not set)")
                for n, d in self.module.inputs.items()]
        self.emit(_table(rows) if rows else "no inputs")

    # ---------------------------------------------------------------- the session
    @command(":help [COMMAND]", "this list, or one command's entry", ":help grad")
    def cmd_help(self, args: str) -> None:
        wanted = args.strip().lstrip(":")
        if wanted:
            wanted = ALIASES.get(wanted, wanted)
            if wanted not in COMMANDS:
                raise CommandError(f"unknown command `:{wanted}`"
                                   + did_you_mean(f":{wanted}", [f":{c}" for c in COMMANDS]))
        shown = [COMMANDS[wanted]] if wanted else list(COMMANDS.values())
        width = max(len(c.usage) for c in shown) + 2
        lines = []
        for c in shown:
            lines.append(f"{c.usage.ljust(width)}{c.summary}")
            lines.append(f"{'':{width}}e.g. {c.example}")
        if not wanted:
            lines.append("A line without `:` is evaluated as an expression. Tab completes commands and names.")
        self.emit("\n".join(lines))

    @command(":quit", "end the session (also :q, :exit, Ctrl-D)", ":quit")
    def cmd_quit(self, args: str) -> None:
        self.done = True

    # ---------------------------------------------------------------- completion
    def names(self) -> dict[str, str]:
        """Every name a command may mention -> what it is (shown beside a completion)."""
        from ..dsl.builtins import BUILTINS
        out = {n: "built-in" for n in BUILTINS}
        out.update({n: "fn" for n in self.module.fns})
        out.update({n: "value" for n in self.module.values})
        out.update({n: p.kind for n, p in self.module.params.items()})
        out.update({n: "input" for n in self.module.inputs})
        return out


# ---------------------------------------------------------------- front ends
def main(program, inputs: dict[str, Any], script: TextIO | None = None) -> None:
    """`wengert inspect`: the prompt at a terminal; otherwise the commands of `script` or of
    stdin, echoed after `>>> `. Ends at :quit or at the end of the input; mistakes in commands
    are printed and do not change the exit status (0). Mistakes in the program, the -i inputs
    raise DiagnosticError (the CLI's exit status 2); --params is loaded by the CLI first."""
    session = Session(program, inputs)
    if script is None and sys.stdin.isatty() and sys.stdout.isatty():
        interact(session)
    else:
        run_lines(session, script if script is not None else sys.stdin)


def run_lines(session: Session, lines: Iterable[str], echo: bool = True) -> int:
    """Run commands one per line (a script or a pipe); the number of commands that failed."""
    failed = 0
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if echo:
            session.emit(f">>> {line}")
        failed += not session.execute(line)
        if session.done:
            break
    return failed


def interact(session: Session, history=None, **prompt_options: Any) -> None:
    """The prompt_toolkit loop: history (kept in ~/.wengert_history), tab completion.
    `prompt_options` go to PromptSession (tests pass a pipe `input` and a dummy `output`)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    if history is None:
        try:
            history = FileHistory(os.path.expanduser(HISTORY_FILE))
            list(history.load_history_strings())  # fails early when the file cannot be read
        except OSError:
            history = InMemoryHistory()
    prompt = PromptSession(history=history, completer=SessionCompleter(session),
                           auto_suggest=AutoSuggestFromHistory(), complete_while_typing=False, **prompt_options)
    inputs = ", ".join(session.module.inputs) or "none"
    session.emit(f"wengert inspect {session.module.path} (inputs: {inputs}); :help lists the commands, "
                 ":quit or Ctrl-D ends")
    session.interactive = True
    while not session.done:
        try:
            line = prompt.prompt(f"{os.path.basename(session.module.path)}> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        session.execute(line)


class SessionCompleter(Completer):
    """Commands after `:`, files after `:load`, otherwise names (values, inputs, params, built-ins, fns)."""

    def __init__(self, session: Session):
        self.session = session
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event):
        text = document.text_before_cursor
        if text.startswith(":") and not re.search(r"\s", text):
            for name in COMMANDS:
                if name.startswith(text[1:]):
                    yield Completion(f":{name}", start_position=-len(text), display_meta=COMMANDS[name].summary[:40])
            return
        if re.match(r":load\s+", text):
            sub = Document(text[re.match(r":load\s+", text).end():])
            yield from self.paths.get_completions(sub, complete_event)
            return
        word = re.search(r"[A-Za-z_][A-Za-z0-9_.]*$", text)
        prefix = word.group(0) if word else ""
        if not prefix:
            return
        candidates = self.session.names()
        if re.match(r":(grad|check)\s", text):
            candidates.update({"wrt": "keyword", "forward": "mode", "reverse": "mode"})
        for name, kind in sorted(candidates.items()):
            if name.startswith(prefix) and name != prefix:
                yield Completion(name, start_position=-len(prefix), display_meta=kind)


# ---------------------------------------------------------------- helpers
def _relocate(d: Diagnostic, source: Source, line: int, typed: Source) -> Diagnostic:
    """A diagnostic of the `__eval__ = EXPR` line, moved onto the expression as typed."""
    return attrs.evolve(d, span=_relocate_span(d.span, source, line, typed),
                        notes=tuple((_relocate_span(s, source, line, typed), m) for s, m in d.notes))


def _relocate_span(span: Span | None, source: Source, line: int, typed: Source) -> Span | None:
    if span is None or span.line < line or span.source != source:
        return span
    n = len(typed.text)
    if span.line > line:  # at the end of the input (an unclosed bracket)
        return Span(typed, 1, n + 1, 1, n + 2)
    offset = len(EVAL_PREFIX)
    column = min(max(1, span.column - offset), n + 1)
    end = span.end_column - offset if span.end_line == line else n + 1
    return Span(typed, 1, column, 1, max(column + 1, min(end, n + 1)))


def _split(args: str, usage: str) -> tuple[str, str]:
    name, _, rest = args.strip().partition(" ")
    if not name:
        raise CommandError(f"usage: {usage}")
    return name, rest.strip()


def _range(text: str) -> tuple[int, int | None]:
    a, sep, b = text.partition("..")
    a, b = a.strip().lstrip("v"), b.strip().lstrip("v")
    if not sep or not (a or "0").isdigit() or (b and not b.isdigit()):
        raise CommandError(f"`{text}`: expected a range A..B of entry numbers, such as 2..6")
    return int(a or 0), (int(b) if b else None)


def _index(text: str, trace, name: str, usage: str) -> int:
    k = text.strip().lstrip("v")
    if not re.fullmatch(r"-?\d+", k):
        raise CommandError(f"usage: {usage} (K is an entry number of `:trace {name}`)")
    i = int(k)
    if not -len(trace) <= i < len(trace):
        raise CommandError(f"the trace of `{name}` has {len(trace)} entries (v0..v{len(trace) - 1}); there is no v{i}")
    return i % len(trace)


def _derivative_args(args: str, usage: str, modes: bool) -> tuple[str, list[str] | None, str]:
    pattern = r"(?P<name>\S+)(?:\s+wrt\s+(?P<wrt>[^\s,]+(?:\s*,\s*[^\s,]+)*))?"
    pattern += r"(?:\s+(?P<mode>forward|reverse))?" if modes else ""
    m = re.fullmatch(pattern, args.strip())
    if not m:
        raise CommandError(f"usage: {usage}")
    wrt = [w.strip() for w in m["wrt"].split(",")] if m["wrt"] else None
    return m["name"], wrt, (m["mode"] if modes and m["mode"] else "reverse")


def _type(e) -> str:
    return f"{e.dtype}[{', '.join(map(str, e.shape))}]"


def _param(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return _short(v)
    return str(v)


def _format(value: Any, full: bool = False) -> str:
    """A value with numpy's printing (PRECISION digits); `full` shows every element."""
    extra = {"threshold": sys.maxsize} if full else {}
    with np.printoptions(precision=PRECISION, **extra):
        return np.array2string(np.asarray(value))


def _labelled(label: str, text: str) -> str:
    return label + text if "\n" not in text else label.rstrip() + "\n" + text


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)
