"""The surface syntax (LANGUAGE.md §2, §4, §5): one test per production, then precedence."""
from __future__ import annotations

import pytest

from conftest import expr, parse_errors, parse_text, sx
from wengert.dsl import ast


def only(text: str):
    m = parse_text(text)
    assert len(m.stmts) == 1, m.stmts
    return m.stmts[0]


def span(node) -> tuple[int, int, int, int]:
    s = node.span
    return s.line, s.column, s.end_line, s.end_column


# ---------------------------------------------------------------- statements (§4)
def test_seed():
    s = only("seed 42")
    assert isinstance(s, ast.Seed)
    assert s.value == ast.Literal(42, span=s.value.span)
    assert span(s) == (1, 1, 1, 8)


def test_input_with_symbolic_and_literal_dims():
    s = only("input x: f64[batch, 100]")
    assert isinstance(s, ast.Input) and s.name == "x"
    assert s.type.dtype.id == "f64"
    assert [sx(d) for d in s.type.dims] == ["batch", "100"]
    assert span(s) == (1, 1, 1, 25)


@pytest.mark.parametrize("text", ["input k: i64", "input k: i64[]"])
def test_input_scalar_forms(text):
    s = only(text)
    assert s.type.dtype.id == "i64"
    assert not s.type.dims  # a bare dtype and `dtype[]` are both scalars


def test_param_with_initializer_call():
    s = only("param w: f64[100] = normal(0, 1)")
    assert isinstance(s, ast.ParamDecl) and s.kind == "param" and s.name == "w"
    assert [sx(d) for d in s.type.dims] == ["100"]
    assert sx(s.init) == "(call normal 0 1)"


def test_param_scalar_with_number():
    s = only("param b: f64      = 0")
    assert (s.kind, s.name, s.type.dtype.id, sx(s.init)) == ("param", "b", "f64", "0")


def test_state():
    s = only("state running: f32[3] = [[4, 5, 6]]")
    assert isinstance(s, ast.ParamDecl) and s.kind == "state" and s.name == "running"
    assert sx(s.init) == "[[4 5 6]]"


def test_named_value():
    s = only("p = sigmoid(x @ w + b)")
    assert isinstance(s, ast.Assign) and s.name == "p"
    assert sx(s.value) == "(call sigmoid (+ (@ x w) b))"
    assert span(s) == (1, 1, 1, 23)


def test_fn_expression_form_with_default():
    s = only("fn l2(t, k=2) = sum(t ** k)")
    assert isinstance(s, ast.FnDef) and s.kind == "fn" and s.name == "l2"
    assert [(p.name, None if p.default is None else sx(p.default)) for p in s.params] == [("t", None), ("k", "2")]
    assert sx(s.body) == "(call sum (** t k))"


def test_fn_without_parameters():
    s = only("fn one() = 1")
    assert s.params == () and sx(s.body) == "1"


def test_fn_block_form():
    s = only("""
        fn g(a, b) {
          c = a * b
          return c + 1
        }
    """)
    assert isinstance(s, ast.FnDef) and s.kind == "fn" and [p.name for p in s.params] == ["a", "b"]
    assert isinstance(s.body, ast.Block)
    first, ret = s.body.stmts
    assert isinstance(first, ast.Assign) and first.name == "c" and sx(first.value) == "(* a b)"
    assert isinstance(ret, ast.Return) and sx(ret.value) == "(+ c 1)"
    assert span(s) == (1, 1, 4, 2)
    assert span(ret) == (3, 3, 3, 15)


def test_layer():
    s = only("""
        layer Dense(x, units) {
          param W: dtype(x)[dim(x, -1), units] = glorot()
          param b: dtype(x)[units] = zeros
          return x @ W + b
        }
    """)
    assert isinstance(s, ast.FnDef) and s.kind == "layer" and s.name == "Dense"
    w, b, ret = s.body.stmts
    assert isinstance(w, ast.ParamDecl) and w.name == "W"
    assert sx(w.type.dtype) == "(call dtype x)"
    assert [sx(d) for d in w.type.dims] == ["(call dim x (- 1))", "units"]
    assert sx(w.init) == "(call glorot)"
    assert sx(b.init) == "zeros"
    assert sx(ret.value) == "(+ (@ x W) b)"


