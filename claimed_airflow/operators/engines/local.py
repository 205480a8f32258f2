"""Engine ``local``: run the component in the Airflow worker process."""

from __future__ import annotations

import logging
import shutil
from typing import Any

log = logging.getLogger(__name__)


def execute(operator, context: Any, spec, root: str, scope) -> dict[str, Any]:
    from claimed_airflow.core.runner import run

    return run(spec, operator.component_arguments(), root=root, scope=scope, cache=operator._cache_enabled())


def kill(operator, grace: float = 5.0) -> None:
    """The task is killed: end the processes the component started (e.g. a process pool) and remove the
    runner's working folders (nothing was committed from them: outputs are committed when the component ends)."""
    import psutil

    from claimed_airflow.core.runner import working_folders

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    if children:
        log.info("%s: ended %d process(es) of the component", operator.task_id, len(children))
    for folder in working_folders():
        shutil.rmtree(folder, ignore_errors=True)
        log.info("%s: removed %s", operator.task_id, folder)
