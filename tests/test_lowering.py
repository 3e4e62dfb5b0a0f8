"""Lowering and checking: names (§7), fns, imports, loops (§6), updates, data (§9), train (§10)."""
from __future__ import annotations

import pytest

from conftest import errors, lower, ptyp, typ, where
from wengert.diagnostics import DiagnosticError
from wengert.dsl.lower import check_file
from wengert.runtime.ir import Initializer


def eqns(block, prim=None):
    """All equations of a block, nested regions included (optionally of one primitive)."""
    out = []
    for e in block.eqns:
        if prim is None or e.prim == prim:
            out.append(e)
        for r in e.regions:
            out.extend(eqns(r, prim))
    return out


# ---------------------------------------------------------------- the §1 program
FIRST_PROGRAM = """
# models/logistic.dl — logistic regression (Theano listing style)
seed 0

input x: f64[batch, 100]
input y: f64[batch]

param w: f64[100] = normal(0, 1)
param b: f64      = 0

fn l2(t) = sum(t ** 2)

p          = sigmoid(x @ w + b)
loss       = mean(binary_crossentropy(p, y)) + 0.01 * l2(w)
prediction = p > 0.5

data blobs = random_classification(examples=1000, features=100, seed=0)

train {
  data      = blobs
  minimize  = loss
  optimizer = sgd(lr=0.1)
  epochs    = 1000
  batch     = all
  metrics   = [accuracy(prediction, y)]
}
"""


def test_first_program_checks():
    m = lower(FIRST_PROGRAM)
    assert m.seed == 0
    assert list(m.inputs) == ["x", "y"]
    assert list(m.params) == ["w", "b"]
    assert ptyp(m, "w") == "f64[100]" and ptyp(m, "b") == "f64[]"
    assert m.params["w"].init == Initializer("normal", (("mean", 0), ("std", 1)))
    assert float(m.params["b"].init) == 0.0
    assert list(m.values) == ["p", "loss", "prediction"]
    assert (typ(m, "p"), typ(m, "loss"), typ(m, "prediction")) == ("f64[batch]", "f64[]", "bool[batch]")
    t = m.trains[None]
    assert t.minimize == "loss"
    assert t.config == {"data": "blobs", "epochs": 1000, "batch": "all", "optimizer": (
        "sgd", {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0})}
    assert t.metrics == [("accuracy", "metric:accuracy")]
    assert str(m.type_of(m.hidden["metric:accuracy"])) == "f64[]"
    # the user's l2 shadows the built-in: a note, not an error
    (note,) = m.notes
    assert note.severity == "note" and note.span.line == 10
    assert note.message == "`l2` shadows the built-in of the same name"


def test_seed_statement():
    assert lower("seed 42\nx = 1").seed == 42
    assert lower("x = 1").seed == 0
    (e,) = errors("seed -1")
    assert where(e) == (1, 6) and e.message == "`seed` needs a non-negative integer, got an integer"


# ---------------------------------------------------------------- parameter names (§7)
def test_bound_layer_call_names_params_after_the_binding():
    m = lower("""
        input x: f32[batch, 784]
        h1 = Dense(x, 128)
        h2 = Dense(h1, 10)
    """)
    assert list(m.params) == ["h1.W", "h1.b", "h2.W", "h2.b"]
    assert ptyp(m, "h1.W") == "f32[784, 128]"  # dim(x, -1) of the argument
    assert ptyp(m, "h1.b") == "f32[128]"
    assert ptyp(m, "h2.W") == "f32[128, 10]"
    assert m.params["h1.W"].init == Initializer("glorot") and m.params["h1.b"].init == Initializer("zeros")
    assert typ(m, "h2") == "f32[batch, 10]"


def test_piped_layers_are_numbered_in_source_order():
    m = lower("""
        input x: f32[batch, 28, 28, 1]
        input y: f32[batch, 10]
        logits = x |> Conv2D(32, 3) |> relu |> Conv2D(32, 3) |> relu |> MaxPooling2D(2)
                   |> Dropout(0.25) |> Flatten |> Dense(128) |> relu |> Dropout(0.5) |> Dense(10)
        probs  = softmax(logits)
        loss   = mean(categorical_crossentropy(probs, y))
    """)
    assert list(m.params) == ["Conv2D_1.W", "Conv2D_1.b", "Conv2D_2.W", "Conv2D_2.b",
                              "Dense_1.W", "Dense_1.b", "Dense_2.W", "Dense_2.b"]
    assert ptyp(m, "Conv2D_1.W") == "f32[3, 3, 1, 32]"
    assert ptyp(m, "Conv2D_2.W") == "f32[3, 3, 32, 32]"
    assert ptyp(m, "Dense_1.W") == "f32[4608, 128]"  # 12 * 12 * 32 after two valid convs and a 2x2 pool
    assert ptyp(m, "Dense_2.W") == "f32[128, 10]"
    assert typ(m, "logits") == "f32[batch, 10]"
    assert typ(m, "loss") == "f32[]"


