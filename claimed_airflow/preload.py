"""Import once per worker what CLAIMED's tasks import, so that each task process gets it free.

On Linux, Airflow 3 forks every task process from the executor's worker: LocalExecutor's workers are
forked from ``airflow scheduler`` when it starts, Celery's pool processes from ``airflow celery worker``.
A module the worker imported before the fork is already in the task's ``sys.modules``. Airflow imports
``airflow_local_settings`` (``$AIRFLOW_HOME/config/airflow_local_settings.py``, or a module of that name on
the path) in every Airflow process at start, so a deployment preloads with two lines there::

    from claimed_airflow.preload import preload

    preload()

Only the processes that start tasks import (``airflow scheduler``, ``airflow celery worker``, ``airflow
edge worker``); the API server, DAG processor and triggerer do not. The cost: the scheduler (or worker)
holds the modules (about 170 MB resident, measured), shared with its forks until written to.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterable

# the modules that production inference's tasks (dicom_inference, dicom_inference_watch) import
MODULES = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "fsspec",
    "PIL.Image",
    "pydicom",
    "highdicom",
    "onnxruntime",
    "dicomweb_client",
    "requests",
    "claimed_airflow.core.runner",
    "claimed_airflow.core.imaging",
    "claimed_airflow.core.tables",
    "claimed_airflow.core.prediction_log",
    "claimed_airflow.pacs.dicomweb",
    "claimed_airflow.components._pacs",
    "claimed_airflow.components.input.dicom",
    "claimed_airflow.components.filter.series",
    "claimed_airflow.components.transform.dicom_to_images",
    "claimed_airflow.components.predict.resolve_model",
    "claimed_airflow.components.predict.deployed",
    "claimed_airflow.components.output.dicom",
    "claimed_airflow.components.output.prediction_log",
    "claimed_airflow.components.predict.study",
    # the DAG files' own imports (each task process parses its DAG file): dicom_inference_watch's
    "claimed_airflow.operators",
    "claimed_airflow.pacs.listener",
    "claimed_airflow.triggers.studies",
    "airflow.providers.standard.operators.trigger_dagrun",
)
# the Airflow commands whose process forks the task processes
STARTS_TASKS = (("scheduler",), ("celery", "worker"), ("edge", "worker"))

log = logging.getLogger("claimed_airflow")


def airflow_command(argv: list[str] | None = None) -> tuple[str, ...]:
    """The Airflow command this process runs (``("scheduler",)``, ``("celery", "worker")``, ...); ``()`` if none."""
    argv = sys.argv if argv is None else argv
    program = argv[0] if argv else ""
    if os.path.basename(program) != "airflow" and not program.endswith(os.path.join("airflow", "__main__.py")):
        return ()
    return tuple(arg for arg in argv[1:3] if not arg.startswith("-"))


def preload(modules: Iterable[str] = MODULES, *, always: bool = False) -> list[str]:
    """Import ``modules`` in a process that starts tasks (``always``: in any process); the names imported.

    A module that is not installed is skipped (a deployment without onnxruntime still starts).
    """
    command = airflow_command()
    if not always and not any(command[: len(starts)] == starts for starts in STARTS_TASKS):
        return []
    imported = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.debug("preload: %s not imported: %s", name, exc)
        else:
            imported.append(name)
    return imported
