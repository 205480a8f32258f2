"""Publish a model into a versioned local (or object-storage) model registry folder."""

from __future__ import annotations

from claimed_airflow.core import InputPath, UiOutputs, component, storage
from claimed_airflow.core.context import current
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import MODEL_NAME


@component("deploy", ui=UiOutputs(model=True))
def local(model: InputPath, model_name: str = "model", models_root: str | None = None) -> dict:
    """Copy a model folder to ``<models_root>/<model_name>/<version>`` with the next version number.

    The copy is atomic: a reader sees either no new version or a complete one, and concurrent runs get
    distinct versions (on local folders; see ``core.storage.commit_version`` for object storage).

    :param model: Model folder to publish.
    :param model_name: Name of the model in the registry folder (letters, digits, ``_.-``).
    :param models_root: Registry folder or URI; default ``<output root>/models``.
    """
    if not MODEL_NAME.match(model_name):
        raise ClaimedError(f"model_name: {model_name!r} is not a valid name (letters, digits, _ . -)")
    root = storage.normalize(models_root or storage.join(current().root or storage.default_root(), "models"))
    uri, version = storage.commit_version(model, storage.join(root, model_name))
    return {"model_uri": uri, "model_version": version}
