"""What a running component can tell the runner: items set aside, progress."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath

log = logging.getLogger("claimed_airflow")


def log_safe(value: object) -> object:
    """``value`` as a log argument: a text with control characters (newlines, terminal escapes) escaped and URI
    credentials redacted, so a value from a file or request cannot forge log lines or leak a secret."""
    if not isinstance(value, (str, BaseException, PurePath)):
        return value
    text = str(value)
    if text.isprintable() and "://" not in text:
        return value
    from claimed_airflow.core.storage import redact

    return redact("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


class _LogSafeValues(logging.Filter):
    """Every value logged through the ``claimed_airflow`` logger goes through :func:`log_safe`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(log_safe(value) for value in record.args)
        return True


log.addFilter(_LogSafeValues())


@dataclass
class RunContext:
    component: str
    root: str = ""
    task_uri: str = ""  # <root>/<dag_id>/<run_id>/<task_id>: the same for every attempt of a task
    scope: object = None  # the run's storage.Scope (runner.run_step places a step's folder inside it)
    spec: object = None  # the running component's ComponentSpec (its declared defaults)
    rejected: list[dict] = field(default_factory=list)


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("claimed_run", default=None)


@contextmanager
def active(ctx: RunContext) -> Iterator[RunContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def current() -> RunContext:
    """The context of the component run in progress (a blank one outside the runner)."""
    return _current.get() or RunContext(component="")


_cancelled = threading.Event()


def cancel(on: bool = True) -> None:
    """The task is being killed (on_kill): components that start processes start no new ones (:func:`cancelled`).
    The runner clears it (``cancel(False)``) when a run starts."""
    if on:
        _cancelled.set()
    else:
        _cancelled.clear()


def cancelled() -> bool:
    return _cancelled.is_set()


def reject(item: str, reason: str) -> None:
    """Report an input item (e.g. a corrupt DICOM file) that was set aside; the batch goes on.

    It is logged as a warning (so it shows in the Airflow task log) and listed in the run manifest.
    """
    log.warning("set aside %s: %s", item, reason)
    ctx = _current.get()
    if ctx is not None:
        ctx.rejected.append({"item": item, "reason": reason})


class Progress:
    """Logs ``done/total``, rate and ETA at most every ``interval`` seconds (and at the end)."""

    def __init__(self, what: str, total: int, interval: float = 10.0):
        self.what, self.total, self.interval = what, total, interval
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            log.info("%s: %d/%d (%.1f/s, ETA %.0fs)", self.what, self.done, self.total, rate, eta)