def test_update_plain_and_dotted():
    m = parse_text("update c = c + 1\nupdate bn.running_mean = 0")
    u1, u2 = m.stmts
    assert isinstance(u1, ast.Update) and u1.target == "c" and sx(u1.value) == "(+ c 1)"
    assert u2.target == "bn.running_mean"
    assert span(u2)[:2] == (2, 1)


def test_data_with_pipes():
    s = only("data blobs = random_classification(examples=1000, features=100) |> shuffle(1) |> take(10)")
    assert isinstance(s, ast.DataDef) and s.names == ("blobs",)
    assert sx(s.pipeline) == ("(pipe take (pipe shuffle (call random_classification examples=1000 "
                              "features=100) 1) 10)")


def test_data_tuple_binding():
    s = only("data (tr, va) = moons(100) |> split(0.8)")
    assert isinstance(s, ast.DataDef) and s.names == ("tr", "va")
    assert sx(s.pipeline) == "(pipe split (call moons 100) 0.8)"


def test_train_unnamed_entries_on_lines():
    s = only("""
        train {
          data      = blobs
          minimize  = loss
          optimizer = sgd(lr=0.1)
          batch     = all
          metrics   = [accuracy(prediction, y)]
        }
    """)
    assert isinstance(s, ast.TrainDef) and s.name is None
    assert [(e.name, sx(e.value)) for e in s.entries] == [
        ("data", "blobs"), ("minimize", "loss"), ("optimizer", "(call sgd lr=0.1)"), ("batch", "all"),
        ("metrics", "[(call accuracy prediction y)]")]
    assert [e.span.line for e in s.entries] == [2, 3, 4, 5, 6]


def test_train_named_entries_separated_by_semicolons():
    s = only("train pretrain { data = d; minimize = loss; epochs = 3 }")
    assert s.name == "pretrain"
    assert [(e.name, sx(e.value)) for e in s.entries] == [("data", "d"), ("minimize", "loss"), ("epochs", "3")]
    assert [e.span.column for e in s.entries] == [18, 28, 45]


def test_train_trailing_semicolon_and_empty_block():
    assert [e.name for e in only("train { data = d; minimize = l; }").entries] == ["data", "minimize"]
    assert only("train {\n}").entries == ()


def test_import():
    s = only('import "lib/helpers.dl"')
    assert isinstance(s, ast.Import) and s.path == "lib/helpers.dl"
    assert span(s) == (1, 1, 1, 24)


def test_for_over_range():
    s = only("for t in 0..dim(xs, 1) {\n  h = tanh(h)\n}")
    assert isinstance(s, ast.For) and s.var == "t"
    assert sx(s.iter) == "(.. 0 (call dim xs 1))"
    (body,) = s.body.stmts
    assert isinstance(body, ast.Assign) and body.name == "h"


def test_for_reversed():
    s = only("for t in reversed(0..n) { h = h + 1 }")
    assert sx(s.iter) == "(call reversed (.. 0 n))"
    assert sx(s.body.stmts[0].value) == "(+ h 1)"


