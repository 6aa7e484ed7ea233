"""The batching policy inside a tool actor: which waiting calls go through the model together.

`CallQueue` holds the calls waiting on one actor (each a list of (input, future)); `collect_batch`
takes the next batch from it. Pure asyncio, no Ray: tests/test_ray_runner.py checks the policy on
its own.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable


class CallQueue:
    """The actor's queue of waiting calls (each a list of (input, future)), with a peek at the head."""

    def __init__(self):
        self._calls: deque[tuple[list, bool]] = deque()  # (call, wait)
        self._event = asyncio.Event()

    def put(self, call: list, wait: bool = True) -> None:
        """Queue a call; `wait=False`: a batch it starts does not wait for more callers."""
        self._calls.append((call, wait))
        self._event.set()

    def head(self) -> list | None:
        return self._calls[0][0] if self._calls else None

    def queued_inputs(self) -> int:
        return sum(len(call) for call, _ in self._calls)

    def pop(self) -> tuple[list, bool]:
        return self._calls.popleft()

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Whether a call is queued, waiting for one at most `timeout_s` (None: forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._calls:
            self._event.clear()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except asyncio.TimeoutError:
                return bool(self._calls)
        return True


async def collect_batch(queue: CallQueue, max_batch: int, max_wait_s: float, expect: int,
                        busy: "asyncio.Future | None" = None, on_take: Callable[[list], None] | None = None,
                        split_when_idle: bool = False) -> list[list]:
    """The calls of the next batch: wait for a first call, take every queued call that fits in
    `max_batch` inputs (calling `on_take(call)` as each is taken, e.g. to start preparing it), and
    keep taking while the model is `busy` with the previous batch; once it is free, wait (at most
    `max_wait_s` from the first call) only while fewer than `expect` calls are in hand, and only
    for calls queued with `wait=True` (a RayRunner's calls are not: its coalescer already waited
    for its callers, and holding one of its calls for the next would merge the two calls it keeps
    alternating on the model).

    `split_when_idle` (a pipelined actor): a model that is idle when the calls are taken takes the
    first half of what is queued, and the rest waits to be prepared while that half runs. Taking it
    all would put every closed-loop caller in one batch, and the model would then idle through
    their round trip and the next decoding, batch after batch.

    `expect` is how many calls the previous batch held. In steady state their callers come back,
    so waiting for more only idles the model, and waiting for fewer splits one wave of callers into
    small batches. If fewer come back, the deadline ends the wait and the next expectation drops to
    what arrived. Never waits longer than a fixed max_wait would.
    """
    loop = asyncio.get_running_loop()
    await queue.wait()
    calls: list[list] = []
    n = 0
    waitable = True
    deadline = loop.time() + max_wait_s
    expect = max(1, expect)
    idle_share = max_batch
    if split_when_idle and (busy is None or busy.done()):
        idle_share = -(-queue.queued_inputs() // 2)
    while n < max_batch:
        head = queue.head()
        if head is not None:
            if calls and (n + len(head) > max_batch or n >= idle_share):
                break  # the next batch's
            call, wait = queue.pop()
            calls.append(call)
            waitable = waitable and wait
            n += len(head)
            if on_take is not None:
                on_take(calls[-1])
            continue
        if busy is not None and not busy.done():  # the model is busy: gather until it is free
            waiter = asyncio.ensure_future(queue.wait())
            await asyncio.wait({waiter, busy}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
            continue
        if len(calls) >= expect or not waitable:
            break
        left = deadline - loop.time()
        if left <= 0 or not await queue.wait(left):
            break
    return calls
