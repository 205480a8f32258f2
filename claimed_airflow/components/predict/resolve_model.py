"""Resolve the deployed model a run will use: the version a model text names now."""

from __future__ import annotations

from claimed_airflow.core import component


@component("predict")
def resolve_model(model: str, models_root: str | None = None) -> dict:
    """Resolve ``model`` once per run, so every task of the run uses the same version and records it.

    ``<name>`` becomes ``<name>@<newest version>`` of ``deploy.local``'s model store; ``<name>@<version>``,
    ``kserve://<conn_id>/<model name>`` (asks the endpoint's V2 metadata) and
    ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]`` are checked and pinned the same way
    (see ``predict.deployed``). Returns model (the pinned text), model_name, model_version, model_uri,
    image_size and classes.

    :param model: ``<name>``, ``<name>@<version>``, ``kserve://<conn_id>/<model name>`` or
        ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]``.
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    """
    from claimed_airflow.components.predict.deployed import resolve
    from claimed_airflow.core.storage import redact

    resolved = resolve(model, models_root)
    return {**resolved, "model_uri": redact(resolved["model_uri"])}
