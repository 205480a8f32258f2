"""Engine ``local``: run the component in the Airflow worker process.

Deferrable: a component's long wait (:mod:`claimed_airflow.core.waits`: KServe Ready, TFJob, Katib, Watson ML)
defers to :class:`~claimed_airflow.triggers.PollTrigger`; on resume the component runs again with the journal
of the first run (nothing is created twice) and the trigger's event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from datetime import timedelta
from typing import Any, ClassVar

from claimed_airflow.operators.engines.protocol import Defer, EngineTask

log = logging.getLogger(__name__)


class LocalEngine:
    """The component runs in this process (the default engine)."""

    name: ClassVar[str] = "local"
    defers: ClassVar[bool] = True

    def run(self, task: EngineTask, context: Any) -> dict[str, Any]:
        return _run(task, None)

    def resume(self, task: EngineTask, context: Any, state: dict[str, Any], event: Any) -> dict[str, Any]:
        """Run again with the journal of the deferred run, the trigger's event last."""
        return _run(task, [*(state.get("journal") or []), {"event": event}])

    def kill(self, task: EngineTask) -> None:
        kill(task)


def _run(task: EngineTask, journal: list | None) -> dict[str, Any]:
    from claimed_airflow.core import waits
    from claimed_airflow.core.runner import run  # a task given shard_tables and no shard_index: every shard

    if not task.deferrable and journal is None:
        return run(task.spec, task.arguments, root=task.root, scope=task.scope, cache=task.cache)
    try:
        with waits.deferring(journal):
            return run(task.spec, task.arguments, root=task.root, scope=task.scope, cache=task.cache)
    except waits.Deferral as deferral:
        raise _deferred(task, deferral) from None


def _deferred(task: EngineTask, deferral: Any) -> Defer:
    """A component's wait as a :class:`Defer` to the poll trigger (the journal of the run as its state)."""
    from claimed_airflow.triggers import PollTrigger

    poll = deferral.poll
    log.info("%s: waiting for %s in the triggerer (up to %g s)", task.task_id, poll.what, poll.timeout)
    trigger = PollTrigger(poll.to_dict(), deadline=time.time() + poll.timeout)
    backstop = timedelta(seconds=poll.timeout + poll.interval + 60)  # the trigger's own timeout comes first
    return Defer(trigger, {"journal": deferral.journal}, backstop)


def multiprocessing_helpers() -> set[int]:
    """Process ids of multiprocessing's resource tracker and fork server: they end with this process."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    pids = (
        getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None),
        getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None),
    )
    return {pid for pid in pids if pid}


def kill(task: EngineTask, grace: float = 5.0) -> None:
    """The task is killed: end the processes the component started (e.g. a process pool) and remove the
    runner's working folders (nothing was committed from them: outputs are committed when the component ends)."""
    import psutil

    from claimed_airflow.core.context import cancel
    from claimed_airflow.core.runner import working_folders

    cancel()
    helpers = multiprocessing_helpers()
    deadline = time.monotonic() + grace
    ended: set[int] = set()
    while time.monotonic() < deadline:  # again until none is left: a pool may be starting a worker right now
        children = [p for p in psutil.Process().children(recursive=True) if p.pid not in helpers]
        if not children:
            break
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=1.0)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        ended.update(p.pid for p in children)
    if ended:
        log.info("%s: ended %d process(es) of the component", task.task_id, len(ended))
    for folder in working_folders():
        shutil.rmtree(folder, ignore_errors=True)
        while os.path.exists(folder) and time.monotonic() < deadline:  # the component may still be writing
            time.sleep(0.1)
            shutil.rmtree(folder, ignore_errors=True)
        log.info("%s: removed %s", task.task_id, folder)
