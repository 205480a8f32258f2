"""``PollTrigger``: a component's status check (``claimed_airflow.core.waits.Poll``) repeated in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from claimed_airflow.core.waits import Poll, registered


class PollTrigger(BaseTrigger):
    """Runs ``poll``'s check every ``interval`` seconds until it gives a state or ``deadline`` (epoch seconds)
    passes. The check is one of ``waits.CHECKS`` (any other name is an error event; nothing is imported for
    it), run with one asynchronous client for all its polls where it has one (its watch), else in a thread.

    Fires one event: ``{"status": "done", "state", "details"}``, ``{"status": "timeout", "details"}`` (the
    last details seen) or ``{"status": "error", "message"}``. Its kwargs are the poll's (connection ids and
    object names; never credentials: the check reads them from the Airflow connection when it starts).

    :param poll: ``Poll`` fields: ``check`` (a name of ``waits.CHECKS``), ``kwargs``, ``timeout``, ``interval``,
        ``what``.
    :param deadline: When to give up, in seconds since the epoch (kept across triggerer restarts).
    """

    def __init__(self, poll: dict[str, Any], deadline: float) -> None:
        super().__init__()
        self.poll = poll
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"poll": self.poll, "deadline": self.deadline}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            registered(self.poll.get("check"))  # before anything is imported for it
            poll = Poll(**self.poll)
        except Exception as exc:  # an unknown check (ClaimedError) or fields that are not a Poll's (TypeError)
            self.log.error("refused poll: %s", exc)
            yield TriggerEvent({"status": "error", "message": str(exc) or type(exc).__name__})
            return
        yield TriggerEvent(await self.outcome(poll))

    async def outcome(self, poll: Poll) -> dict[str, Any]:
        """The event's payload: polls until a state, the deadline or an error."""
        try:
            async with poll.watching() as check:
                while True:
                    state, details = await check()
                    if state:
                        self.log.info("%s: %s", poll.what, state)
                        return {"status": "done", "state": state, "details": details}
                    left = self.deadline - time.time()
                    if left <= 0:
                        return {"status": "timeout", "details": details}
                    self.log.info("%s: not finished; next check in %g s", poll.what, min(poll.interval, left))
                    await asyncio.sleep(min(poll.interval, left))
        except Exception as exc:  # a ClaimedError names the problem; anything else: its type and text
            self.log.error("checking %s failed: %s", poll.what, exc)
            return {"status": "error", "message": str(exc) or type(exc).__name__}
