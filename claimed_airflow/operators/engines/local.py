"""Engine ``local``: run the component in the Airflow worker process."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claimed_airflow.operators.engines import EngineTask

log = logging.getLogger(__name__)


def execute(task: EngineTask, context: Any) -> dict[str, Any]:
    from claimed_airflow.core.runner import run

    return run(task.spec, task.arguments, root=task.root, scope=task.scope, cache=task.cache)


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
