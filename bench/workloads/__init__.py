"""The workloads W1..W7 of issue 9 (bench/README.md): one module per workload, each next to its .dl program."""
from __future__ import annotations

import importlib

from .common import FRAMEWORKS, Workload, available

MODULES = {"W1": "w1_logreg", "W2": "w2_tanh_net", "W3": "w3_moons", "W4": "w4_regression", "W5": "w5_cnn",
           "W6": "w6_lstm", "W7": "w7_chain"}


def workload(key: str) -> Workload:
    return importlib.import_module(f"{__name__}.{MODULES[key]}").WORKLOAD


__all__ = ["FRAMEWORKS", "MODULES", "Workload", "available", "workload"]
