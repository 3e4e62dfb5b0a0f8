"""The chapter 7 (Keras) programs check, and metrics of different train blocks stay apart."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import wengert
from wengert.dsl.lower import lower_source
from wengert.diagnostics import Source, read_source
from wengert.train import data

CH07 = Path(__file__).resolve().parent.parent / "models" / "ch07"
HAVE_LISTS = all((data.WORDS_DIR / name).exists() for _, name, _ in data.WORDS_LISTS)
EPOCHS = 3  # of the language identifier's smoke run


@pytest.mark.parametrize("path", sorted(CH07.glob("listing_7_0*.dl")), ids=lambda p: p.name)
def test_ch07_programs_check(path):
    module = lower_source(read_source(str(path)))
    assert module.trains


@pytest.mark.parametrize("name", ["langid_lstm.dl", "langid_bilstm.dl"])
def test_language_identifiers_check(name):
    module = lower_source(read_source(str(CH07 / name)))
    assert module.trains and set(module.data) >= {"train", "test"}


def test_ch07_has_all_eight_listings():
    assert [p.name for p in sorted(CH07.glob("listing_7_0*.dl"))] == [f"listing_7_0{k}.dl" for k in range(1, 9)]


def test_same_metric_label_in_two_train_blocks_keeps_both_values():
    module = lower_source(Source("t.dl", textwrap.dedent("""
        input x: f64[batch]
        a = mean(x)
        b = sum(x)
        fn twice(v) = 2 * v
        data D = random_regression(examples=4, features=1, seed=0)
        train one {
          data = D
          minimize = a
          metrics = [twice(a)]
        }
        train two {
          data = D
          minimize = b
          metrics = [twice(b)]
        }
        """).lstrip("\n")))
    (label1, hidden1), = module.trains["one"].metrics
    (label2, hidden2), = module.trains["two"].metrics
    assert label1 == label2 == "twice"
    assert hidden1 != hidden2
    assert module.hidden[hidden1] is not module.hidden[hidden2]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LISTS, reason="needs `apt-get install wamerican wngerman wfrench witalian wspanish`")
def test_lstm_language_identifier_learns_on_a_subset():
    """The flagship program's architecture and optimizer on 5 x 400 words (1600 train, 400 test).
    Seeds 0, 1, 2 of both the program and the source reach 0.72..0.74 after 3 epochs."""
    path = CH07 / "langid_lstm.dl"
    source = path.read_text()
    assert source.count("per_language=10000") == 1
    prog = wengert.compile(source.replace("per_language=10000", "per_language=400"), path=str(path))
    history = prog.train(epochs=EPOCHS)
    assert len(history) == EPOCHS
    assert history[-1]["valid_accuracy"] >= 0.55  # chance is 0.2
