"""Airflow names that moved between 2.11 and 3.x, in one place. Import Airflow names from here.

``from claimed_airflow.version_compat import BaseOperator`` works on Airflow 2.11 and 3.0 to 3.3: any
name not defined below comes from apache-airflow-providers-common-compat
(``airflow.providers.common.compat.sdk``: ``airflow.sdk`` on 3.x, the Airflow 2 paths on 2.11), looked up
on first use. This module adds only what common.compat lacks: version flags, ``DagBag``,
``PlainXComArg``, ``mask_secret`` (older common.compat releases), an exception class wherever it lives
(:func:`exception_classes`), skipping downstream tasks, the asset
(Dataset on 2.11) of a URI, an XCom read for extra links, and :func:`require_airflow` for features
that need a newer Airflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

if TYPE_CHECKING:  # what IDEs and type checkers see; at run time __getattr__ below resolves them
    from airflow.sdk import (  # noqa: F401
        DAG,
        Asset,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Param,
        Variable,
        XComArg,
    )
    from airflow.sdk.bases.branch import BranchMixIn  # noqa: F401
    from airflow.sdk.bases.skipmixin import SkipMixin  # noqa: F401
    from airflow.sdk.configuration import conf  # noqa: F401
    from airflow.sdk.definitions.mappedoperator import MappedOperator  # noqa: F401
    from airflow.sdk.exceptions import AirflowFailException  # noqa: F401

_BASE_VERSION = Version(Version(AIRFLOW_VERSION).base_version)
AIRFLOW_V_3_0_PLUS = _BASE_VERSION >= Version("3.0.0")
AIRFLOW_V_3_1_PLUS = _BASE_VERSION >= Version("3.1.0")
AIRFLOW_V_3_2_PLUS = _BASE_VERSION >= Version("3.2.0")

# Names common.compat does not map (or maps only in releases newer than the one we require).
_OWN: dict[str, tuple[str, ...]] = {
    "DagBag": ("airflow.dag_processing.dagbag", "airflow.models.dagbag"),
    "PlainXComArg": ("airflow.sdk.definitions.xcom_arg", "airflow.models.xcom_arg"),
    "mask_secret": (
        "airflow.sdk.log",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ),
}


class AirflowVersionError(RuntimeError):
    """A feature needs a newer Airflow than the one installed."""


def require_airflow(minimum: str, feature: str) -> None:
    """Raise a clear error (feature, needed and installed version) when Airflow is older than ``minimum``.

    Call it where the feature is used: in a DAG file (shown as the DAG's import error) or at task start.
    """
    if _BASE_VERSION < Version(minimum):
        raise AirflowVersionError(f"{feature} needs Airflow {minimum} or newer; this is Airflow {AIRFLOW_VERSION}")


def __getattr__(name: str) -> Any:
    if name in _OWN:
        for path in _OWN[name]:
            try:
                value = getattr(importlib.import_module(path), name)
                break
            except (ImportError, AttributeError):
                continue
        else:
            raise ImportError(f"{name} is not found in Airflow {AIRFLOW_VERSION} ({', '.join(_OWN[name])})")
    elif name.startswith("__"):
        raise AttributeError(name)
    else:
        value = getattr(importlib.import_module("airflow.providers.common.compat.sdk"), name)
    globals()[name] = value
    return value


def exception_classes(name: str) -> tuple[type[BaseException], ...]:
    """Every class Airflow names ``name`` (``AirflowNotFoundException``: the SDK's and ``airflow.exceptions``' may
    differ between versions), to catch whichever is raised."""
    import airflow.exceptions

    found = {globals()[name] if name in globals() else __getattr__(name)}
    if isinstance(getattr(airflow.exceptions, name, None), type):
        found.add(getattr(airflow.exceptions, name))
    return tuple(found)


def skip_tasks(operator: Any, context: Any, tasks: list[Any]) -> None:
    """Skip ``tasks`` (downstream of ``operator``, a SkipMixin) from inside ``execute``.

    On 3.x this raises (the task runner marks the tasks skipped after the task); on 2.11 it writes the
    skipped states and returns.
    """
    if AIRFLOW_V_3_0_PLUS:
        operator.skip(ti=context["ti"], tasks=tasks)
    else:
        dag_run = context["dag_run"]
        operator.skip(
            dag_run=dag_run, execution_date=dag_run.execution_date, tasks=tasks, map_index=context["ti"].map_index
        )


def asset(uri: str, *, name: str | None = None, group: str | None = None) -> Any:
    """An Airflow Asset on 3.x (with name and group), a Dataset of the same URI on 2.11."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        return Asset(name=name or uri, uri=uri, group=group or "asset")
    from airflow.datasets import Dataset

    return Dataset(uri=uri)


def xcom_value(ti_key: Any, key: str) -> Any:
    """An XCom value of a finished task instance (for extra links computed by the 2.x webserver)."""
    from airflow.models.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)