def test_unbound_calls_share_the_numbering_with_pipes():
    m = lower("""
        input x: f64[4, 3]
        a = x |> Dense(5)
        b = relu(Dense(x, 6))
        c = Dense(x, 7)
        d = x |> Dense(8)
    """)
    assert list(m.params) == ["Dense_1.W", "Dense_1.b", "Dense_2.W", "Dense_2.b",
                              "c.W", "c.b", "Dense_3.W", "Dense_3.b"]
    assert [ptyp(m, f"Dense_{k}.W") for k in (1, 2, 3)] == ["f64[3, 5]", "f64[3, 6]", "f64[3, 8]"]


def test_nested_layers_get_dotted_names():
    m = lower("""
        input xs: f32[batch, time, 16]
        bi = Bidirectional(xs, 8)
    """)
    assert list(m.params) == ["bi.forward.W", "bi.forward.U", "bi.forward.b",
                              "bi.forward.peep_i", "bi.forward.peep_f", "bi.forward.peep_o",
                              "bi.backward.W", "bi.backward.U", "bi.backward.b",
                              "bi.backward.peep_i", "bi.backward.peep_f", "bi.backward.peep_o"]
    assert ptyp(m, "bi.forward.W") == "f32[16, 32]"
    assert ptyp(m, "bi.backward.U") == "f32[8, 32]"
    assert m.params["bi.forward.U"].init == Initializer("orthogonal")
    assert typ(m, "bi") == "f32[batch, 16]"


def test_nested_user_layers_numbered_inside_their_parent():
    m = lower("""
        layer Block(x, units) {
          a = Dense(x, units)
          return x |> Dense(units) |> Dense(units)
        }
        input x: f64[2, 3]
        blk = Block(x, 4)
        y = x |> Block(5)
    """)
    assert list(m.params) == ["blk.a.W", "blk.a.b", "blk.Dense_1.W", "blk.Dense_1.b", "blk.Dense_2.W",
                              "blk.Dense_2.b", "Block_1.a.W", "Block_1.a.b", "Block_1.Dense_1.W",
                              "Block_1.Dense_1.b", "Block_1.Dense_2.W", "Block_1.Dense_2.b"]
    assert ptyp(m, "Block_1.Dense_2.W") == "f64[5, 5]"


def test_stdlib_layer_params_and_state():
    m = lower("""
        input ids: i64[batch, 5]
        input xs: f32[batch, time, 16]
        e = Embedding(ids, 100, 12)
        bn = BatchNorm(e)
        r = SimpleRNN(xs, 4)
        l = xs |> LSTM(3)
    """)
    assert ptyp(m, "e.E") == "f32[100, 12]"
    assert m.params["e.E"].init == Initializer("uniform", (("high", 0.05), ("low", -0.05)))
    assert [(n, m.params[n].kind, ptyp(m, n)) for n in m.params if n.startswith("bn.")] == [
        ("bn.gamma", "param", "f32[12]"), ("bn.beta", "param", "f32[12]"),
        ("bn.running_mean", "state", "f32[12]"), ("bn.running_var", "state", "f32[12]")]
    assert list(m.updates) == ["bn.running_mean", "bn.running_var"]
    assert (ptyp(m, "r.W"), ptyp(m, "r.U"), ptyp(m, "r.b")) == ("f32[16, 4]", "f32[4, 4]", "f32[4]")
    assert (ptyp(m, "LSTM_1.W"), ptyp(m, "LSTM_1.U")) == ("f32[16, 12]", "f32[3, 12]")
    assert (typ(m, "e"), typ(m, "bn"), typ(m, "r"), typ(m, "l")) == (
        "f32[batch, 5, 12]", "f32[batch, 5, 12]", "f32[batch, 4]", "f32[batch, 3]")


def test_user_layer_param_shapes_use_dim_of_arguments():
    m = lower("""
        layer Bilinear(a, b, k) {
          param W: dtype(a)[dim(a, -1), k, dim(b, 1)] = normal(std=0.1)
          return sum(a, axis=1)
        }
        input a: f32[2, 7]
        input b: f64[2, 9]
        z = Bilinear(a, b, 3)
    """)
    assert ptyp(m, "z.W") == "f32[7, 3, 9]"
    assert m.params["z.W"].init == Initializer("normal", (("std", 0.1),))


