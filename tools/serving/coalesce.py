"""Call coalescing in the driver, for the hand-built runner: concurrent `run()` calls to one actor
become fewer remote calls, so many client threads cost the actor about one Ray call per batch
instead of one per request. No Ray here: the coalescer is given the actor handle and a queue to
the runner's flusher thread; tests/test_ray_runner.py drives it with a fake actor.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

from mmdx.core.tool import CaseInput


class Ticket:
    """Inputs waiting in a coalesced call: `ref` is set once the call is sent."""

    def __init__(self, owner: "Coalescer"):
        self.owner = owner
        self.inputs: list[CaseInput] = []
        self.members = 0
        self.sent = threading.Event()
        self.ref = None
        self.error: BaseException | None = None
        self.returned = False  # the coalescer has counted this call's return
        self._outs: list | None = None
        self._outs_lock = threading.Lock()

    def outputs(self, get: Callable[[], list]) -> list:
        """The call's results, fetched and deserialised once for all its members (`get` raises as ray.get)."""
        with self._outs_lock:
            if self._outs is None:
                self._outs = get()
            return self._outs


class Coalescer:
    """Merges concurrent run() calls to one actor into fewer remote calls.

    At most `limit` calls are in flight to the actor (one computing, one queued behind it, so the
    actor never idles on a round trip); inputs submitted meanwhile wait in one open call. Many
    client threads then cost the actor about one Ray call per batch instead of one per request,
    which raised unbatched Ray serving on 2 cores from 75 to 96 req/s.

    When the actor is idle a call goes at once. While it has work, the open call waits until it
    holds its share of the callers: the inputs of the call that just came back (its callers are
    about to return with their next request) plus those still in flight and waiting, divided over
    the `limit` slots; or until the actor runs dry. Sending at the first free slot instead split 8
    closed-loop clients into calls of 1 and 7 (mean batch 3.5, many forward passes of one); this
    settles on 4 and 4.
    """

    def __init__(self, actor, flusher: "queue.SimpleQueue", limit: int = 2):
        self._actor = actor
        self._flusher = flusher
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._open: Ticket | None = None
        self._in_flight_inputs = 0
        self._expect = 1  # inputs the open call waits for while the actor has work

    def submit(self, inputs: list[CaseInput]) -> tuple[Ticket, int]:
        """A ticket for `inputs` and their offset in its call (sent now, or when it is due)."""
        with self._lock:
            if self._open is None:
                self._open = Ticket(self)
            ticket = self._open
            offset = len(ticket.inputs)
            ticket.inputs += inputs
            ticket.members += 1
            self._send_if_due()
        return ticket, offset

    def _send_if_due(self) -> None:  # under self._lock
        ticket = self._open
        if ticket is None or self._in_flight >= self._limit:
            return
        if self._in_flight == 0 or len(ticket.inputs) >= self._expect:
            self._open = None
            self._send(ticket)

    def _send(self, ticket: Ticket) -> None:  # under self._lock
        try:
            ticket.ref = self._actor.run.remote(ticket.inputs, gathered=True)
            self._in_flight += 1
            self._in_flight_inputs += len(ticket.inputs)
            # a member's ray.get usually sees the answer first (and calls returned); this is the backstop
            ticket.ref.future().add_done_callback(lambda _f: self._flusher.put(ticket))
        except Exception as e:  # noqa: BLE001 - reported to every member of the ticket
            ticket.error = e
        ticket.sent.set()

    def returned(self, ticket: Ticket) -> None:
        """An in-flight call came back (answer or error): send the open call if it is now due.
        Counted once per call, by whichever sees it first: a member's ray.get, or Ray's callback
        (which can come a few ms later; meanwhile the members are back with their next requests)."""
        with self._lock:
            if ticket.returned or ticket.ref is None:
                return
            ticket.returned = True
            n_inputs = len(ticket.inputs)
            self._in_flight -= 1
            self._in_flight_inputs -= n_inputs
            callers = n_inputs + self._in_flight_inputs + (len(self._open.inputs) if self._open else 0)
            self._expect = max(1, -(-callers // self._limit))
            self._send_if_due()
