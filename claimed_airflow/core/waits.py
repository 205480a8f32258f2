"""Long waits of components (a cluster job, a model server becoming ready), blocking or in Airflow's triggerer.

A component that starts something and then waits for it writes::

    created = waits.once("create", lambda: api.create(...))        # a side effect, done once per task try
    state, details = waits.wait(Poll("kubernetes.condition", {...}, timeout=600, interval=5))

``Poll.check`` names one of :data:`CHECKS`, the status checks registered in one place: the only ones
the triggerer runs (any other name in a trigger's serialized kwargs is an error there, and nothing is
imported for it). A component of your own may name a ``module:function`` of its own instead: that
wait polls in the task, never in the triggerer. A check takes the JSON ``kwargs`` (connection ids and
object names, never secrets) and answers ``(state, details)``: ``state`` is None while the thing is not
finished; its watch, where it has one, is the same check with one asynchronous client for all the polls
of a wait in the triggerer's event loop (else the blocking function runs in a thread there). Blocking (the default, and
always outside Airflow), :func:`wait` polls here. When
the Airflow operator runs deferrable, :func:`wait` raises :class:`Deferral` instead; the operator hands
the poll to ``claimed_airflow.triggers.PollTrigger`` and, when the trigger fires, calls the component
again with the journal of the first call: :func:`once` gives back what it returned then (nothing is
created twice) and :func:`wait` gives back what the trigger saw. So both paths return the same result.
"""

from __future__ import annotations

import contextvars
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from claimed_airflow.core.errors import ClaimedError


@dataclass(frozen=True)
class Check:
    """A status check: ``function`` of ``module`` blocks; ``watch`` (if any) is the same check for an event loop,
    an async context manager (taking the same kwargs) that gives one async check for every poll of a wait."""

    module: str
    function: str
    watch: str | None = None

    def blocking(self) -> Callable[..., tuple[str | None, dict]]:
        return getattr(importlib.import_module(self.module), self.function)

    def watcher(self) -> Callable[..., Any] | None:
        return getattr(importlib.import_module(self.module), self.watch) if self.watch else None


# The status checks a Poll may name: all of them, in one place (the triggerer runs nothing else).
CHECKS: dict[str, Check] = {
    "kubernetes.condition": Check("claimed_airflow.components._kubernetes", "condition_state", "watch_condition"),
    "watson_ml.deployment": Check(
        "claimed_airflow.components.deploy.watson_ml", "deployment_state", "watch_deployment"
    ),
}


def registered(name: Any) -> Check:
    """The check named ``name``; a clear error for any other name (nothing is imported for it)."""
    if not isinstance(name, str) or name not in CHECKS:
        raise ClaimedError(f"check: {name!r} is not a registered status check (known: {', '.join(sorted(CHECKS))})")
    return CHECKS[name]


def _own(name: Any) -> Check:
    """A component's own ``module:function`` check (polled in the task only)."""
    module, _, function = name.partition(":") if isinstance(name, str) else ("", "", "")
    if not (module and function) or not all(part.isidentifier() for part in (*module.split("."), function)):
        known = ", ".join(sorted(CHECKS))
        raise ClaimedError(f"check: {name!r} is neither a registered status check ({known}) nor a module:function")
    return Check(module, function)


@dataclass(frozen=True)
class Poll:
    """One status check (a name of :data:`CHECKS`), repeated every ``interval`` seconds for at most ``timeout``."""

    check: str
    kwargs: dict = field(default_factory=dict)
    timeout: float = 600.0
    interval: float = 5.0
    what: str = "the resource"

    def __post_init__(self) -> None:
        if not (isinstance(self.check, str) and self.check in CHECKS):
            _own(self.check)

    def check_once(self) -> tuple[str | None, dict]:
        check = CHECKS.get(self.check) or _own(self.check)
        state, details = check.blocking()(**self.kwargs)
        return state, details or {}

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[Callable[[], Awaitable[tuple[str | None, dict]]]]:
        """The check in the triggerer (registered checks only): its watch (one asynchronous client for every poll),
        else the blocking check in a thread."""
        import asyncio

        watch = registered(self.check).watcher()
        if watch is None:
            yield lambda: asyncio.to_thread(self.check_once)
            return
        async with watch(**self.kwargs) as check:

            async def check_once() -> tuple[str | None, dict]:
                state, details = await check()
                return state, details or {}

            yield check_once

    def to_dict(self) -> dict:
        return asdict(self)


