"""Typed KFP outputs beside the URIs: what the Kubeflow UI shows of a step (no kfp import here).

Which typed outputs a component gets is decided from its spec, so the compiled IR declares them:

- ``ui_metrics`` (``Metrics``), every component: the numbers it returned (accuracy, biased metrics,
  robustness accuracies, counts, ...);
- ``ui_confusion_matrix`` (``ClassificationMetrics``): components whose spec names a confusion-matrix
  output (``UiOutputs.confusion_matrix``: JSON with ``classes`` and ``matrix``);
- ``ui_report`` (``HTML``): components with PNG outputs or an image folder (``UiOutputs.image_folder``):
  the returned values and the images (fairness plot, LIME overlays, adversarial examples), inline;
- ``ui_summary`` (``Markdown``): components with a Markdown output (the German-credit before/after table);
- ``ui_model`` (``Model``): components with an output named ``model`` or ``UiOutputs.model`` (they return
  ``model_uri``): the model's URI, framework and version in the artifact's metadata (the data stays where the
  URI points).

Every text that comes from data is escaped before it becomes HTML or Markdown.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any

from claimed_airflow.core.component import ComponentSpec

METRICS, CONFUSION, REPORT, SUMMARY, MODEL = "ui_metrics", "ui_confusion_matrix", "ui_report", "ui_summary", "ui_model"
ARTIFACT_TYPES = {
    METRICS: "Metrics",
    CONFUSION: "ClassificationMetrics",
    REPORT: "HTML",
    SUMMARY: "Markdown",
    MODEL: "Model",
}
MAX_IMAGES = 12
MAX_IMAGE_BYTES = 2 * 1024 * 1024


def _suffix(spec: ComponentSpec, suffix: str) -> list[str]:
    return [o.name for o in spec.outputs if str(o.default).lower().endswith(suffix)]


def ui_outputs(spec: ComponentSpec) -> list[str]:
    """The typed outputs of ``spec``'s KFP component, in a fixed order."""
    names = [METRICS]
    if spec.ui.confusion_matrix:
        names.append(CONFUSION)
    if _suffix(spec, ".png") or spec.ui.image_folder:
        names.append(REPORT)
    if _suffix(spec, ".md"):
        names.append(SUMMARY)
    if any(o.name == "model" for o in spec.outputs) or spec.ui.model:
        names.append(MODEL)
    return names


def fill(spec: ComponentSpec, artifacts: dict[str, Any], result: dict[str, Any], returned: dict[str, Any]) -> None:
    """Write the typed outputs of a finished step (``artifacts``: name -> kfp artifact object)."""
    if METRICS in artifacts:
        for name, value in returned.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                artifacts[METRICS].log_metric(name, value)
    if CONFUSION in artifacts:
        data = _read_json(result[spec.ui.confusion_matrix])
        artifacts[CONFUSION].log_confusion_matrix([str(c) for c in data["classes"]], data["matrix"])
    if REPORT in artifacts:
        _write(artifacts[REPORT].path, report_html(spec, result, returned))
    if SUMMARY in artifacts:
        parts = [html.escape(_read_text(result[name]), quote=False) for name in _suffix(spec, ".md")]
        _write(artifacts[SUMMARY].path, "\n\n".join(parts))
    if MODEL in artifacts:
        model = artifacts[MODEL]
        model.metadata.update(model_metadata(spec, result, returned))
        _write(model.path, json.dumps(model.metadata, indent=2))


def model_metadata(spec: ComponentSpec, result: dict[str, Any], returned: dict[str, Any]) -> dict[str, Any]:
    """URI, framework and version of the model a step trained or deployed."""
    from claimed_airflow import __version__
    from claimed_airflow.core import storage

    uri = returned.get("model_uri") or result.get("model")
    labels = storage.join(uri, "labels.json")
    info = _read_json(labels) if storage.exists(labels) else {}
    scope = _read_json(result["manifest"]).get("scope", {}) if result.get("manifest") else {}
    return {
        "uri": uri,
        "framework": info.get("framework") or "unknown",
        "version": str(returned.get("model_version") or scope.get("run_id") or ""),
        "component": spec.name,
        "claimed_airflow": __version__,
    }


def report_html(spec: ComponentSpec, result: dict[str, Any], returned: dict[str, Any]) -> str:
    """A self-contained page: the returned values as a table and the step's images inline."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in returned.items()
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, data in _images(spec, result)
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)}</title>"
        "<style>body{font-family:sans-serif}img{max-width:480px}td,th{text-align:left;padding:2px 8px}</style>"
        f"</head><body><h2>{html.escape(spec.name)}</h2><table>{rows}</table>{figures}</body></html>"
    )


def _images(spec: ComponentSpec, result: dict[str, Any]) -> list[tuple[str, str]]:
    from claimed_airflow.core import storage

    uris = [result[name] for name in _suffix(spec, ".png")]
    folder = spec.ui.image_folder
    if folder:
        fs = storage.filesystem(result[folder])
        found = sorted(fs.glob(storage.join(result[folder], "*.png")))
        uris += found if storage.is_local(result[folder]) else [fs.unstrip_protocol(p) for p in found]
    images = []
    for uri in uris[:MAX_IMAGES]:
        fs = storage.filesystem(uri)
        if fs.size(uri) > MAX_IMAGE_BYTES:
            continue
        with fs.open(uri, "rb") as handle:
            images.append((uri.rsplit("/", 1)[-1], base64.b64encode(handle.read()).decode()))
    return images


def _read_json(uri: str) -> Any:
    from claimed_airflow.core import storage

    return storage.read_json(uri)


def _read_text(uri: str) -> str:
    from claimed_airflow.core import storage

    with storage.filesystem(uri).open(uri, "r") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    import os

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
