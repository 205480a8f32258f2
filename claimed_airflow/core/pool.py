"""A crash-isolating process pool: run one function over many jobs in worker processes, memory flat, order kept.

A worker that dies (a decoder's segfault, the OOM killer) costs only the job that killed it: the jobs
in flight are retried one by one, each in its own process. A task being killed (its ``on_kill`` ends
the workers, see :mod:`claimed_airflow.core.context`) starts no further workers.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
WINDOW_PER_WORKER = 8  # jobs in flight per worker: results are small, so a deep window costs little


def default_workers() -> int:
    """The number of CPUs this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def start_method() -> str:
    """``fork`` from a single-threaded process (fast: workers start with everything imported); else
    ``forkserver`` (a multi-threaded parent such as an Airflow task must not fork), else ``spawn``.

    forkserver and spawn import the main module in each worker, so scripts need the usual
    ``if __name__ == "__main__":`` guard there.
    """
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def run_jobs(
    work: Callable[[Any], Any],
    jobs: Iterable,
    workers: int,
    *,
    crashed: Callable[[Any], Any],
    preload: Iterable[str] = (),
    name: str = "workers",
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(job, work(job))`` in job order, ``workers`` processes in parallel; ``workers <= 1`` runs here.

    ``work`` is a module-level function (workers import it) that should not raise. At most
    ``WINDOW_PER_WORKER x workers`` jobs are in flight, so memory stays flat however many jobs there
    are. A job whose worker process dies twice (in the pool, then alone) yields ``crashed(job)``.
    ``preload``: modules a forkserver imports once, so that each worker starts warm (missing ones are
    skipped); ``name`` prefixes the log lines.
    """
    import multiprocessing

    if workers > 1 and multiprocessing.current_process().daemon:
        log.warning("%s: running in a daemonic process, which cannot start workers; using 1", name)
        workers = 1
    if workers <= 1:
        for job in jobs:
            yield job, work(job)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from claimed_airflow.core.context import cancelled

    context = multiprocessing.get_context(start_method())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([*preload, work.__module__])
    remaining = iter(jobs)
    while True:
        window: deque = deque()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for job in remaining:
                    window.append([job, None])
                    window[-1][1] = pool.submit(work, job)
                    if len(window) >= WINDOW_PER_WORKER * workers:
                        result = window[0][1].result()
                        yield window.popleft()[0], result
                while window:
                    result = window[0][1].result()
                    yield window.popleft()[0], result
            return
        except BrokenProcessPool:
            if cancelled():  # the task is being killed (its on_kill ended the workers): start no others
                raise ClaimedError("workers: the task was killed; its worker processes were ended") from None
            # a worker died (decoder crash, out of memory): retry the jobs in flight one by one,
            # each in its own process, so that only the job that kills its worker is set aside
            log.warning("%s: a worker process died; retrying %d job(s) one by one", name, len(window))
            for job, _ in window:
                yield job, _isolated(work, job, context, crashed)


def _isolated(work: Callable[[Any], Any], job: Any, context, crashed: Callable[[Any], Any]) -> Any:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(work, job).result()
    except BrokenProcessPool:
        return crashed(job)
