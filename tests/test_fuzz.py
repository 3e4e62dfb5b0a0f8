"""Fuzzing the front end: whatever text it is given, the checker either accepts it or reports
diagnostics that render; it never crashes with another exception (and never hangs).

Inputs are (1) valid programs (every .dl file under models/ plus the inline ones below)
mutated at the level of characters, tokens and lines, (2) token soups drawn from the
language's vocabulary, (3) random well-formed expressions over typed declarations, which
get past the parser and exercise the checker's type and shape rules.

Runs are reproducible (derandomize=True) and fast:
  * the checker is told the machine has 256 MB of memory: a safety net so that a mutated
    `param` declaration cannot make a regressed checker allocate gigabytes.

Bugs this fuzzing found (all fixed; test_diagnostics.py keeps a regression test for each):
huge integer literals and folded powers (a hang and ValueError), escapes in string literals
(UnicodeError), astronomical param sizes and out-of-range initial values (OverflowError),
axis 0 of a scalar (IndexError), arange with a bad dtype (KeyError), form feeds shifting the
shown source line, literal params materialised at check time.

Python warnings count as failures too: a user must not see a numpy warning from `check`.
"""
from __future__ import annotations

import math
import os
import random
import re
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wengert.dsl.lower as lower_mod
from wengert.dsl import limits
from wengert.cli import main
from wengert.dsl.builtins import BUILTINS
from wengert.diagnostics import DiagnosticError
from wengert.dsl.lower import lower_source
from wengert.diagnostics import Source

FUZZ_FILE = "fuzz.dl"
MODELS = Path(__file__).parent.parent / "models"
MODEL_FILES = sorted(MODELS.rglob("*.dl"))

INLINE_PROGRAMS = [
    # loops, fns with defaults and blocks, if, where, indexing and slicing
    """seed 3
input xs: f64[batch, time, 8]
input k: i64
param U: f64[8, 16] = glorot()
param W: f64[16, 16] = orthogonal()
param b: f64[16] = 0
state steps: i64 = 0

fn step(h, x_t, scale=1.0) = tanh(x_t @ U + h @ W + b) * scale
fn norm2(t) {
  s = sum(t * t, axis=-1, keepdims=true)
  return sqrt(s + 1e-6)
}

h = zeros([dim(xs, 0), 16])
for t in 0..dim(xs, 1) {
  h = step(h, xs[:, t], scale=0.5)
}
last = h / norm2(h)
gated = where(last > 0, last, 0.1 * last)
pick = if k > 2 then gated[0] else gated[-1]
first_two = gated[:, 0:2]
update steps = steps + 1
""",
    # layers, pipes, named params, data and train blocks
    """input x: f32[batch, 28, 28, 1]
input y: f32[batch, 10]
layer Block(x, units) {
  param W: f32[dim(x, 1), units] = glorot()
  param c: f32[units] = 0
  return relu(x @ W + c)
}
h1 = Dense(Flatten(x), 64)
h2 = Block(relu(h1), 32)
logits = h2 |> Dense(10)
probs = softmax(logits, axis=-1)
loss = mean(categorical_crossentropy(probs, y)) + 0.001 * l2(h1.W)
acc = accuracy(probs, y)
data (tr, va) = random_classification(examples=200, features=784, classes=10, seed=1)
  |> shuffle(seed=2) |> split(0.8)
train {
  data = tr; valid = va
  minimize = loss
  optimizer = adam(lr=0.001)
  epochs = 2
  batch = 32
  metrics = [acc]
}
""",
    # imports, lists, concat/stack, casts, reductions, scan, reversed loops
    """import "lib.dl"
input a: f32[4, 3]
input ids: i64[5]
param E: f32[10, 3] = normal(0, 0.1)
c = concat([a, 2 * a], axis=0)
s = stack([a[0], a[1]])
m = cast(a > 0.5, f32) * a
e = embedding(ids, E)
r = double(mean(e, axis=0))
lst = [[1, 2], [3, 4]]
acc = 0.0
for i in reversed(0..4) {
  acc = acc + sum(a[i])
}
carries = scan(fn_step, zeros([4]), a, axis=1)
fn fn_step(carry, x_t) = carry + x_t
""",
]

