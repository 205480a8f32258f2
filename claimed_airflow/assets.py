"""Airflow Assets for claimed artifacts, so that DAGs can be scheduled on a deployed model."""

from __future__ import annotations

from typing import Any


def model_asset(model_name: str) -> Any:
    """The Asset of a published model (``deploy.*`` tasks list it in ``outlets``).

    A DAG with ``schedule=[model_asset("chestxray_mobilenet_v2")]`` runs after each deployment; the
    asset event's ``extra`` carries the model URI, its version and the task's manifest.
    """
    from airflow.sdk import Asset

    return Asset(name=f"claimed-model-{model_name}", uri=f"claimed-model://{model_name}", group="model")
