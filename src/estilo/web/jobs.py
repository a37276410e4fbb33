"""The web UI's run queue: one run at a time on the device, a bounded line of waiting runs.

Gradio has a queue of its own, but it cannot tell a waiting user their place in *our* line,
refuse politely when the line is full, or stop a run that is already computing when its browser
leaves. This module does, without importing Gradio, so the tests drive it directly.

A :class:`Ticket` is one user's run: its place, its progress (for the live view) and its end.
The worker thread calls the runner with the ticket; the runner reports progress through
``ticket.report`` and stops early once ``ticket.cancelled`` is set, keeping its best image.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..pipeline import Iterate

log = logging.getLogger(__name__)


class Busy(Exception):
    """The line is full: the caller should try again later."""


@dataclass
class Snapshot:
    """What the page shows of a ticket at one moment."""

    state: str  # waiting, running, done
    position: int  # 0 while running or done; 1 = next in line
    iteration: int
    total: int
    seconds: float
    losses: list[tuple[int, float]]
    image: Any  # the latest (1, 3, H, W) image tensor, or None before the first iteration
    error: str | None
    notes: list[str]
    outputs: list[str]
    status: str  # how the run ended: completed, stopped, diverged, failed; "" before

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first iteration."""
        if not self.iteration or self.state != "running":
            return None
        return self.seconds / self.iteration * (self.total - self.iteration)


@dataclass(eq=False)
class Ticket:
    """One run request in the queue."""

    payload: Any
    session: str
    number: int
    client: str = ""
    #: Only the page that submitted the run gets this: Cancel must present it, so knowing a
    #: session id (which Gradio clients choose) is not enough to stop someone else's run.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    state: str = "waiting"
    iteration: int = 0
    total: int = 0
    started: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)
    image: Any = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    status: str = ""
    #: Pages following this run now (see JobQueue.watching).
    followers: int = 0
    #: Copy the image for the live view at most this often (a copy per iteration costs time).
    image_interval: float = 0.25
    _image_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        """Stop waiting, or stop the run at its next iteration (its best image is kept)."""
        self.cancelled.set()

    def report(self, step: Iterate) -> bool:
        """The runner's callback: record progress; True asks the run to stop."""
        now = time.monotonic()
        with self._lock:
            self.iteration, self.total = step.iteration, max(self.total, step.total)
            self.losses.append((self.iteration, step.loss))
            if now - self._image_at >= self.image_interval or self.iteration == step.total:
                self.image, self._image_at = step.image.detach().cpu().clone(), now
        return self.cancelled.is_set()

    def snapshot(self, position: int) -> Snapshot:
        with self._lock:
            seconds = time.monotonic() - self.started if self.started else 0.0
            return Snapshot(
                self.state,
                position,
                self.iteration,
                self.total,
                seconds,
                list(self.losses),
                self.image,
                self.error,
                list(self.notes),
                list(self.outputs),
                self.status,
            )