# Files the fuzzed programs may import (the test runs in a scratch directory holding them).
IMPORTABLE = {
    "lib.dl": "fn double(t) = t * 2\nfn halve(t) = t / 2\nlayer Tiny(x) {\n  param w: f32 = 1\n  return x * w\n}\n",
    "broken.dl": "fn oops(t) = t +\n",
    "cycle.dl": 'import "fuzz.dl"\nfn c(t) = t\n',
}

KEYWORDS = ["seed", "input", "param", "state", "fn", "layer", "update", "data", "train", "import", "return",
            "for", "in", "if", "then", "else", "and", "or", "not", "true", "false", "all", "reversed"]
DTYPES = ["f32", "f64", "i32", "i64", "bool"]
OPERATORS = ["+", "-", "*", "/", "@", "%", "**", "..", "<", "<=", ">", ">=", "==", "!=", "|>", "=", ",", ":",
             ".", ";", "(", ")", "[", "]", "{", "}", "|", "!", "&", "^", "~", "$", "?", "'", '"', "\\", "`", "#"]
LONG_NUMBERS = ["1" + "0" * 400, "10**400", "1e400", "1e-400", "9" * 300, "0." + "0" * 300 + "1",
                "123456789" * 40, "4294967296", "9223372036854775808", "-9223372036854775809", "1.7976931348623157e308",
                "0x1F", "1_000", "1.", ".5", "1e", "00012", "2 ** 1000", "(10 ** 400)"]
ODD_CHARS = ["é", "λ", "→", "\u200b", "\ufeff", "𝑥", "\x00", "\t", "\r", "\r\n", "\x0c", "\u2028", "\x85", "\x7f",
             "\ud800", "日本", "\N{COMBINING ACUTE ACCENT}", "x\u0301", "ﬁ", "Ω", "\U0010ffff"]
STRINGS = ['"lib.dl"', '"broken.dl"', '"cycle.dl"', '"fuzz.dl"', '"missing.dl"', '"."', '""', '"data/train.csv"',
           '"same"', '"valid"', '"a\\tb"', '"\\\\"', '"é"']


def _stdlib_fn_names() -> list[str]:
    names = []
    for p in (Path(lower_mod.__file__).parent / "stdlib").glob("*.dl"):
        names += re.findall(r"^(?:fn|layer)\s+([A-Za-z_]\w*)", p.read_text(encoding="utf-8"), re.MULTILINE)
    return sorted(set(names))


FUNCTIONS = sorted(set(BUILTINS) | set(_stdlib_fn_names()))


# ---------------------------------------------------------------- the corpus
def _corpus() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in MODEL_FILES]
    return texts + INLINE_PROGRAMS


CORPUS = _corpus()
TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_]\w*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?'
                      r"|\|>|\*\*|\.\.|<=|>=|==|!=|\n|[ \t]+|.", re.DOTALL)


def _vocabulary() -> list[str]:
    words = set(KEYWORDS) | set(DTYPES) | set(OPERATORS) | set(FUNCTIONS) | set(STRINGS)
    for text in CORPUS:
        words |= {t for t in TOKEN_RE.findall(text) if t.strip() and not t.startswith("#")}
    words |= {"\n", "0", "1", "-1", "2", "0.5", "1e-3", "3.0"}
    return sorted(words)


VOCAB = _vocabulary()