def test_dotted_reference_to_a_layer_param():
    m = lower("""
        input x: f64[4, 3]
        h1 = Dense(x, 5)
        reg = sum(h1.W ** 2)
        wt = h1.W
    """)
    assert typ(m, "reg") == "f64[]"
    assert m.values["wt"] is m.params["h1.W"].var
    (e,) = errors("input x: f64[4, 3]\nh1 = Dense(x, 5)\nr = h1.V")
    assert where(e) == (3, 5)
    assert e.message.startswith("unknown parameter `h1.V`")


def test_param_declared_twice_by_one_binding_name_is_an_error():
    errs = errors("input x: f64[4, 3]\nh = Dense(x, 5)\nh = Dense(x, 5)")
    assert [(where(e), e.message) for e in errs] == [
        ((3, 5), "in `Dense`: param `h.W` is already declared (line 2)"),
        ((3, 5), "in `Dense`: param `h.b` is already declared (line 2)"),
        ((3, 1), "`h` is already bound (line 2); names are bound once per scope"),
    ]


# ---------------------------------------------------------------- fns
def test_user_fn_is_inlined_at_each_call():
    m = lower("""
        input x: f64[4, 3]
        fn sq(t) = t * t
        a = sq(x)
        b = sq(a)
    """)
    assert (typ(m, "a"), typ(m, "b")) == ("f64[4, 3]", "f64[4, 3]")
    assert [e.prim for e in m.main.eqns] == ["mul", "mul"]
    first, second = m.main.eqns
    assert first.inputs == (m.inputs["x"].var, m.inputs["x"].var)
    assert second.inputs == (m.values["a"], m.values["a"])
    assert first.span.line == second.span.line == 2  # both equations come from the fn body
    assert (first.span.column, first.span.end_column) == (12, 17)


def test_fn_defaults_and_keywords():
    m = lower("""
        fn f(a, b=a * 2, c=1) = a + b + c
        p = f(1)
        q = f(1, 5)
        r = f(1, c=10)
        s = f(b=0.5, a=2)
    """)
    consts = {n: float(next(e for e in m.main.eqns if e.outputs[0] is v).params["value"])
              for n, v in m.values.items()}
    assert consts == {"p": 4.0, "q": 7.0, "r": 13.0, "s": 3.5}
    assert (typ(m, "p"), typ(m, "s")) == ("i64[]", "f64[]")


def test_fn_argument_errors():
    (e,) = errors("fn f(a, b) = a + b\nx = f(1)")
    assert where(e) == (2, 5)
    assert e.message == "`f` is missing argument `b` (it takes 2 arguments: a, b)"
    (e,) = errors("fn f(a, b) = a + b\nx = f(1, c=2, b=3)")
    assert where(e) == (2, 10) and e.message == "`f` has no argument `c`"
    (e,) = errors("fn f(a) = a\nx = f(1, 2)")
    assert where(e) == (2, 10) and e.message == "`f` takes 1 argument but 2 were given"


def test_fn_block_form_with_local_names():
    m = lower("""
        input x: f64[3]
        fn g(a) {
          t = a * 2
          u = t + 1
          return u * u
        }
        y = g(x)
        z = g(y)
    """)
    assert (typ(m, "y"), typ(m, "z")) == ("f64[3]", "f64[3]")
    assert list(m.values) == ["y", "z"]  # locals of the fn are not named values
    assert [e.prim for e in m.main.eqns] == ["const", "mul", "const", "add", "mul"] * 2


def test_fn_may_be_used_before_its_definition():
    m = lower("input x: f64[2]\ny = twice(x)\nfn twice(t) = 2 * t")
    assert typ(m, "y") == "f64[2]"


def test_recursion_is_reported():
    (e,) = errors("fn f(a) = f(a)\ny = f(1)")
    assert where(e) == (1, 11)
    assert e.message == "recursion is not supported: f -> f (functions are inlined at each call)"


def test_layer_called_inside_a_fn():
    m = lower("""
        input x: f64[4, 3]
        fn block(v) = relu(Dense(v, 5))
        fn named(v) {
          h = Dense(v, 6)
          return h
        }
        c = block(x)
        d = block(c)
        e = x |> block
        g = named(x)
    """)
    # Inside a fn (which may be called many times) a bound layer call is numbered too.
    assert list(m.params) == ["Dense_1.W", "Dense_1.b", "Dense_2.W", "Dense_2.b", "Dense_3.W", "Dense_3.b",
                              "Dense_4.W", "Dense_4.b"]
    assert (ptyp(m, "Dense_1.W"), ptyp(m, "Dense_2.W"), ptyp(m, "Dense_3.W")) == (
        "f64[3, 5]", "f64[5, 5]", "f64[3, 5]")
    assert ptyp(m, "Dense_4.W") == "f64[3, 6]"
    assert (typ(m, "d"), typ(m, "g")) == ("f64[4, 5]", "f64[4, 6]")


