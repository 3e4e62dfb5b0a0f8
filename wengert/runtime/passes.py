"""IR passes that run after lowering."""
from __future__ import annotations

from typing import Iterable

from .ir import Block, Var


def eliminate_dead_code(block: Block, live_out: Iterable[Var]) -> set[int]:
    """Drop equations whose results nothing uses (recursively inside regions).

    Returns the ids of vars the block reads from outside itself (its free vars).
    """
    live = {v.id for v in live_out} | {v.id for v in block.results}
    kept = []
    for eqn in reversed(block.eqns):
        if not any(o.id in live for o in eqn.outputs):
            continue
        kept.append(eqn)
        live.update(i.id for i in eqn.inputs)
        for region in eqn.regions:
            live.update(eliminate_dead_code(region, ()))
    block.eqns[:] = reversed(kept)
    defined = {a.id for a in block.args} | {o.id for e in block.eqns for o in e.outputs}
    return live - defined