class JobQueue:
    """A single worker running tickets in order; at most ``max_waiting`` wait behind it."""

    def __init__(
        self, runner: Callable[[Ticket], None], max_waiting: int = 4, max_per_client: int = 2
    ) -> None:
        self.runner, self.max_waiting, self.max_per_client = runner, max_waiting, max_per_client
        self._waiting: list[Ticket] = []
        self._running: Ticket | None = None
        self._lock = threading.Condition()
        self._numbers = itertools.count(1)
        self._closed = False
        self._watchers = 0
        self._thread = threading.Thread(target=self._work, name="estilo-runs", daemon=True)
        self._thread.start()

    def submit(self, payload: Any, session: str, client: str = "") -> Ticket:
        """Queue a run. Raises Busy when ``max_waiting`` runs already wait, or when ``client``
        already has ``max_per_client`` runs running or waiting."""
        with self._lock:
            if self._closed:
                raise Busy("the server is shutting down")
            would_wait = self._running is not None or bool(self._waiting)
            if would_wait and len(self._waiting) >= self.max_waiting:
                raise Busy(f"{len(self._waiting)} runs are already waiting")
            mine = [
                t for t in [self._running, *self._waiting] if t and client and t.client == client
            ]
            if len(mine) >= self.max_per_client:
                raise Busy(f"you already have {len(mine)} runs in line, the most one client may")
            ticket = Ticket(payload, session, next(self._numbers), client)
            self._waiting.append(ticket)
            self._lock.notify_all()
            return ticket

    def position(self, ticket: Ticket) -> int:
        """1-based place in line; 0 when running or finished."""
        with self._lock:
            return self._waiting.index(ticket) + 1 if ticket in self._waiting else 0

    def snapshot(self, ticket: Ticket) -> Snapshot:
        return ticket.snapshot(self.position(ticket))

    def cancel(self, secret: str) -> bool:
        """Cancel the run whose secret this is (the Cancel button); False if there is none."""
        with self._lock:
            for ticket in [self._running, *self._waiting]:
                if ticket and secret and secrets.compare_digest(ticket.secret, secret):
                    ticket.cancel()
                    self._lock.notify_all()
                    return True
            return False

    def cancel_session(self, session: str) -> int:
        """Cancel the runs of a browser session whose page no longer follows them (the tab
        closed); a run a page still follows is left alone, so a forged session id cannot stop
        it. Returns how many were cancelled."""
        with self._lock:
            tickets = [
                t
                for t in [self._running, *self._waiting]
                if t and t.session == session and not t.followers
            ]
            for ticket in tickets:
                ticket.cancel()
            self._lock.notify_all()
            return len(tickets)

    def tickets(self) -> list[Ticket]:
        """The running ticket and the waiting ones."""
        with self._lock:
            return [t for t in [self._running, *self._waiting] if t is not None]

    @property
    def idle(self) -> bool:
        """Nothing running and nobody waiting."""
        with self._lock:
            return self._running is None and not self._waiting

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def close(self, timeout: float = 10.0, reason: str | None = None) -> bool:
        """Cancel everything and stop the worker; ``reason`` is what the pages of the runs
        still waiting or running are told. Returns whether the worker stopped in time."""
        with self._lock:
            self._closed = True
            for ticket in [self._running, *self._waiting]:
                if ticket is not None:
                    ticket.error = ticket.error or reason
                    ticket.cancel()
            for ticket in self._waiting:  # no worker will take them now
                self._finish(ticket, "stopped")
            self._waiting.clear()
            self._lock.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @contextlib.contextmanager
    def watching(self, ticket: Ticket | None = None) -> Iterator[None]:
        """Count a page that is following a run, so shutdown can wait for its last view."""
        with self._lock:
            self._watchers += 1
            if ticket is not None:
                ticket.followers += 1
        try:
            yield
        finally:
            with self._lock:
                self._watchers -= 1
                if ticket is not None:
                    ticket.followers -= 1
                self._lock.notify_all()

    def wait_for_watchers(self, timeout: float) -> bool:
        """Wait until no page follows a run (each has had its last view); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._watchers == 0, timeout)

    def _next(self) -> Ticket | None:
        with self._lock:
            while True:
                # A ticket cancelled while waiting leaves the line without running.
                for ticket in [t for t in self._waiting if t.cancelled.is_set()]:
                    self._waiting.remove(ticket)
                    self._finish(ticket, "stopped")
                if self._closed:
                    return None
                if self._waiting:
                    self._running = self._waiting.pop(0)
                    return self._running
                self._lock.wait()

    def _finish(self, ticket: Ticket, status: str) -> None:
        ticket.state, ticket.status = "done", ticket.status or status
        ticket.finished.set()

    def _work(self) -> None:
        while (ticket := self._next()) is not None:
            ticket.state, ticket.started = "running", time.monotonic()
            try:
                self.runner(ticket)
            except Exception:  # a run's failure must never stop the server
                log.exception("run %d failed", ticket.number)
                # The exception's text can name server paths: the page gets a plain sentence.
                ticket.error = ticket.error or "the run failed (the server's log has details)"
            with self._lock:
                self._running = None
                self._finish(ticket, "failed" if ticket.error else "completed")