def test_fn_binding_a_layer_can_be_called_twice():
    m = lower("""
        input x: f64[4, 3]
        fn block(v) {
          h = Dense(v, 5)
          return relu(h)
        }
        c = block(x)
        d = block(c)
    """)
    assert len(m.params) == 4
    assert sorted(ptyp(m, n) for n in m.params) == ["f64[3, 5]", "f64[5, 5]", "f64[5]", "f64[5]"]


def test_rebinding_a_name_names_the_first_binding():
    (e,) = errors("a = 1\nb = 2\na = 3")
    assert where(e) == (3, 1)
    assert e.message == "`a` is already bound (line 1); names are bound once per scope"


def test_undefined_name_with_suggestion():
    (e,) = errors("input x: f64[3]\ny = xx + 1")
    assert where(e) == (2, 5)
    assert e.message == "undefined name `xx` (did you mean `x`?)"
    assert e.render() == ("t.dl:2:5: error: undefined name `xx` (did you mean `x`?)\n"
                          "    y = xx + 1\n"
                          "        ^^")


def test_unknown_keyword_of_builtin_with_suggestion():
    (e,) = errors("input x: f64[3]\ny = sum(x, axsi=1)")
    assert where(e) == (2, 12)
    assert e.message == "`sum` has no argument `axsi` (did you mean `axis`?)"


def test_independent_mistakes_are_reported_together():
    errs = errors("a = b\nc = d")
    assert [(where(e), e.message) for e in errs] == [((1, 5), "undefined name `b`"),
                                                      ((2, 5), "undefined name `d`")]


# ---------------------------------------------------------------- imports
HELPERS = """
fn double(t) = 2 * t
layer Affine(x, units) {
  param W: dtype(x)[dim(x, -1), units] = glorot()
  param b: dtype(x)[units] = zeros
  return x @ W + b
}
"""


def test_import_brings_fns_and_layers(write):
    write("helpers.dl", HELPERS)
    main = write("main.dl", """
        import "helpers.dl"
        input x: f32[batch, 3]
        y = double(x)
        z = Affine(x, 4)
        w = x |> Affine(2) |> Affine(5)
    """)
    m = check_file(main)
    assert (typ(m, "y"), typ(m, "z"), typ(m, "w")) == ("f32[batch, 3]", "f32[batch, 4]", "f32[batch, 5]")
    assert list(m.params) == ["z.W", "z.b", "Affine_1.W", "Affine_1.b", "Affine_2.W", "Affine_2.b"]
    assert ptyp(m, "Affine_2.W") == "f32[2, 5]"
    assert "double" in m.fns and "Affine" in m.fns


def test_import_path_is_relative_to_the_importing_file(write, tmp_path):
    write("lib/helpers.dl", 'import "more.dl"\n' + HELPERS)
    write("lib/more.dl", "fn triple(t) = 3 * t")
    main = write("sub/main.dl", """
        import "../lib/helpers.dl"
        input x: f64[2]
        y = triple(double(x))
    """)
    m = check_file(main)
    assert typ(m, "y") == "f64[2]"


def test_import_ignores_the_imported_files_values(write):
    write("helpers.dl", "input other: f64[3]\nunused = 1\nfn f(t) = t")
    m = check_file(write("main.dl", 'import "helpers.dl"\ny = f(2.0)'))
    assert list(m.inputs) == [] and list(m.values) == ["y"]


def test_import_cycle_is_reported_at_the_import_line(write):
    write("a.dl", 'import "b.dl"\nfn fa(x) = x')
    write("b.dl", 'fn fb(x) = x\nimport "a.dl"')
    with pytest.raises(DiagnosticError) as info:
        check_file(write("c.dl", 'import "a.dl"\nv = fa(1)'))
    (e,) = info.value.errors
    assert e.span.file.endswith("b.dl")
    assert where(e) == (2, 1)
    assert e.message == "import cycle: a.dl -> b.dl -> a.dl"


def test_self_import_is_a_cycle(write):
    with pytest.raises(DiagnosticError) as info:
        check_file(write("self.dl", 'x = 1\nimport "self.dl"'))
    (e,) = info.value.errors
    assert where(e) == (2, 1) and e.message == "import cycle: self.dl -> self.dl"


def test_missing_import_file(write):
    with pytest.raises(DiagnosticError) as info:
        check_file(write("main.dl", 'input x: f64[2]\n\nimport "nope.dl"'))
    (e,) = info.value.errors
    assert e.span.file.endswith("main.dl")
    assert where(e) == (3, 1)
    assert e.message == 'cannot import "nope.dl": no such file'


def test_syntax_error_in_an_imported_file_points_into_that_file(write):
    write("bad.dl", "fn f(t) = t +\n")
    with pytest.raises(DiagnosticError) as info:
        check_file(write("main.dl", 'import "bad.dl"\ny = 1'))
    (e,) = info.value.errors
    assert e.span.file.endswith("bad.dl")
    assert e.message == "unexpected end of file"