# ---------------------------------------------------------------- fast, safe checking
@pytest.fixture(scope="module", autouse=True)
def _fast_and_safe_checker(tmp_path_factory):
    """Pretend the machine has 256 MB; run in a directory holding the importable files."""
    workdir = tmp_path_factory.mktemp("fuzz")
    for name, text in IMPORTABLE.items():
        (workdir / name).write_text(text, encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setattr(limits, "physical_memory", lambda: 256 << 20)
    mp.chdir(workdir)
    try:
        yield workdir
    finally:
        mp.undo()


def _known_bug(exc: BaseException, text: str) -> str | None:
    """The signature of a reported, not yet fixed bug, else None (none are open now)."""
    return None


KNOWN_BUG_HITS: dict[str, int] = {}


def check_outcome(text: str) -> str:
    """Check text as fuzz.dl; 'ok', 'diagnostics' or 'known bug X'. Anything else fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning printed to the user's terminal is a bug too
            lower_source(Source(FUZZ_FILE, text))
        return "ok"
    except DiagnosticError as e:
        assert e.diagnostics, "DiagnosticError without diagnostics"
        imports = {Path(p).name for p in re.findall(r'import\s*"([^"\n]*)"', text)}
        for d in e.diagnostics:
            _assert_renders(d, text, imports)
        assert any(d.severity == "error" for d in e.diagnostics), "DiagnosticError without an error"
        return "diagnostics"
    except Exception as e:
        bug = _known_bug(e, text)
        if bug is None:
            raise
        KNOWN_BUG_HITS[bug] = KNOWN_BUG_HITS.get(bug, 0) + 1
        return f"known bug {bug}"


HEAD_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|note): \S")


def _known_bad_message(message: str) -> bool:
    """A reported, not yet fixed bad message (none are open now)."""
    return False


def _assert_renders(d, text: str, imports: set[str]) -> None:
    r = d.render()
    assert isinstance(r, str) and r, "empty rendering"
    assert d.severity in ("error", "warning", "note")
    assert d.message and isinstance(d.message, str)
    if _known_bad_message(d.message):
        return
    assert "\n" not in d.message, f"a message must fit on one line: {d.message!r}"
    if d.span is None:  # only unreadable files have no span, and fuzz.dl itself is always readable
        assert r.startswith(f"{d.file}: error: ") and Path(d.file).name in imports, r
        return
    head = HEAD_RE.match(r)
    assert head, f"bad first line: {r.splitlines()[0]!r}"
    file = head["file"]
    assert file == FUZZ_FILE or Path(file).name in imports, f"diagnostic in an unexpected file {file!r}"
    assert d.span.line >= 1 and d.span.column >= 1, r
    if file == FUZZ_FILE:
        lines = text.split("\n")
        assert d.span.line <= len(lines) + 1, f"line {d.span.line} beyond the end of the file\n{r}"
        shown = r.split("\n")
        if len(shown) >= 3 and d.span.line <= len(lines):
            src = lines[d.span.line - 1].rstrip("\r")
            if len(src) <= 120:
                assert shown[1] == "    " + src, f"the wrong source line is shown\n{r}"
                assert set(shown[2].strip()) == {"^"}, r


# ---------------------------------------------------------------- mutations
class Chooser:
    """The source of random choices: hypothesis' data (shrinkable) or a seeded random.Random."""

    def __init__(self, data=None, rng: random.Random | None = None):
        self.data, self.rng = data, rng

    def int(self, lo: int, hi: int) -> int:
        if self.data is not None:
            return self.data.draw(st.integers(lo, hi))
        return self.rng.randint(lo, hi)

    def pick(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]


def _tokens(text: str) -> list[str]:
    toks = TOKEN_RE.findall(text)
    assert "".join(toks) == text
    return toks


def m_char_delete(c, text):
    if not text:
        return text
    i = c.int(0, len(text) - 1)
    return text[:i] + text[i + 1:]


def m_char_insert(c, text):
    i = c.int(0, len(text))
    ch = c.pick(OPERATORS + ODD_CHARS + ["\n", " ", "a", "_", "0", "9"])
    return text[:i] + ch + text[i:]


def m_char_duplicate(c, text):
    if not text:
        return text
    i = c.int(0, len(text) - 1)
    j = c.int(i, min(len(text), i + 40))
    return text[:j] + text[i:j] + text[j:]


def m_char_swap(c, text):
    if len(text) < 2:
        return text
    i, j = sorted((c.int(0, len(text) - 1), c.int(0, len(text) - 1)))
    return text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:] if i != j else text


