"""Benchmarks of issue 9: `python -m bench` (see bench/README.md)."""
