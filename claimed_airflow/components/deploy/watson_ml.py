"""Deploy a model to IBM Watson Machine Learning (watsonx.ai runtime) as an online deployment."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tarfile
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from claimed_airflow.components.train.image_classifier import network_file
from claimed_airflow.core import InputPath, component, waits
from claimed_airflow.core.credentials import from_connection, mask
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")

FAILED_STATES = ("failed", "deleted")


@component("deploy")
def watson_ml(
    model: InputPath,
    deployment_name: str = "claimed-model",
    model_name: str | None = None,
    model_type: str | None = None,
    software_spec: str | None = None,
    space_id: str | None = None,
    sample: InputPath | None = None,
    deployment_timeout: int = 600,
    poll_interval: float = 5.0,
    conn_id: str | None = "watson_ml_default",
) -> dict:
    """Store a model in Watson Machine Learning, create an online deployment, score a sample image.

    A Keras model is exported as a TensorFlow SavedModel, an ONNX model (``framework="torch"``) is sent
    as it is; the ``tar.gz`` is stored in the deployment space
    with ``model_type`` and the software specification ``software_spec``, and deployed online; the
    task waits until the deployment is ready, then scores one image to prove it answers. Credentials
    come from an Airflow connection of type ``watson_ml`` (the API key is never logged or returned);
    without one (no ``conn_id``, or no Airflow there) from ``WATSONX_URL``,
    ``WATSONX_APIKEY``, ``WATSONX_USERNAME`` and ``WATSONX_SPACE_ID``.

    :param model: Model folder from ``train.mobilenet_v2`` (``model.keras`` or ``model.onnx`` + ``labels.json``).
    :param deployment_name: Name of the online deployment.
    :param model_name: Name of the stored model; default the deployment name.
    :param model_type: Watson ML model type; default ``tensorflow_2.14`` for a Keras model, ``onnxruntime_1.16``
        for an ONNX one.
    :param software_spec: Software specification of the runtime; default ``runtime-24.1-py3.11`` (Keras) or
        ``onnxruntime_opset_19`` (ONNX).
    :param space_id: Deployment space id; default the connection's ``space_id``.
    :param sample: Image file, or image folder with ``index.csv``, whose first image is scored; default a blank
        image.
    :param deployment_timeout: Seconds to wait for the deployment to become ready.
    :param poll_interval: Seconds between two deployment status checks.
    :param conn_id: Airflow connection of type ``watson_ml`` (one not defined is an error); empty: ``WATSONX_*``
        environment variables.
    """
    import numpy as np

    info = _labels(model)
    onnx = network_file(model).suffix == ".onnx"
    model_type = model_type or ("onnxruntime_1.16" if onnx else "tensorflow_2.14")
    software_spec = software_spec or ("onnxruntime_opset_19" if onnx else "runtime-24.1-py3.11")
    client, secret = _client(conn_id, space_id)
    try:
        model_id, deployment_id = waits.once(
            "deploy",
            lambda: _store_and_deploy(
                client, model, model_name or deployment_name, deployment_name, model_type, software_spec
            ),
        )
        poll = waits.Poll(
            "watson_ml.deployment",  # deployment_state (waits.CHECKS)
            {"conn_id": conn_id, "space_id": space_id, "deployment_id": deployment_id},
            deployment_timeout,
            poll_interval,
            what=f"Watson ML deployment {deployment_id}",
        )
        try:
            state, details = waits.wait(poll)
        except waits.WaitTimeout as exc:
            last = exc.last.get("entity", {}).get("status", {}).get("state", "")
            raise ClaimedError(
                f"deployment_timeout: deployment {deployment_id} not ready after {deployment_timeout:g} s "
                f"(state {last!r})"
            ) from None
        if state != "ready":
            raise ClaimedError(_failure(deployment_id, details))
        url = client.deployments.get_scoring_href(details)
        log.info("deployment %s is ready: %s", deployment_id, url)
        x = _sample_input(sample, info["image_size"])
        answer = client.deployments.score(deployment_id, {"input_data": [{"values": x.tolist()}]})
        probabilities = np.asarray(answer["predictions"][0]["values"][0], dtype=float).ravel()
    except ClaimedError:
        raise
    except Exception as exc:  # WMLClientError, ApiRequestFailure, httpx errors: one line, key scrubbed
        raise ClaimedError(_scrub(f"watson_ml: {exc.__class__.__name__}: {_first_line(exc)}", secret)) from None
    if len(probabilities) != len(info["classes"]):
        count = len(info["classes"])
        raise ClaimedError(f"watson_ml: the sample score has {len(probabilities)} values for {count} classes")
    best = int(probabilities.argmax())
    return {
        "deployment_id": deployment_id,
        "deployment_url": url,
        "model_id": model_id,
        "sample_label": info["classes"][best],
        "sample_score": float(probabilities[best]),
    }


def _labels(model: str) -> dict:
    path = Path(model)
    if network_file(path) is None or not (path / "labels.json").exists():
        raise ClaimedError(
            f"model: {model} needs model.keras or model.onnx, and labels.json (the output of train.mobilenet_v2)"
        )
    return json.loads((path / "labels.json").read_text())


def _client(conn_id: str | None, space_id: str | None):
    """(APIClient, API key) from the Airflow connection, else (none given, or no Airflow here:
    :mod:`claimed_airflow.core.credentials`) from the ``WATSONX_*`` environment variables."""

    def read(name: str):
        from claimed_airflow.hooks.watson_ml import WatsonMachineLearningHook

        hook = WatsonMachineLearningHook(name, space_id=space_id)
        return hook.credentials(), hook.space_id

    def environment():
        url, key = os.environ.get("WATSONX_URL"), os.environ.get("WATSONX_APIKEY")
        if not url or not key:
            return None
        from ibm_watsonx_ai import Credentials

        mask(key)
        username = os.environ.get("WATSONX_USERNAME") or None
        return Credentials(url=url, api_key=key, username=username), space_id or os.environ.get("WATSONX_SPACE_ID")

    credentials, space = from_connection(
        conn_id,
        read,
        kind="Watson ML",
        environment=environment,
        hint="without one, set WATSONX_URL, WATSONX_APIKEY and WATSONX_SPACE_ID",
    )
    if not space:
        raise ClaimedError("space_id: no deployment space given (parameter or the connection's space_id)")
    from ibm_watsonx_ai import APIClient
    from ibm_watsonx_ai.wml_client_error import InvalidCredentialsError

    secret = credentials.api_key or ""
    try:
        return APIClient(credentials, space_id=space), secret
    except Exception as exc:
        text = _first_line(exc)
        refused = isinstance(exc, InvalidCredentialsError) or "nauthorized" in text
        if refused or any(code in text for code in ("401", "403")):
            raise ClaimedError(_scrub(f"conn_id: Watson ML refused the credentials ({text})", secret)) from None
        raise ClaimedError(_scrub(f"conn_id: cannot connect to Watson ML: {text}", secret)) from None


def _model_archive(model: str, folder: Path) -> Path:
    """``model.tar.gz``: the ONNX file as it is, or the Keras model exported as a TensorFlow SavedModel."""
    source = network_file(model)
    archive = folder / "model.tar.gz"
    if source.suffix == ".onnx":
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(source, arcname=source.name)
        return archive
    import keras

    network = keras.saving.load_model(source)
    saved = folder / "saved_model"
    network.export(str(saved), format="tf_saved_model", verbose=False)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(saved.iterdir()):
            tar.add(item, arcname=item.name)
    return archive


def _store_and_deploy(client, model: str, model_name: str, deployment_name: str, model_type: str, spec: str):
    """Store the model and start its online deployment (in the background): [model id, deployment id]."""
    with tempfile.TemporaryDirectory(prefix="claimed-wml-") as tmp:
        archive = _model_archive(model, Path(tmp))
        spec_id = client.software_specifications.get_id_by_name(spec)
        if not spec_id or spec_id == "Not Found":
            raise ClaimedError(f"software_spec: {spec!r} is not known to this Watson ML")
        names = client.repository.ModelMetaNames
        meta = {names.NAME: model_name, names.TYPE: model_type, names.SOFTWARE_SPEC_ID: spec_id}
        stored = client.repository.store_model(model=str(archive), meta_props=meta)
    model_id = client.repository.get_model_id(stored)
    log.info("stored model %s (%s, %s)", model_id, model_type, spec)
    config = client.deployments.ConfigurationMetaNames
    with warnings.catch_warnings():  # "Background mode is turned on": the task waits below
        warnings.simplefilter("ignore", UserWarning)
        created = client.deployments.create(
            model_id, meta_props={config.NAME: deployment_name, config.ONLINE: {}}, background_mode=True
        )
    return [model_id, client.deployments.get_id(created)]


def deployment_state(conn_id: str | None, space_id: str | None, deployment_id: str) -> tuple[str | None, dict]:
    """One status check of a deployment (``waits.CHECKS["watson_ml.deployment"]``): ``ready``,
    ``failed``/``deleted`` or None."""
    client, secret = _client(conn_id, space_id)
    try:
        details = client.deployments.get_details(deployment_id)
    except Exception as exc:
        raise ClaimedError(_scrub(f"watson_ml: {exc.__class__.__name__}: {_first_line(exc)}", secret)) from None
    return _deployment_state(details), details


@contextlib.asynccontextmanager
async def watch_deployment(
    conn_id: str | None, space_id: str | None, deployment_id: str
) -> AsyncIterator[Callable[[], Awaitable[tuple[str | None, dict]]]]:
    """:func:`deployment_state` in the triggerer: one client for every check, each status read with its
    asynchronous (httpx) client; the client is made in a thread (it reads the connection and signs in, blocking)."""
    import asyncio

    client, secret = await asyncio.to_thread(_client, conn_id, space_id)

    async def check() -> tuple[str | None, dict]:
        try:
            details = await client.deployments.aget_details(deployment_id)
        except Exception as exc:
            raise ClaimedError(_scrub(f"watson_ml: {exc.__class__.__name__}: {_first_line(exc)}", secret)) from None
        return _deployment_state(details), details

    try:
        yield check
    finally:
        await client.async_httpx_client.aclose()


def _deployment_state(details: dict) -> str | None:
    state = details.get("entity", {}).get("status", {}).get("state", "")
    return state if state == "ready" or state in FAILED_STATES else None


def _failure(deployment_id: str, details: dict) -> str:
    status = details.get("entity", {}).get("status", {})
    errors = status.get("failure", {}).get("errors") or [{}]
    reason = "; ".join(e.get("message") or e.get("code") or "no reason given" for e in errors)
    return f"deployment_name: Watson ML deployment {deployment_id} {status.get('state')}: {reason}"


def _sample_input(sample: str | None, size: int):
    """``(1, S, S, 3)`` network input of the sample image (first labelled image of a folder), else blank.

    The image becomes network input as for training and serving (``core.imaging``).
    """
    import numpy as np

    from claimed_airflow.core.imaging import DEFAULT_MAX_PIXELS, image_pixels, network_input

    if not sample:
        return np.zeros((1, size, size, 3), dtype=np.float32)
    path = Path(sample)
    if path.is_dir():
        index = path / "index.csv"
        if not index.exists():
            raise ClaimedError(f"sample: {sample} is a folder without index.csv")
        import csv

        with open(index, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if not str(r.get("label", "")).startswith("_")]
        if not rows:
            raise ClaimedError(f"sample: no labelled image in {sample}")
        path = path / rows[0]["image"]
    try:
        return network_input(image_pixels(path.read_bytes(), size, DEFAULT_MAX_PIXELS)[None])
    except ValueError as exc:  # FrameTooLarge, UnreadableImage
        raise ClaimedError(f"sample: image: {exc}") from None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