def _token_op(c, text, op):
    toks = _tokens(text)
    if not toks:
        return text
    k = c.int(0, len(toks) - 1)
    if op == "delete":
        del toks[k]
    elif op == "insert":
        toks.insert(k, c.pick(VOCAB) + c.pick(["", " "]))
    elif op == "replace":
        toks[k] = c.pick(VOCAB)
    elif op == "duplicate":
        toks.insert(k, toks[k])
    elif op == "swap":
        m = c.int(0, len(toks) - 1)
        toks[k], toks[m] = toks[m], toks[k]
    return "".join(toks)


def m_token_delete(c, text):
    return _token_op(c, text, "delete")


def m_token_insert(c, text):
    return _token_op(c, text, "insert")


def m_token_replace(c, text):
    return _token_op(c, text, "replace")


def m_token_duplicate(c, text):
    return _token_op(c, text, "duplicate")


def m_token_swap(c, text):
    return _token_op(c, text, "swap")


def _line_op(c, text, op):
    lines = text.split("\n")
    k = c.int(0, len(lines) - 1)
    if op == "delete":
        del lines[k]
    elif op == "duplicate":
        lines.insert(k, lines[k])
    elif op == "swap":
        m = c.int(0, len(lines) - 1)
        lines[k], lines[m] = lines[m], lines[k]
    elif op == "transplant":  # a line of another program
        other = c.pick(CORPUS).split("\n")
        lines.insert(k, c.pick(other))
    return "\n".join(lines)


def m_line_delete(c, text):
    return _line_op(c, text, "delete")


def m_line_duplicate(c, text):
    return _line_op(c, text, "duplicate")


def m_line_swap(c, text):
    return _line_op(c, text, "swap")


def m_line_transplant(c, text):
    return _line_op(c, text, "transplant")


def m_insert_keyword_or_operator(c, text):
    i = c.int(0, len(text))
    word = c.pick(KEYWORDS + OPERATORS + DTYPES + ["(", "[", "{", ")", "]", "}"])
    return text[:i] + c.pick(["", " "]) + word + c.pick(["", " "]) + text[i:]


def m_long_number(c, text):
    toks = _tokens(text)
    nums = [k for k, t in enumerate(toks) if t[:1].isdigit()]
    number = c.pick(LONG_NUMBERS)
    if nums and c.int(0, 1):
        toks[c.pick(nums)] = number  # replace an existing number
        return "".join(toks)
    i = c.int(0, len(text))
    return text[:i] + number + text[i:]


def m_unicode(c, text):
    toks = _tokens(text)
    names = [k for k, t in enumerate(toks) if t[:1].isalpha()]
    ch = c.pick(ODD_CHARS)
    if names and c.int(0, 1):
        k = c.pick(names)
        cut = c.int(0, len(toks[k]))
        toks[k] = toks[k][:cut] + ch + toks[k][cut:]
        return "".join(toks)
    i = c.int(0, len(text))
    return text[:i] + ch + text[i:]


def m_truncate(c, text):
    return text[:c.int(0, len(text))]


MUTATIONS = [m_char_delete, m_char_insert, m_char_duplicate, m_char_swap, m_token_delete, m_token_insert,
             m_token_replace, m_token_duplicate, m_token_swap, m_line_delete, m_line_duplicate, m_line_swap,
             m_line_transplant, m_insert_keyword_or_operator, m_long_number, m_unicode, m_truncate]