def test_import_only_at_top_level(write):
    write("h.dl", "fn f(t) = t")
    with pytest.raises(DiagnosticError) as info:
        check_file(write("main.dl", 'fn g(a) {\n  import "h.dl"\n  return a\n}\ny = g(1)'))
    (e,) = info.value.errors
    assert where(e) == (2, 3) and e.message == "`import` is only allowed at the top level"


def test_diamond_import(write):
    write("common.dl", "fn sq(t) = t * t")
    write("x.dl", 'import "common.dl"\nfn f1(t) = sq(t) + 1')
    write("y.dl", 'import "common.dl"\nfn f2(t) = sq(t) + 2')
    m = check_file(write("main.dl", 'import "x.dl"\nimport "y.dl"\ninput a: f64[3]\nb = f1(a) + f2(a)'))
    assert typ(m, "b") == "f64[3]"


# ---------------------------------------------------------------- loops (§6)
def test_for_carries_names_and_the_value_after_the_loop_is_its_output():
    m = lower("""
        input xs: f64[batch, time, 3]
        param U: f64[3, 4] = zeros
        param W: f64[4, 4] = zeros
        h = zeros([dim(xs, 0), 4])
        for t in 0..dim(xs, 1) {
          h = tanh(xs[:, t] @ U + h @ W)
        }
        out = h
    """)
    (loop,) = [e for e in m.main.eqns if e.prim == "for"]
    assert loop.params["start"] == 0 and str(loop.params["stop"]) == "time"
    assert loop.params["reversed"] is False and loop.params["n_carried"] == 1
    assert m.values["h"] is loop.outputs[0]
    assert m.values["out"] is loop.outputs[0]
    assert typ(m, "h") == "f64[batch, 4]"
    body = loop.regions[0]
    assert [str(m.type_of(a)) for a in body.args] == ["i64[]", "f64[batch, 4]"]
    assert [e.prim for e in body.eqns].count("matmul") == 2


def test_for_bound_from_an_integer_input_and_weak_literal_widening():
    m = lower("""
        input k: i64
        input a: f64
        r = 1
        for i in 0..k {
          r = r * a
        }
    """)
    (loop,) = eqns(m.main, "for")
    assert loop.params["stop"] is None  # known at run time: the operand
    assert loop.inputs[-1] is m.inputs["k"].var
    assert typ(m, "r") == "f64[]"  # `r = 1` (a weak literal) widens to the carried f64
    assert m.values["r"] is loop.outputs[0]


def test_for_reversed_and_integer_accumulator():
    m = lower("""
        acc = 0
        for i in reversed(0..5) {
          acc = acc + i
        }
    """)
    (loop,) = eqns(m.main, "for")
    assert (loop.params["start"], loop.params["stop"], loop.params["reversed"]) == (0, 5, True)
    assert typ(m, "acc") == "i64[]"


def test_nested_for_loops():
    m = lower("""
        input k: i64
        h = 1.0
        for i in 0..k {
          for j in 0..i {
            h = h * 2
          }
        }
    """)
    outer = next(e for e in m.main.eqns if e.prim == "for")
    assert len(eqns(outer.regions[0], "for")) == 1
    assert typ(m, "h") == "f64[]"


def test_names_first_bound_in_a_loop_are_local():
    (e,) = errors("for i in 0..3 { tmp = i * 2 }\ny = tmp")
    assert where(e) == (2, 5) and e.message == "undefined name `tmp`"


@pytest.mark.parametrize("text, pos, message", [
    ("for i in 0..3 { i = 2 }", (1, 1), "the loop variable `i` cannot be assigned in the loop"),
    ("input x: f64\nfor i in 0..3 { x = x + 1 }", (2, 1), "cannot assign to input `x` inside a loop"),
    ("for i in 0..2.5 { y = 1 }", (1, 13), "a loop bound must be an integer, got a number"),
    ("input s: f64\nfor i in 0..s { y = 1 }", (2, 13), "a loop bound must be an integer scalar, got f64[]"),
    ("for i in [1, 2] { y = 1 }", (1, 10), "`for` iterates over a range `a..b` or `reversed(a..b)`"),
    ("input x: f64[2]\nh = x\nfor i in 0..3 { h = concat([h, x]) }", (3, 1),
     "loop-carried `h` changes type from f64[2] to f64[4] in the loop body"),
])
def test_for_errors(text, pos, message):
    (e,) = errors(text)
    assert where(e) == pos and e.message == message


