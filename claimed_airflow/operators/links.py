"""Extra links of claimed tasks: the artifact folder of the run and the deployed model or endpoint."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


def _result(operator: Any) -> dict:
    return getattr(operator, "claimed_result", None) or {}


def as_link(uri: str) -> str:
    """A clickable form of an artifact URI: ``file://`` for local paths, the URI itself otherwise."""
    return uri if "://" in uri else f"file://{uri}"


class ArtifactsLink(BaseOperatorLink):
    """The task's output folder (``<root>/<dag>/<run>/<task>``), where outputs and manifest.json are."""

    name = "Artifacts"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        manifest = _result(operator).get("manifest")
        return as_link(manifest.rsplit("/", 1)[0]) if manifest else ""


class DeploymentLink(BaseOperatorLink):
    """Where a deploy task put the model: its endpoint URL, or the published model folder."""

    name = "Deployment"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = _result(operator)
        target = result.get("endpoint_url") or result.get("url") or result.get("model_uri")
        return as_link(str(target)) if target else ""
