"""Seeded smoke runs of the book's deep models on real data (issue 5); skipped without the data."""
from __future__ import annotations

from pathlib import Path

import pytest

import wengert

MODELS = Path(__file__).resolve().parent.parent / "models"
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="needs `apt-get install dataset-fashion-mnist`")
def test_listing_7_7_cnn_learns_fashion_mnist_on_a_subset():
    source = (MODELS / "ch07" / "listing_7_07.dl").read_text()
    # 8000 shuffled training images, 2 epochs; 2000 test images.
    source = source.replace('y="/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")',
                            'y="/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") |> shuffle(0) '
                            '|> take(8000)', 1)
    source = source.replace('y="/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")',
                            'y="/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") |> take(2000)', 1)
    assert source.count("take(") == 2
    prog = wengert.compile(source, path=str(MODELS / "ch07" / "listing_7_07.dl"))
    history = prog.train(epochs=2)
    assert history[-1]["valid_accuracy"] >= 0.80