# ---------------------------------------------------------------- expressions (§5)
@pytest.mark.parametrize("text, tree", [
    ("if c then a else b", "(if c a b)"),
    ("a or b", "(or a b)"),
    ("a and b", "(and a b)"),
    ("not a", "(not a)"),
    ("a < b", "(< a b)"), ("a <= b", "(<= a b)"), ("a > b", "(> a b)"),
    ("a >= b", "(>= a b)"), ("a == b", "(== a b)"), ("a != b", "(!= a b)"),
    ("a + b", "(+ a b)"), ("a - b", "(- a b)"), ("a * b", "(* a b)"), ("a / b", "(/ a b)"),
    ("a @ b", "(@ a b)"), ("a % b", "(% a b)"),
    ("-a", "(- a)"),
    ("a ** b", "(** a b)"),
    ("f(x)", "(call f x)"),
    ("f()", "(call f)"),
    ("f(a)(b)", "(call (call f a) b)"),
    ("x[0]", "(index x 0)"),
    ("x[-1]", "(index x (- 1))"),
    ("x[:, t]", "(index x (slice _ _ _) t)"),
    ("x[:, 1:3]", "(index x (slice _ _ _) (slice 1 3 _))"),
    ("x[::2, 1:, :-1]", "(index x (slice _ _ 2) (slice 1 _ _) (slice _ (- 1) _))"),
    ("E[ids]", "(index E ids)"),
    ("h1.W", "(. h1 W)"),
    ("a.b.c", "(. (. a b) c)"),
    ("h1.W[0]", "(index (. h1 W) 0)"),
    ("x |> relu", "(pipe relu x)"),
    ("x |> Dense(10)", "(pipe Dense x 10)"),
    ("x |> f(1, k=2)", "(pipe f x 1 k=2)"),
    ("x |> h1.W", "(pipe (. h1 W) x)"),
    ("sum(x, axis=1, keepdims=true)", "(call sum x axis=1 keepdims=True)"),
    ("[1, 2, 3]", "[1 2 3]"),
    ("[[1, 2], [3, 4]]", "[[1 2] [3 4]]"),
    ("[]", "[]"),
    ("[x, 2 * x,]", "[x (* 2 x)]"),
    ("0..n", "(.. 0 n)"),
    ("a..b + 1", "(.. a (+ b 1))"),
    ('"data/train.csv"', "'data/train.csv'"),
    ("true", "True"), ("false", "False"),
    ("all", "all"),
    ("(a)", "a"),
])
def test_expression_forms(text, tree):
    assert sx(expr(text)) == tree


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.1", 0.1), ("1e-3", 0.001), ("2.5E+2", 250.0), ("10", 10),
    ('"a\\"b"', 'a"b'), ('"tab\\there"', "tab\there"), ("true", True), ("false", False),
])
def test_literal_values(text, value):
    e = expr(text)
    assert isinstance(e, ast.Literal)
    assert e.value == value and type(e.value) is type(value)


def test_pipe_call_node_is_marked_piped():
    e = expr("x |> Dense(10)")
    assert isinstance(e, ast.Call) and e.piped
    assert not expr("Dense(x, 10)").piped


def test_keyword_arguments_are_separate_from_positional():
    e = expr("conv2d(x, W, stride=2, padding=\"same\")")
    assert [sx(a) for a in e.args] == ["x", "W"]
    assert [(k.name, sx(k.value)) for k in e.kwargs] == [("stride", "2"), ("padding", "'same'")]


def test_expression_spans():
    e = expr("a + b * c")
    assert span(e) == (1, 5, 1, 14)
    assert span(e.right) == (1, 9, 1, 14)


# ---------------------------------------------------------------- lines, comments, separators (§2)
def test_continuation_inside_parentheses_and_brackets():
    m = parse_text("a = f(1,\n      2)\nb = [1,\n  2,\n  3]\nc = f(\n  x,\n  k = 2,\n)")
    a, b, c = m.stmts
    assert sx(a.value) == "(call f 1 2)" and span(a) == (1, 1, 2, 9)
    assert sx(b.value) == "[1 2 3]" and span(b) == (3, 1, 5, 5)
    assert sx(c.value) == "(call f x k=2)"


def test_continuation_after_binary_operator():
    m = parse_text("c = 1 +\n    2 *\n    3\nd = a and\n  b")
    c, d = m.stmts
    assert sx(c.value) == "(+ 1 (* 2 3))"
    assert span(c) == (1, 1, 3, 6)
    assert sx(d.value) == "(and a b)"


def test_line_starting_with_pipe():
    m = parse_text("d = x\n  |> f\n  |> g(1)\ne = 2")
    d, e = m.stmts
    assert sx(d.value) == "(pipe g (pipe f x) 1)"
    assert span(d) == (1, 1, 3, 10)
    assert e.name == "e"


def test_line_starting_with_pipe_after_comment_lines():
    m = parse_text("i = x\n    # a comment between\n\n    |> relu\n  # another\n  |> Dense(3)")
    (i,) = m.stmts
    assert sx(i.value) == "(pipe Dense (pipe relu x) 3)"


def test_then_and_else_on_their_own_lines():
    m = parse_text("e = if c\n  then a\n  else b\nf = 1")
    e, f = m.stmts
    assert sx(e.value) == "(if c a b)"
    assert span(e) == (1, 1, 3, 9)
    assert f.name == "f"


def test_comments_everywhere():
    m = parse_text("# header\n\nseed 1  # trailing\n# between\ninput x: f64[3] # after a type\n\ny = x # done\n")
    assert [type(s).__name__ for s in m.stmts] == ["Seed", "Input", "Assign"]
    assert [s.span.line for s in m.stmts] == [3, 5, 7]


