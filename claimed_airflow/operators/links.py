"""Extra links of claimed tasks: the artifact folder of the run and the deployed model or endpoint.

On Airflow 3 the worker computes a link when the task ends (the operator still holds its result); on
2.11 the webserver computes it from a deserialized operator, so the values come from the task's XComs.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.version_compat import AIRFLOW_V_3_0_PLUS, BaseOperatorLink, xcom_value


def _value(operator: Any, ti_key: Any, *keys: str) -> Any:
    """The first of ``keys`` the task returned: from the operator after its run, else from its XComs (2.x)."""
    result = getattr(operator, "claimed_result", None)
    if result is None and not AIRFLOW_V_3_0_PLUS:
        result = {key: xcom_value(ti_key, key) for key in keys}
    return next((result[key] for key in keys if (result or {}).get(key)), None)


def as_link(uri: str) -> str:
    """A clickable form of an artifact URI: ``file://`` for local paths, the URI itself otherwise."""
    return uri if "://" in uri else f"file://{uri}"


class ArtifactsLink(BaseOperatorLink):
    """The task's output folder (``<root>/<dag>/<run>/<task>``), where outputs and manifest.json are."""

    name = "Artifacts"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        manifest = _value(operator, ti_key, "manifest")
        return as_link(manifest.rsplit("/", 1)[0]) if manifest else ""


class DeploymentLink(BaseOperatorLink):
    """Where a deploy task put the model: its endpoint URL, or the published model folder."""

    name = "Deployment"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        target = _value(operator, ti_key, "endpoint_url", "url", "model_uri")
        return as_link(str(target)) if target else ""
