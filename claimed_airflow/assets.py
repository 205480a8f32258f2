"""Airflow Assets (Datasets on Airflow 2.11) for claimed artifacts, so that DAGs can be scheduled on a deployed model.

Model assets have URIs ``claimed-model://<model name>``; the provider registers the scheme (provider info
``asset-uris``, ``dataset-uris`` on 2.11) with :func:`sanitize_uri` as its handler.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from claimed_airflow.core.paths import MODEL_NAME

SCHEME = "claimed-model"


def model_asset(model_name: str) -> Any:
    """The Asset of a published model (``deploy.*`` tasks list it in ``outlets``).

    A DAG with ``schedule=[model_asset("chestxray_mobilenet_v2")]`` runs after each deployment; the
    asset event's ``extra`` carries the model URI, its version and the task's manifest. On Airflow 2.11
    it is a Dataset of the same URI.
    """
    from claimed_airflow.version_compat import asset

    return asset(f"{SCHEME}://{model_name}", name=f"claimed-model-{model_name}", group="model")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler of ``claimed-model://<name>``: a model name (letters, digits, ``_.-``), nothing else."""
    if not MODEL_NAME.match(uri.netloc) or uri.path not in ("", "/"):
        raise ValueError(f"{SCHEME} URI must be {SCHEME}://<model name> (letters, digits, _ . -), got {uri.geturl()}")
    return uri._replace(path="")
