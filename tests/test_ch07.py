"""The chapter 7 (Keras) programs check, and metrics of different train blocks stay apart."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wengert.dsl.lower import lower_source
from wengert.dsl.source import Source, read_source

CH07 = Path(__file__).resolve().parent.parent / "models" / "ch07"


@pytest.mark.parametrize("path", sorted(CH07.glob("listing_7_0*.dl")), ids=lambda p: p.name)
def test_ch07_programs_check(path):
    module = lower_source(read_source(str(path)))
    assert module.trains


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
