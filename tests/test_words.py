"""The `words` source (language identification from /usr/share/dict) and the real Fashion-MNIST files."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from wengert.diagnostics import DiagnosticError
from wengert.dsl.lower import lower_source
from wengert.diagnostics import Source
from wengert.train import data
from wengert.train.data import (
    WORDS_ALPHABET,
    WORDS_LISTS,
    WORDS_VOCAB,
    DataError,
    load,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")
HAVE_LISTS = all((data.WORDS_DIR / name).exists() for _, name, _ in WORDS_LISTS)
real_lists = pytest.mark.skipif(not HAVE_LISTS, reason="the word lists are not installed "
                                "(apt-get install wamerican wngerman wfrench witalian wspanish)")


def columns(tmp_path, pipeline: str) -> dict[str, np.ndarray]:
    module = lower_source(Source(str(tmp_path / "t.dl"), textwrap.dedent(f"data d = {pipeline}\n")))
    return load(module.data["d"])["d"].columns


def decode(row: np.ndarray) -> str:
    return "".join(WORDS_ALPHABET[i - 1] for i in row if i)


def test_alphabet_is_fixed_and_sorted():
    assert WORDS_ALPHABET == "".join(sorted(set(WORDS_ALPHABET)))
    assert WORDS_VOCAB == 53 and "'" not in WORDS_ALPHABET and " " not in WORDS_ALPHABET


@real_lists
def test_words_shapes_dtypes_balance_and_padding(tmp_path):
    cols = columns(tmp_path, "words(per_language=200, max_len=12, seed=1)")
    x, y = cols["x"], cols["y"]
    assert set(cols) == {"x", "y"}
    assert x.shape == (1000, 12) and x.dtype == np.int64
    assert y.shape == (1000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200] * 5
    assert 0 <= x.min() and x.max() < WORDS_VOCAB
    assert (x[:, 0] > 0).all()  # no empty word
    # right-padded: once a 0 appears, the rest of the row is 0
    padded = np.cumsum(x == 0, axis=1) > 0
    assert (x[padded] == 0).all()
    assert not (np.diff(y) == 0).all()  # shuffled, not in blocks of one language
    words = [decode(r) for r in x]
    assert len(set(words)) == len(words)  # without replacement, and no word in two languages
    assert all(w == w.lower() and "'" not in w for w in words)


@real_lists
def test_no_word_is_in_two_lists(tmp_path):
    lists = data._word_lists(None)
    assert [len(w) for w in lists] and all(len(w) > 50000 for w in lists)
    seen: set[str] = set()
    for words in lists:
        assert seen.isdisjoint(words)
        seen |= set(words)
    for words in lists:  # every kept word uses only the fixed alphabet
        assert set("".join(words)) <= set(WORDS_ALPHABET)


@real_lists
def test_words_seeded(tmp_path):
    a = columns(tmp_path, "words(per_language=50, max_len=10, seed=7)")
    b = columns(tmp_path, "words(per_language=50, max_len=10, seed=7)")
    c = columns(tmp_path, "words(per_language=50, max_len=10, seed=8)")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])


@real_lists
def test_words_max_len_and_too_few(tmp_path):
    x = columns(tmp_path, "words(per_language=20, max_len=4, seed=0)")["x"]
    assert x.shape == (100, 4)
    with pytest.raises(DataError, match=r"the \w+ list has \d+ words of at most 2 characters"):
        columns(tmp_path, "words(per_language=5000, max_len=2, seed=0)")
    with pytest.raises(DiagnosticError, match="`max_len` must be a positive integer"):  # refused while checking
        columns(tmp_path, "words(per_language=5, max_len=0)")


def write_lists(directory: Path, skip: str = "") -> None:
    """Tiny lists in directory, in latin-1 for french (read with the fallback)."""
    words = {
        "american-english": "cat\ncat's\nDog\n\nhouse\nnew york\nsalut\n",
        "ngerman": "Haus\nhund\nkatze\nstraße\n",
        "french": "chat\nchien\nmaison\nsalut\nété\n",
        "italian": "cane\ngatto\ncasa\n",
        "spanish": "perro\ngato\ncasa\n",
    }
    for name, text in words.items():
        if name != skip:
            (directory / name).write_bytes(text.encode("latin-1" if name == "french" else "utf-8"))


def test_words_from_small_lists(tmp_path, monkeypatch):
    write_lists(tmp_path)
    monkeypatch.setattr(data, "WORDS_DIR", tmp_path)
    lists = data._word_lists(None)
    # lowercased, apostrophes/spaces/empty lines dropped, words in two lists (salut, casa) dropped
    assert lists == (("cat", "dog", "house"), ("haus", "hund", "katze", "straße"),
                     ("chat", "chien", "maison", "été"), ("cane", "gatto"), ("gato", "perro"))
    cols = columns(tmp_path, "words(per_language=2, max_len=6, seed=0)")
    x, y = cols["x"], cols["y"]
    assert x.shape == (10, 6) and np.bincount(y).tolist() == [2] * 5
    for row, label in zip(x, y):
        assert decode(row) in lists[label]
    assert decode(np.array([WORDS_ALPHABET.index(c) + 1 for c in "été"] + [0, 0, 0])) == "été"
    with pytest.raises(DataError, match=r"the italian list has 2 words .* fewer than per_language=3"):
        columns(tmp_path, "words(per_language=3, max_len=6, seed=0)")


def test_missing_list_names_the_package(tmp_path, monkeypatch):
    write_lists(tmp_path, skip="ngerman")
    monkeypatch.setattr(data, "WORDS_DIR", tmp_path)
    with pytest.raises(DataError) as info:
        columns(tmp_path, "words(per_language=1, max_len=5)")
    message = str(info.value)
    assert f"{tmp_path / 'ngerman'}: no such file" in message
    assert "`apt-get install wngerman`" in message
    assert ":1:1: error:" in message


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
@pytest.mark.parametrize("part, rows, first", [("train", 60000, 9), ("t10k", 10000, 9)])
def test_fashion_mnist_idx(tmp_path, part, rows, first):
    cols = columns(tmp_path, f'idx(x="{FASHION}/{part}-images-idx3-ubyte.gz", '
                             f'y="{FASHION}/{part}-labels-idx1-ubyte.gz")')
    x, y = cols["x"], cols["y"]
    assert x.shape == (rows, 28, 28) and x.dtype == np.uint8
    assert y.shape == (rows,) and y.dtype == np.uint8
    assert y.min() == 0 and y.max() == 9 and y[0] == first
    assert np.bincount(y).tolist() == [rows // 10] * 10
    assert x.max() == 255