def mutate(c: Chooser, text: str, max_mutations: int = 4) -> str:
    for _ in range(c.int(1, max_mutations)):
        text = c.pick(MUTATIONS)(c, text)
    return text


# ---------------------------------------------------------------- strategies
HEADER = """input x: f64[batch, 4]
input v: f32[4]
input m: f64[4, 4]
input k: i64
input flags: bool[4]
input img: f32[batch, 8, 8, 3]
input ids: i64[batch]
param W: f64[4, 3] = glorot()
param K: f32[3, 3, 3, 2] = he()
"""
NAMES = ["x", "v", "m", "k", "flags", "img", "ids", "W", "K", "batch", "f32", "f64", "i64", "bool", "W.x", "nope"]
KWARGS = ["axis", "keepdims", "dtype", "stride", "padding", "rate", "units", "mean", "std", "p", "classes", "perm",
          "value", "momentum", "alpha", "axs"]
CALLABLE = FUNCTIONS

_leaf = st.one_of(
    st.sampled_from(NAMES),
    st.integers(-3, 1000).map(str),
    st.sampled_from(["0.5", "1e-3", "2.0", "1e400", "true", "false", '"same"', '"valid"', "all"]),
)


def _extend(inner):
    args = st.lists(inner, max_size=3)
    kwargs = st.lists(st.tuples(st.sampled_from(KWARGS), inner), max_size=2)
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "@", "%", "<", ">=", "==", "!=", "and", "or"]),
                  inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} ** {t[1]})"),
        inner.map(lambda e: f"(-{e})"),
        inner.map(lambda e: f"(not {e})"),
        st.tuples(st.sampled_from(CALLABLE), args, kwargs).map(
            lambda t: f"{t[0]}(" + ", ".join(t[1] + [f"{k}={v}" for k, v in t[2]]) + ")"),
        st.tuples(inner, st.sampled_from(CALLABLE), args).map(
            lambda t: f"({t[0]} |> {t[1]}" + (f"({', '.join(t[2])})" if t[2] else "") + ")"),
        st.tuples(inner, st.lists(st.sampled_from(["0", "-1", ":", "1:3", "::2", "k", ":, 0", "ids", "0, 0"]),
                                  min_size=1, max_size=2)).map(lambda t: f"{t[0]}[{', '.join(t[1])}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"(if {t[0]} then {t[1]} else {t[2]})"),
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    )


EXPRESSIONS = st.recursive(_leaf, _extend, max_leaves=12)


def _program_from_expressions(exprs: list[str], shape: str) -> str:
    body = "".join(f"y{i} = {e}\n" for i, e in enumerate(exprs))
    if shape == "fn":
        return HEADER + f"fn f(a, b=2) = {exprs[0]}\n" + f"out = f(x, b={exprs[-1]})\nz = f(v)\n"
    if shape == "loop":
        return HEADER + "h = x\n" + f"for t in 0..k {{\n  h = h + {exprs[0]}\n}}\n" + body
    if shape == "layer":
        return HEADER + "layer L(a, n) {\n  param w: f64[dim(a, 1), n] = 0\n" \
            + f"  return a @ w + {exprs[0]}\n}}\nout = L(x, 3)\n" + body
    if shape == "train":
        return HEADER + body + f"loss = mean({exprs[0]})\ndata d = moons(examples=10, noise=0.1, seed=1)\n" \
            + f"train {{\n  data = d\n  minimize = loss\n  optimizer = sgd(lr={exprs[-1]})\n  epochs = 1\n}}\n"
    return HEADER + body


SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ---------------------------------------------------------------- properties
def test_the_corpus_is_valid():
    """The mutations start from programs that check (else the fuzzing would test little)."""
    assert len(MODEL_FILES) >= 3, f"expected .dl models under {MODELS}"
    for path in MODEL_FILES:
        lower_source(Source(str(path), path.read_text(encoding="utf-8")))
    for text in INLINE_PROGRAMS:
        assert check_outcome(text) == "ok"