def test_scan_output_shape():
    m = lower("""
        input xs: f64[batch, time, 3]
        fn step(c, x) = c + x
        sc = scan(step, zeros([dim(xs, 0), 3]), xs)
        sc0 = scan(step, zeros([dim(xs, 1), 3]), xs, axis=0)
    """)
    assert typ(m, "sc") == "f64[batch, time, 3]"
    assert typ(m, "sc0") == "f64[batch, time, 3]"
    loops = eqns(m.main, "for")
    assert [lp.params["stacked"] for lp in loops] == [(1,), (0,)]
    assert [str(lp.params["stop"]) for lp in loops] == ["time", "batch"]


def test_scan_carry_shape_change_is_an_error():
    (e,) = errors("""
        input xs: f64[4, 5]
        fn grow(c, x) = concat([c, x])
        s = scan(grow, zeros([4]), xs, axis=1)
    """)
    assert where(e) == (3, 5)
    assert e.message == "scan: `grow` changes the carry from f64[4] to f64[8]"


def test_if_is_lazy_and_needs_a_scalar_condition():
    m = lower("input s: f64\ny = if s > 0 then s else -s")
    (ife,) = [e for e in m.main.eqns if e.prim == "if"]
    assert len(ife.regions) == 2 and typ(m, "y") == "f64[]"
    (e,) = errors("input x: f64[2, 3]\nc = x > 0\ny = if c then 1 else 2")
    assert where(e) == (3, 8)
    assert e.message == ("the condition of `if` must be a bool scalar, got bool[2, 3] "
                         "(use where(c, a, b) for an elementwise choice)")


def test_if_with_a_static_condition_keeps_only_the_taken_branch():
    m = lower("input x: f64[2]\ny = if 1 < 2 then x * 2 else x + 1")
    assert [e.prim for e in m.main.eqns] == ["const", "mul"]


# ---------------------------------------------------------------- update
def test_update_of_state_and_param():
    m = lower("""
        state c: i64 = 0
        param w: f64[2] = [1, 2]
        update c = c + 1
        update w = w * 0.5
    """)
    assert list(m.updates) == ["c", "w"]
    v, span = m.updates["c"]
    assert str(m.type_of(v)) == "i64[]" and span.line == 3
    assert str(m.type_of(m.updates["w"][0])) == "f64[2]"


def test_update_with_a_weak_literal_broadcasts_to_the_declared_type():
    m = lower("state m: f32[3] = zeros\nupdate m = 0.5")
    assert str(m.type_of(m.updates["m"][0])) == "f32[3]"


@pytest.mark.parametrize("text, pos, message", [
    ("state c: i64 = 0\nupdate c = c + 0.5", (2, 12), "update of `c` (i64[]) has dtype f64"),
    ("state m: f32[3] = zeros\ninput x: f64[3]\nupdate m = x", (3, 12), "update of `m` (f32[3]) has dtype f64"),
    ("state m: f32[3] = zeros\ninput x: f32[4]\nupdate m = x", (3, 12), "update of `m` (f32[3]) has shape f32[4]"),
    ("x = 3\nupdate x = 1", (2, 1), "`update` needs a param or state, and `x` is not one"),
    ("state m: f32[3] = zeros\nupdate n = 1", (2, 1), "`update` needs a param or state, and `n` is not one"),
    ("state mean_sq: f32[3] = zeros\nupdate mean_sqr = 1", (2, 1),
     "`update` needs a param or state, and `mean_sqr` is not one (did you mean `mean_sq`?)"),
    ("state m: f32[3] = zeros\nupdate m = m * 2\nupdate m = m * 3", (3, 1), "`m` already has an update (line 2)"),
])
def test_update_errors(text, pos, message):
    (e,) = errors(text)
    assert where(e) == pos and e.message == message


# ---------------------------------------------------------------- params
@pytest.mark.parametrize("text, pos, message", [
    ("input x: f64[batch]\nparam w: f64[batch] = zeros", (2, 10),
     "the shape of param `w` must be known when the program is checked, but dimension `batch` is symbolic"),
    ("param w: f64[0] = zeros", (1, 10), "param `w` has a dimension of size 0"),
    ("param v: f64[2] = [1, 2, 3]", (1, 19), "the initial value does not fit the declared type f64[2]"),
    ("param w: f64[2, 3] = normal(mean=1, sdt=2)", (1, 37),
     "unknown keyword `sdt` for initializer `normal` (did you mean `std`?)"),
    ("input x: f64[2]\nparam w: f64[2] = x", (2, 19),
     "a param's initial value must be a number, an array literal or an initializer such as normal(0, 1) "
     "or glorot()"),
    ("param w: f65[2] = zeros", (1, 10), "unknown dtype `f65` (did you mean `f64`?); dtypes are bool, i32, i64, "
                                         "f32, f64"),
])
def test_param_errors(text, pos, message):
    (e,) = errors(text)
    assert where(e) == pos and e.message == message