def test_semicolon_separators():
    m = parse_text("g = 1; h = 2 # trailing comment\nseed 3;")
    g, h, s = m.stmts
    assert (g.name, h.name) == ("g", "h")
    assert span(g) == (1, 1, 1, 6) and span(h) == (1, 8, 1, 13)
    assert isinstance(s, ast.Seed)


def test_semicolons_inside_blocks():
    s = only("fn f(a) { b = a * 2; return b }")
    assert [type(x).__name__ for x in s.body.stmts] == ["Assign", "Return"]


def test_backslash_line_continuation():
    (s,) = parse_text("y = 1 + \\\n  2").stmts
    assert sx(s.value) == "(+ 1 2)"


def test_newline_ends_a_statement():
    m = parse_text("a = 1\nb = a")
    assert [s.name for s in m.stmts] == ["a", "b"]


# ---------------------------------------------------------------- syntax errors
@pytest.mark.parametrize("text, line, col, message", [
    ("x = (1 + 2", 1, 5, "unclosed `(`: no matching `)` before end of file"),
    ("x = 1 + 2)", 1, 10, "unmatched `)`"),
    ("x = f(1, 2]", 1, 11, "`]` does not match `(`"),
    ('x = "abc', 1, 5, "unterminated string"),
    ("x = a | b", 1, 7, "unexpected character `|` (the pipe operator is `|>`)"),
    ("x = f(a=1, 2)", 1, 12, "positional argument after a keyword argument"),
    ("x = a |> 3", 1, 10, "a pipe stage must be a function name or a call, as in `x |> relu` or `x |> Dense(10)`"),
])
def test_syntax_errors(text, line, col, message):
    (d,) = parse_errors(text)
    assert (d.span.line, d.span.column) == (line, col)
    assert d.message == message
    assert d.render().startswith(f"t.dl:{line}:{col}: error: {message}")


def test_comparisons_do_not_chain():
    (d,) = parse_errors("x = a > b > c")
    assert (d.span.line, d.span.column) == (1, 11)
    assert d.message.startswith("unexpected `>`")


def test_a_line_cannot_start_with_a_binary_operator():
    (d,) = parse_errors("c = 1\n  + 2")
    assert (d.span.line, d.span.column) == (2, 3)
    assert d.message.startswith("unexpected `+`")


def test_render_has_caret_under_the_span():
    (d,) = parse_errors("x = 1 + 2)")
    assert d.render() == "t.dl:1:10: error: unmatched `)`\n    x = 1 + 2)\n             ^"


# ---------------------------------------------------------------- precedence table (§5)
@pytest.mark.parametrize("text, tree", [
    ("a + b * c ** -d ** e", "(+ a (* b (** c (- (** d e)))))"),
    ("-x ** 2", "(- (** x 2))"),
    ("-2 ** 2", "(- (** 2 2))"),
    ("a ** b ** c", "(** a (** b c))"),
    ("2 ** -1", "(** 2 (- 1))"),
    ("-a * b", "(* (- a) b)"),
    ("a < b and not c or d", "(or (and (< a b) (not c)) d)"),
    ("not a == b", "(not (== a b))"),
    ("not a and b", "(and (not a) b)"),
    ("a or b and c", "(or a (and b c))"),
    ("a + b < c * d", "(< (+ a b) (* c d))"),
    ("x |> f(1) |> g", "(pipe g (pipe f x 1))"),
    ("a - b - c", "(- (- a b) c)"),
    ("a / b / c", "(/ (/ a b) c)"),
    ("a / b % c * d", "(* (% (/ a b) c) d)"),
    ("a @ b + c", "(+ (@ a b) c)"),
    ("a + b @ c", "(+ a (@ b c))"),
    ("a @ b * c", "(* (@ a b) c)"),
    ("x[0] ** 2", "(** (index x 0) 2)"),
    ("-h1.W", "(- (. h1 W))"),
    ("f(x)[1]", "(index (call f x) 1)"),
    ("a + b |> f", "(pipe f (+ a b))"),
    ("a < b |> f", "(pipe f (< a b))"),
    ("if a < b then c + d else e * f", "(if (< a b) (+ c d) (* e f))"),
    ("if c then a else if d then b else e", "(if c a (if d b e))"),
])
def test_precedence(text, tree):
    assert sx(expr(text)) == tree


def test_pipe_is_looser_than_if():
    assert sx(expr("if c then a else b |> f")) == "(pipe f (if c a b))"
