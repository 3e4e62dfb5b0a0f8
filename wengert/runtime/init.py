"""Initial values of params and state, seeded per parameter name."""
from __future__ import annotations

import zlib

import numpy as np

from .ir import Initializer, ParamDecl
from .types import NUMPY_DTYPE


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's fan-in/fan-out: dense [in, out]; conv [kh, kw, in, out] counts the receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def initial_value(decl: ParamDecl, shape: tuple[int, ...], seed: int) -> np.ndarray:
    dtype = NUMPY_DTYPE[decl.type.dtype]
    init = decl.init
    if not isinstance(init, Initializer):
        return np.array(np.broadcast_to(init, shape), dtype=dtype)
    kw = dict(init.kwargs)
    rng = np.random.default_rng([seed, zlib.crc32(decl.name.encode())])
    fan_in, fan_out = fans(shape)
    if init.name == "zeros":
        v = np.zeros(shape)
    elif init.name == "ones":
        v = np.ones(shape)
    elif init.name == "constant":
        v = np.full(shape, kw.get("value", 0.0))
    elif init.name == "normal":
        v = rng.normal(kw.get("mean", 0.0), kw.get("std", 1.0), shape)
    elif init.name == "uniform":
        v = rng.uniform(kw.get("low", 0.0), kw.get("high", 1.0), shape)
    elif init.name == "glorot":  # Glorot & Bengio 2010, uniform
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        v = rng.uniform(-limit, limit, shape)
    elif init.name == "he":  # He et al. 2015, normal
        v = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    elif init.name == "fan_in":  # the book's rule for tanh units: uniform(+-1/sqrt(fan_in))
        limit = 1.0 / np.sqrt(fan_in)
        v = rng.uniform(-limit, limit, shape)
    elif init.name == "orthogonal":  # Saxe et al. 2014
        rows, cols = (int(np.prod(shape[:-1])), shape[-1]) if len(shape) > 1 else (1, shape[0] if shape else 1)
        a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        q = q if rows >= cols else q.T
        v = kw.get("gain", 1.0) * q[:rows, :cols].reshape(shape)
    else:
        raise ValueError(f"unknown initializer {init.name}")
    return np.asarray(v, dtype=dtype)
