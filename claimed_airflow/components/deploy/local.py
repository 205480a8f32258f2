"""Publish a model into a versioned local (or object-storage) model registry folder."""

from __future__ import annotations

from claimed_airflow.assets import MODEL_NAME as _NAME
from claimed_airflow.core import InputPath, component, storage
from claimed_airflow.core.context import current
from claimed_airflow.core.errors import ClaimedError


@component("deploy")
def local(model: InputPath, model_name: str = "model", models_root: str | None = None) -> dict:
    """Copy a model folder to ``<models_root>/<model_name>/<version>`` with the next version number.

    The copy is atomic: a reader sees either no new version or a complete one.

    :param model: Model folder to publish.
    :param model_name: Name of the model in the registry folder (letters, digits, ``_.-``).
    :param models_root: Registry folder or URI; default ``<output root>/models``.
    """
    if not _NAME.match(model_name):
        raise ClaimedError(f"model_name: {model_name!r} is not a valid name (letters, digits, _ . -)")
    root = storage.normalize(models_root or storage.join(current().root or storage.default_root(), "models"))
    base = storage.join(root, model_name)
    fs = storage.filesystem(base)
    existing = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.glob(base + "/*")] if fs.exists(base) else []
    version = max((int(v) for v in existing if v.isdigit()), default=0) + 1
    uri = storage.join(base, str(version))
    storage.commit(model, uri)
    return {"model_uri": uri, "model_version": version}
