"""Shared by the flagship tests of every engine (Airflow local, the kubernetes path, kfp.local).

The deterministic steps of ``dicom_to_deployment`` (no training, no random numbers) must write the
same bytes wherever they run; each step's run manifest records its outputs' content hashes, so two
runs are compared through their manifests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

# the flagship's steps whose outputs depend on their inputs and parameters alone
DETERMINISTIC_TASKS = ("dicom_input", "cohort", "dicom_to_images")
# small and quick: PyTorch trains in seconds on a CPU (Keras takes minutes on a busy machine); the gate blesses
# any model (no accuracy asked, none over the majority class), for the tests whose subject is not training
BLESS_ANY = {"min_accuracy": 0.0, "min_over_majority": -1.0}
FLAGSHIP_FAST = {"epochs": 1, "image_size": 32, **BLESS_ANY, "framework": "torch"}
# what the flagship's tasks import (PyTorch, ART, LIME, ...): the end-to-end tests' schedulers and Celery workers
# preload them as a deployment would (claimed_airflow.preload), so each task process starts with them imported
FLAGSHIP_PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pydicom",
    "PIL.Image",
    "onnxruntime",
    "torch",
    "torchvision",
    "art.estimators.classification",
    "art.attacks.evasion",
    "lime.lime_image",
    "lime.wrappers.scikit_image",
    "sklearn.metrics",
    "claimed_airflow.operators",
    "claimed_airflow.core.runner",
    "claimed_airflow.components.input.dicom",
    "claimed_airflow.components.transform.dicom_to_images",
    "claimed_airflow.components.train.mobilenet_v2",
    "claimed_airflow.components.predict.images",
)


def output_hashes(manifest: str | Path) -> dict[str, str]:
    """``{output name: content hash}`` from a task's run manifest (``manifest.json``)."""
    record = json.loads(Path(manifest).read_text())
    return {name: output["hash"] for name, output in record["outputs"].items()}


def deterministic_hashes(manifest_of: Callable[[str], str | Path]) -> dict[str, dict[str, str]]:
    """The content hashes of the deterministic steps; ``manifest_of(task_id)`` locates a step's manifest
    (e.g. ``<output root>/dicom_to_deployment/<run>/<task_id>/manifest.json`` for Airflow)."""
    return {task: output_hashes(manifest_of(task)) for task in DETERMINISTIC_TASKS}


def rerun_in_process(manifest_of: Callable[[str], str | Path], root: str) -> dict[str, dict[str, str]]:
    """Run each deterministic step again in this process (what engine ``local`` runs in the worker), with the
    parameters and input URIs its manifest records; returns the content hashes of the new outputs."""
    from claimed_airflow.core.runner import run

    hashes = {}
    for task in DETERMINISTIC_TASKS:
        record = json.loads(Path(manifest_of(task)).read_text())
        arguments = {**record["parameters"], **{name: item["uri"] for name, item in record["inputs"].items()}}
        hashes[task] = output_hashes(run(record["component"], arguments, root=root)["manifest"])
    return hashes