class WaitTimeout(ClaimedError):
    """The thing waited for did not finish in time; ``last`` are the details as last seen."""

    def __init__(self, message: str, last: dict):
        super().__init__(message)
        self.last = last


class Deferral(BaseException):  # noqa: N818 - like Airflow's TaskDeferred: not an error, no `except Exception` catches it
    """Raised by :func:`wait` in a deferring run: wait for ``poll`` elsewhere, then run again with ``journal``."""

    def __init__(self, poll: Poll, journal: list):
        super().__init__(f"waiting for {poll.what} in the triggerer")
        self.poll = poll
        self.journal = journal


@dataclass
class Journal:
    """What a deferring run did so far: results of :func:`once` steps and of finished waits, in call order."""

    records: list = field(default_factory=list)
    deferring: bool = False
    position: int = 0

    def next(self) -> tuple[bool, Any]:
        if self.position < len(self.records):
            record = self.records[self.position]
            self.position += 1
            return True, record
        return False, None

    def add(self, record: Any) -> None:
        self.records.append(record)
        self.position += 1


_journal: contextvars.ContextVar[Journal | None] = contextvars.ContextVar("claimed_waits", default=None)


@contextmanager
def deferring(records: list | None = None) -> Iterator[Journal]:
    """Run components so that their waits defer (:class:`Deferral`), replaying ``records`` of earlier calls."""
    journal = Journal(records=list(records or []), deferring=True)
    token = _journal.set(journal)
    try:
        yield journal
    finally:
        _journal.reset(token)


def once(step: str, action: Callable[[], Any]) -> Any:
    """``action()`` (JSON-serialisable result), done once per task try even when the task defers and resumes."""
    journal = _journal.get()
    if journal is None:
        return action()
    found, record = journal.next()
    if found:
        return record["result"]
    result = action()
    journal.add({"step": step, "result": result})
    return result


def wait(poll: Poll) -> tuple[str, dict]:
    """Poll until ``poll`` has a state; :class:`WaitTimeout` after its timeout. Deferring: raise :class:`Deferral`
    (a registered check; a component's own check polls here)."""
    journal = _journal.get()
    if journal is None or not journal.deferring or poll.check not in CHECKS:
        return poll_until(poll)
    found, record = journal.next()
    if not found:
        raise Deferral(poll, list(journal.records))
    return outcome(poll, record["event"])


def poll_until(poll: Poll, sleep: Callable[[float], None] = time.sleep) -> tuple[str, dict]:
    """The blocking loop (also what the trigger does, asynchronously)."""
    deadline = time.monotonic() + poll.timeout
    while True:
        state, details = poll.check_once()
        if state:
            return state, details
        if time.monotonic() >= deadline:
            raise timeout_error(poll, details)
        sleep(min(poll.interval, max(0.0, deadline - time.monotonic())))


def timeout_error(poll: Poll, last: dict) -> WaitTimeout:
    return WaitTimeout(f"timeout: {poll.what} did not finish within {poll.timeout:g} s", last)


def outcome(poll: Poll, event: dict) -> tuple[str, dict]:
    """The trigger's event as :func:`poll_until` would have ended: a state, a timeout or an error."""
    status = event.get("status")
    if status == "done":
        return event["state"], event.get("details") or {}
    if status == "timeout":
        raise timeout_error(poll, event.get("details") or {})
    raise ClaimedError(str(event.get("message") or f"waiting for {poll.what} failed: {event!r}"))
