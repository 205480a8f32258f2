"""The run manifest: the reproducibility and lineage record written next to a task's outputs."""

from __future__ import annotations

import os
import platform
import sys
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from claimed_airflow import __version__
from claimed_airflow.core import storage
from claimed_airflow.core.component import ComponentSpec

TRACKED_PACKAGES = (
    "claimed-airflow",
    "apache-airflow",
    "numpy",
    "pandas",
    "pyarrow",
    "pydicom",
    "pillow",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "torch",
    "scikit-learn",
)


def package_versions() -> dict[str, str]:
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A run id for runs outside Airflow: the time plus a random suffix, so two runs never share a folder."""
    return f"{now()}-{uuid.uuid4().hex[:6]}"


def build(
    spec: ComponentSpec,
    *,
    parameters: dict,
    inputs: dict[str, dict],
    outputs: dict[str, dict],
    values: dict,
    rejected: list[dict],
    started: str,
    scope: dict | None,
) -> dict:
    """A JSON-ready manifest; ``inputs``/``outputs`` map names to ``{"uri", "hash"}``.

    Credentials inside URIs (userinfo, signed-URL query values) are redacted everywhere in it.
    """
    record = {
        "manifest_version": 1,
        "component": spec.name,
        "reference": spec.reference,
        "component_version": __version__,
        "library_version": __version__,
        "image": os.environ.get("CLAIMED_IMAGE") or spec.image,  # a pod says which image it runs
        "scope": scope,
        "parameters": parameters,
        "inputs": inputs,
        "outputs": outputs,
        "values": values,
        "rejected": rejected,
        "started": started,
        "finished": now(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    return storage.redact_values(record)
