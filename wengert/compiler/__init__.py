"""Compiled steps: a repeating Wengert list becomes a plan that replays the step without the
interpreter (plan.py: the NumPy replay, bit-identical to the interpreter)."""