@SETTINGS
@given(data=st.data(), which=st.integers(0, len(CORPUS) - 1))
def test_mutated_programs_check_or_report_diagnostics(data, which):
    text = mutate(Chooser(data=data), CORPUS[which])
    check_outcome(text)


@SETTINGS
@given(tokens=st.lists(st.tuples(st.sampled_from(VOCAB), st.sampled_from(["", " ", " ", "\n"])), max_size=60),
       header=st.booleans())
def test_token_soups_check_or_report_diagnostics(tokens, header):
    text = (HEADER if header else "") + "".join(t + sep for t, sep in tokens)
    check_outcome(text)


@SETTINGS
@given(exprs=st.lists(EXPRESSIONS, min_size=1, max_size=3),
       shape=st.sampled_from(["plain", "fn", "loop", "layer", "train"]))
def test_random_expressions_check_or_report_diagnostics(exprs, shape):
    check_outcome(_program_from_expressions(exprs, shape))


# ---------------------------------------------------------------- the CLI
def _cli_candidates(n: int, seed: int) -> list[str]:
    """n deterministic mutated programs that the in-process checker handles (no known bug)."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        text = mutate(Chooser(rng=rng), rng.choice(CORPUS))
        if "\ud800" in text:
            continue
        if check_outcome(text).startswith("known bug"):
            continue
        out.append(text)
    return out


@settings(SETTINGS, max_examples=40)
@given(data=st.data(), which=st.integers(0, len(CORPUS) - 1))
def test_cli_check_exits_0_or_2_on_mutated_programs(data, which, _fast_and_safe_checker):
    text = mutate(Chooser(data=data), CORPUS[which])
    path = _fast_and_safe_checker / "prog.dl"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    result = CliRunner().invoke(main, ["check", str(path)])
    if result.exit_code not in (0, 2):
        if result.exception is not None and _known_bug(result.exception, text):
            return
        raise AssertionError(f"exit status {result.exit_code}: {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stdout.startswith(f"{path}: ok")
    else:
        assert result.stderr.startswith(str(path)), result.stderr


def test_real_cli_never_exits_1_or_prints_a_traceback(_fast_and_safe_checker, tmp_path):
    """The installed command on a batch of mutated files: status 0 or 2, no traceback."""
    texts = _cli_candidates(24, seed=1234)
    paths = []
    for i, text in enumerate(texts):
        p = tmp_path / f"m{i:02d}.dl"
        p.write_text(text, encoding="utf-8")
        paths.append(str(p))
    for name, text in IMPORTABLE.items():
        (tmp_path / name).write_text(text, encoding="utf-8")

    def limit():  # a runaway check must fail the test, not take the machine down
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "wengert.cli", "check", *paths], capture_output=True, text=True,
                       check=False, timeout=120, cwd=tmp_path, env=env, preexec_fn=limit)
    assert r.returncode in (0, 2), r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    ok = [ln for ln in r.stdout.splitlines() if ": ok; " in ln]
    failed = {ln.split(":")[0] for ln in r.stderr.splitlines() if re.match(r"\S+\.dl:\d+:\d+: error: ", ln)}
    assert len(ok) + len(failed) >= len(paths) - 2  # every file was checked (give or take import errors)
    assert time.monotonic() - start < 100


# ---------------------------------------------------------------- checked programs, run (issue 19)
# Mutations of models/ and the standard library that pass the checker are run with small inputs of their
# declared types: values, a gradient, the updates. Running may only give values or diagnostics; a
# traceback (a MemoryError from a size the checker let through, a numpy error from an unchecked argument)
# is a crash. Derandomized: each program's mutations and inputs come from random.Random(seed).
STDLIB_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((Path(lower_mod.__file__).parent / "stdlib").glob("*.dl"))]
RUN_CORPUS = CORPUS + STDLIB_TEXTS
SYMBOL_SIZE = 2  # every symbolic dim of a fed input
RUN_SECONDS = 60  # a run longer than this is reported as slow (a hang in the long run); big models take seconds


class Slow(Exception):
    pass


def _alarm(signum, frame):
    raise Slow()


def feeds_for(module, rng: random.Random) -> dict[str, np.ndarray] | None:
    """Small random values for every input (None when a dim is derived from others)."""
    out = {}
    for name, decl in module.inputs.items():
        t = decl.var.type
        shape = []
        for d in module.dims.resolve_shape(t.shape):
            if isinstance(d, int):
                shape.append(d)
            elif type(d).__name__ == "Sym":
                shape.append(SYMBOL_SIZE)
            else:
                return None
        if math.prod(shape) > 1 << 16:
            return None
        gen = np.random.default_rng(rng.randrange(1 << 30))
        if t.dtype == "bool":
            out[name] = gen.random(shape) > 0.5
        elif t.dtype in ("i32", "i64"):
            out[name] = gen.integers(0, 3, shape).astype(t.dtype.replace("i", "int"))
        else:
            out[name] = gen.normal(size=shape).astype("float32" if t.dtype == "f32" else "float64")
    return out


def run_outcome(text: str, rng: random.Random) -> str:
    """Check, then run a checked program: 'diagnostics', 'ran', 'run diagnostics', 'skipped' or 'slow'.
    Anything else raises (a crash)."""
    import signal

    from wengert.program import Program
    outcome = check_outcome(text)
    if outcome != "ok":
        return outcome
    module = lower_source(Source(FUZZ_FILE, text))
    feeds = feeds_for(module, rng)
    if feeds is None or not module.values:
        return "skipped"
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(RUN_SECONDS)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # NaNs of random inputs are the user's arithmetic, not a crash
            prog = Program(module)
            names = list(module.values)
            values = prog.run(names, inputs=feeds)
            scalar = next((n for n in names if np.ndim(values[n]) == 0
                           and np.asarray(values[n]).dtype.kind == "f"), None)
            wrt = [n for n, p in module.params.items() if p.kind == "param"]
            if scalar is not None and wrt:
                prog.grad(scalar, wrt, inputs=feeds)
            if module.updates:
                prog.apply_updates(feeds)
        return "ran"
    except DiagnosticError as e:
        for d in e.diagnostics:
            assert isinstance(d.render(), str) and d.message
        return "run diagnostics"
    except Slow:
        return "slow"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fuzz_batch(seed: int, count: int, max_mutations: int = 3) -> dict[str, int]:
    """`count` mutated programs from RUN_CORPUS, each checked and (when it checks) run; the tally of
    outcomes. A crash raises with the program's seed, so `fuzz_one(seed)` reproduces it."""
    tally: dict[str, int] = {}
    for k in range(count):
        program_seed = seed * 1_000_003 + k
        try:
            outcome = fuzz_one(program_seed, max_mutations)
        except Exception as e:
            raise AssertionError(f"fuzz program {program_seed} crashed: {type(e).__name__}: {e}") from e
        tally[outcome] = tally.get(outcome, 0) + 1
    return tally


def fuzz_one(program_seed: int, max_mutations: int = 3) -> str:
    rng = random.Random(program_seed)
    text = mutate(Chooser(rng=rng), rng.choice(RUN_CORPUS), max_mutations)
    return run_outcome(text, rng)


FUZZ_IN_CI = 1500  # programs per CI run; scripts/fuzz.py runs as many as asked


def test_mutated_programs_that_check_also_run_without_crashing():
    tally = fuzz_batch(seed=19, count=FUZZ_IN_CI)
    assert sum(tally.values()) == FUZZ_IN_CI
    assert tally.get("ran", 0) + tally.get("run diagnostics", 0) >= FUZZ_IN_CI // 10, tally  # it reaches the runtime
    assert tally.get("slow", 0) == 0, tally
