"""Primitives that run on the host from an OpenCL program: an explicit, counted round trip.

The linear-algebra factorizations (inv, solve, det, slogdet, cholesky, triangular_solve,
lstsq) have no device kernel yet. Their OpenCL entry copies the operands to the host, runs
the NumPy kernel and uploads the result; `HOST_ROUND_TRIPS` names them, `wengert trace
--device opencl` marks their entries `(host round trip)`, and TRANSFERS["host_round_trips"]
counts the calls. Nothing else ever copies silently (docs/opencl.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import primitives
from .array import TRANSFERS, DeviceArray
from .backend import Backend, kernel

HOST_ROUND_TRIPS = ("inv", "solve", "det", "logabsdet", "detsign", "cholesky", "triangular_solve", "lstsq",
                    "tril", "triu")
TRANSFERS.setdefault("host_round_trips", 0)


def _on_host(name: str):
    impl = primitives.REGISTRY[name].impl

    def run(backend: Backend, *operands: Any, **params: Any) -> DeviceArray:
        TRANSFERS["host_round_trips"] += 1
        host = [o.get() if isinstance(o, DeviceArray) else np.asarray(o) for o in operands]
        return backend.upload(np.ascontiguousarray(impl(*host, **params)))
    return run


for _name in HOST_ROUND_TRIPS:
    kernel(_name)(_on_host(_name))