def test_param_array_init_is_broadcast_to_the_declared_type():
    import wengert
    m = lower("param w: f32[2, 3] = [1, 2, 3]\nstate s: i64[2] = 7")
    # The checked module keeps the literal small (checking never allocates a big param) ...
    assert m.params["w"].init.shape == (3,) and str(m.params["w"].init.dtype) == "float32"
    assert m.params["s"].kind == "state" and m.params["s"].init.tolist() == 7
    # ... and the program broadcasts it to the declared type.
    values = wengert.Program(m).params
    assert values["w"].dtype.name == "float32" and values["w"].tolist() == [[1, 2, 3], [1, 2, 3]]
    assert values["s"].dtype.name == "int64" and values["s"].tolist() == [7, 7]


# ---------------------------------------------------------------- data (§9)
def test_data_pipeline_spec(tmp_path):
    m = lower("""
        data blobs = moons(100, noise=0.2) |> shuffle(3) |> take(50)
        data (tr, va) = random_regression(examples=20, features=3) |> split(0.8)
        data files = csv("d/x.csv", x=0..4, y=4)
    """)
    b = m.data["blobs"]
    assert b.names == ("blobs",)
    assert b.source == ("moons", {"examples": 100, "noise": 0.2, "seed": 0})
    assert b.transforms == [("shuffle", {"seed": 3}), ("take", {"n": 50})]
    assert m.data["tr"] is m.data["va"]
    assert m.data["tr"].names == ("tr", "va")
    assert m.data["tr"].source == ("random_regression", {"examples": 20, "features": 3, "noise": 0.1, "seed": 0})
    assert m.data["tr"].transforms == [("split", {"fraction": 0.8})]
    assert m.data["files"].source == ("csv", {"path": "d/x.csv", "x": (0, 4), "y": 4, "header": None,
                                              "delimiter": ","})


def test_data_column_transforms_before_inputs():
    m = lower("data d = moons(100) |> standardize(x) |> onehot(y, 2) |> cast(x, f32)\ninput x: f64[batch, 2]")
    assert m.data["d"].transforms == [("standardize", {"column": "x"}), ("onehot", {"column": "y", "classes": 2}),
                                      ("cast", {"column": "x", "dtype": "f32"})]


def test_data_column_transforms_after_inputs():
    m = lower("input x: f64[batch, 2]\ninput y: f64[batch]\n"
              "data d = moons(100) |> standardize(x) |> onehot(y, 2)")
    assert m.data["d"].transforms == [("standardize", {"column": "x"}), ("onehot", {"column": "y", "classes": 2})]


@pytest.mark.parametrize("text, pos, message", [
    ("data z = moons(10) |> split(0.5)", (1, 1), "`split` yields two data sets: bind them as "
                                                 "`data (train, valid) = ...`"),
    ("data (q, r) = moons(10)", (1, 1), "binding 2 names needs 1 `split` transform, the pipeline has 0"),
    ("data z = moonz(10)", (1, 10), "unknown data source `moonz` (did you mean `moons`?); known: npz, npy, csv, "
                                    "idx, moons, random_classification, random_regression, words"),
    ("data z = moons(10) |> shufle(1)", (1, 23), "unknown data transform `shufle` (did you mean `shuffle`?); "
                                                 "known: shuffle, split, take, standardize, scale, onehot, cast"),
    ("data z = moons()", (1, 10), "`moons` needs `examples`"),
    ("data z = moons(10, nois=1)", (1, 20), "`moons` has no argument `nois` (did you mean `noise`?)"),
    ("data z = moons(10)\ndata z = moons(20)", (2, 1), "data `z` is already defined (line 1)"),
])
def test_data_errors(text, pos, message):
    (e,) = errors(text)
    assert where(e) == pos and e.message == message


# ---------------------------------------------------------------- train (§10)
MODEL = """
input x: f64[batch, 2]
input y: f64[batch]
param w: f64[2] = zeros
p = sigmoid(x @ w)
loss = mean(binary_crossentropy(p, y))
per = binary_crossentropy(p, y)
prediction = p > 0.5
data (tr, va) = moons(100) |> split(0.8)
"""


def train(text: str):
    return lower(MODEL + text)


def train_errors(text: str):
    return errors(MODEL + text)


L0 = MODEL.count("\n") - 1  # MODEL ends on line L0; a train block right after it is on L0 + 1


