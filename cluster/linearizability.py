"""A linearizability checker for client-visible histories (in the manner of
Wing & Gong / Lowe, as used by Knossos and Porcupine), written from the
published algorithm.

A history is a list of :class:`Operation` (call time, return time or None
if the client never got an answer, input, output).  It is linearizable if
the operations can be put in one sequential order that (a) respects real
time: an operation that returned before another was called comes first, and
(b) is accepted by the sequential model, given as ``step(state, input,
output) -> list of next states`` (empty: the output is impossible there).
Operations that never returned may be placed anywhere after their call or
left out; for them ``step`` receives ``output=None``.

The search is depth-first over "which operation takes effect next", with a
cache of (set of operations done, model state) already explored, so
equivalent interleavings are visited once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

__all__ = ["Operation", "CheckResult", "check_linearizable"]


@dataclass(frozen=True)
class Operation:
    client: int
    call: int
    ret: int | None
    input: object
    output: object | None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    order: tuple[int, ...] | None  # indices into the history, in linearization order
    reason: str
    explored: int


def check_linearizable(
    history: Sequence[Operation],
    initial: object,
    step: Callable[[object, object, object | None], list],
    key: Callable[[object], Hashable],
    *,
    max_explored: int = 2_000_000,
) -> CheckResult:
    ops = list(history)
    n = len(ops)
    INF = float("inf")
    rets = [INF if o.ret is None else o.ret for o in ops]
    for i, o in enumerate(ops):
        if o.ret is not None and o.ret < o.call:
            return CheckResult(False, None, f"operation returns before its call: index={i} call={o.call} ret={o.ret}", 0)
    required = sum(1 for o in ops if o.ret is not None)
    by_call = sorted(range(n), key=lambda i: (ops[i].call, i))
    seen: set = set()
    explored = 0
    best: tuple[int, ...] = ()
    # explicit stack of (done mask, state, order so far, completed count)
    stack: list[tuple[int, object, tuple[int, ...], int]] = [(0, initial, (), 0)]
    while stack:
        mask, state, order, done_required = stack.pop()
        if done_required == required:
            return CheckResult(True, order, "linearizable", explored)
        explored += 1
        if explored > max_explored:
            return CheckResult(False, None, f"search limit reached: explored={explored} (history too concurrent)", explored)
        if len(order) > len(best):
            best = order
        # the next operation to take effect must have been called before every
        # remaining completed operation returned
        horizon = min((rets[i] for i in range(n) if not mask >> i & 1 and ops[i].ret is not None), default=INF)
        children: list[tuple[int, object, tuple[int, ...], int]] = []
        for i in by_call:
            if mask >> i & 1:
                continue
            if ops[i].call > horizon:
                break
            for nxt in step(state, ops[i].input, ops[i].output):
                m2 = mask | (1 << i)
                k = (m2, key(nxt))
                if k in seen:
                    continue
                seen.add(k)
                children.append((m2, nxt, order + (i,), done_required + (ops[i].ret is not None)))
        stack.extend(reversed(children))
    stuck = [i for i in range(n) if i not in best and ops[i].ret is not None]
    first = min(stuck, key=lambda i: (ops[i].call, i)) if stuck else None
    detail = "" if first is None else f" first_unplaced_index={first} client={ops[first].client} call={ops[first].call} ret={ops[first].ret} input={ops[first].input!r} output={ops[first].output!r}"
    return CheckResult(False, None, f"no linearization: longest_prefix={len(best)} of required={required}{detail}", explored)