def test_train_unnamed_on_lines():
    m = train("""
train {
  data = tr
  valid = va
  minimize = loss
  optimizer = sgd(lr=0.1, momentum=0.9)
  epochs = 3
  batch = 32
}
""")
    t = m.trains[None]
    assert t.name is None and t.minimize == "loss" and t.span.line == L0 + 2
    assert t.config == {"data": "tr", "valid": "va", "epochs": 3, "batch": 32, "optimizer": (
        "sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0})}


def test_train_named_blocks_with_semicolons():
    m = train("train a { data = tr; minimize = loss }\n"
              "train b { data = va; minimize = loss; steps = 10; schedule = step(10); "
              "early_stopping = early_stopping(3); clip_norm = 1; shuffle = false; checkpoint = \"ck.npz\"; "
              "parallel = hogwild(4) }")
    assert set(m.trains) == {"a", "b"}
    assert m.trains["a"].config == {"data": "tr"}
    assert m.trains["b"].config == {
        "data": "va", "steps": 10, "schedule": ("step", {"every": 10, "factor": 0.1}),
        "early_stopping": ("early_stopping", {"patience": 3, "min_delta": 0.0}), "clip_norm": 1.0,
        "shuffle": False, "checkpoint": "ck.npz", "parallel": ("hogwild", {"workers": 4})}


def test_optimizer_defaults_follow_torch():
    m = train("train { data = tr; minimize = loss; optimizer = adam() }")
    assert m.trains[None].config["optimizer"] == ("adam", {
        "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False})
    m = train("train { data = tr; minimize = loss; optimizer = adam(0.5, 0.8) }")
    name, kw = m.trains[None].config["optimizer"]
    assert (name, kw["lr"], kw["beta1"], kw["beta2"], kw["eps"]) == ("adam", 0.5, 0.8, 0.999, 1e-8)


@pytest.mark.parametrize("opt, defaults", [
    ("adagrad", {"lr": 0.01, "lr_decay": 0.0, "weight_decay": 0.0, "eps": 1e-10}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False}),
    ("adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}),
    ("adamax", {"lr": 0.002, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}),
])
def test_other_optimizer_defaults(opt, defaults):
    m = train(f"train {{ data = tr; minimize = loss; optimizer = {opt} }}")
    assert m.trains[None].config["optimizer"] == (opt, defaults)


def test_metrics_are_named_and_numbered():
    m = train("train { data = tr; minimize = loss; metrics = [accuracy(prediction, y), accuracy(p, y), mean(per)] }")
    t = m.trains[None]
    assert t.metrics == [("accuracy", "metric:accuracy"), ("accuracy_2", "metric:accuracy_2"),
                         ("mean", "metric:mean")]
    assert [str(m.type_of(m.hidden[h])) for _, h in t.metrics] == ["f64[]", "f64[]", "f64[]"]


@pytest.mark.parametrize("text, col, message", [
    ("train { data = tr\n epcohs = 3\n minimize = loss }", None, "unknown train setting `epcohs` (did you mean "
                                                                "`epochs`?)"),
    ("train { data = tr; minimize = loss; optimizer = adamw(lr=0.1) }", 49,
     "unknown optimizer `adamw` (did you mean `adam`?); known: sgd, adagrad, rmsprop, adadelta, adam, adamax, "
     "nadam, rprop, esgd"),
    ("train { data = tr; minimize = loss; optimizer = adam(lr=0.01, beta3=1) }", 63,
     "`adam` has no argument `beta3` (did you mean `beta2`?)"),
    ("train { data = tr; minimize = per }", 31,
     "`minimize` needs a scalar, but `per` is f64[batch] (reduce it with mean or sum)"),
    ("train { data = tr; minimize = nope }", 31, "`minimize` needs a named value; `nope` is not one"),
    ("train { data = tr; minimize = loss; metrics = [per] }", 48, "a metric must be a scalar, got f64[batch]"),
    ("train { minimize = loss }", 1, "a train block needs `data = <a data set>`"),
    ("train { data = tr }", 1, "a train block needs `minimize = <a scalar named value>`"),
    ("train { data = tarin; minimize = loss }", 16, "`tarin` is not a data set"),
    ("train { data = trr; minimize = loss }", 16, "`trr` is not a data set (did you mean `tr`?)"),
    ("train { data = tr; minimize = loss; batch = 0 }", 45,
     "`batch` must be a positive integer or `all`, got an integer"),
    ("train { data = tr; minimize = loss; epochs = 1; epochs = 2 }", 49, f"`epochs` is set twice (line {L0 + 1})"),
    ("train { data = tr; minimize = loss; shuffle = 1 }", 47, "`shuffle` must be true or false, got an integer"),
])
def test_train_errors(text, col, message):
    (e,) = train_errors(text)
    assert e.message == message
    if col is None:
        assert where(e) == (L0 + 2, 2)
    else:
        assert where(e) == (L0 + 1, col)


def test_two_unnamed_train_blocks():
    (e,) = train_errors("train { data = tr; minimize = loss }\ntrain { data = va; minimize = loss }")
    assert where(e) == (L0 + 2, 1)
    assert e.message == f"an unnamed train block is already defined (line {L0 + 1})"
