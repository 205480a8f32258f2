"""Score an image folder with the deployed model: a model store version, a KServe/V2 endpoint or Watson ML.

The model is one text (``model`` of ``predict.resolve_model`` and ``predict.deployed``):

- ``<name>``: the newest version in ``deploy.local``'s model store, ``<models_root>/<name>/<version>``
  (every version there was published by ``deploy.local``, which runs after the blessing gate);
- ``<name>@<version>``: that version of the store (a pinned model);
- ``kserve://<conn_id>/<model name>``: an Open Inference Protocol (KServe V2) endpoint, such as
  ``claimed-airflow serve`` or ``deploy.kserve``'s InferenceService; base URL and credentials from the
  Airflow connection ``conn_id`` (type http: host, port, login/password, or ``token`` in the extra);
- ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]``: a Watson ML online deployment
  (connection of type watson_ml); it answers probabilities only, so the class names and the image size
  come from that model store version.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from claimed_airflow.core import InputPath, OutputPath, component, storage
from claimed_airflow.core.context import current
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_STORE = re.compile(rf"^({_NAME})(?:@([0-9]{{1,9}}))?$")
_CONN = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
NETWORK_FILES = ("model.onnx", "model.keras")
TIMEOUT = 60.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
SYNTAX = (
    "<name>, <name>@<version>, kserve://<conn_id>/<model name> or watsonml://<conn_id>/<deployment id>?labels=<name>"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model`` text."""

    kind: str  # store, kserve, watsonml
    name: str  # store model name / served model name / store model whose labels a Watson ML deployment uses
    version: str | None = None
    conn_id: str | None = None
    deployment_id: str | None = None

    @property
    def pinned(self) -> str:
        """The text of this exact model (the version in it)."""
        store = f"{self.name}@{self.version}" if self.version else self.name
        if self.kind == "store":
            return store
        if self.kind == "kserve":
            return f"kserve://{self.conn_id}/{self.name}"
        return f"watsonml://{self.conn_id}/{self.deployment_id}?labels={store}"


def parse_model(text: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``text``; one line naming the text when it is none of the forms."""
    text = (text or "").strip()
    wrong = ClaimedError(f"model: {text!r} is not {SYNTAX}")
    if "://" not in text:
        match = _STORE.match(text)
        if not match:
            raise wrong
        return ModelSpec("store", match.group(1), match.group(2))
    parts = urlsplit(text)
    path = parts.path.strip("/")
    if parts.scheme not in ("kserve", "watsonml") or not _CONN.match(parts.netloc) or "/" in path or not path:
        raise wrong
    if parts.scheme == "kserve":
        if parts.query or not re.fullmatch(_NAME, path):
            raise wrong
        return ModelSpec("kserve", path, conn_id=parts.netloc)
    query = dict(parse_qsl(parts.query))
    match = _STORE.match(query.get("labels", ""))
    if set(query) != {"labels"} or not match or not _DEPLOYMENT.match(path):
        raise wrong
    return ModelSpec("watsonml", match.group(1), match.group(2), conn_id=parts.netloc, deployment_id=path)


def models_root(root: str | None) -> str:
    return storage.normalize(root or storage.join(current().root or storage.default_root(), "models"))


def store_version(spec: ModelSpec, root: str | None) -> tuple[str, str]:
    """(version folder URI, version) of a store model: the pinned version, else the newest complete one."""
    base = storage.join(models_root(root), spec.name)
    fs = storage.filesystem(base)
    path = storage.local_path(base) if storage.is_local(base) else base

    def complete(version: str) -> bool:
        folder = f"{path.rstrip('/')}/{version}"
        return fs.exists(f"{folder}/labels.json") and any(fs.exists(f"{folder}/{n}") for n in NETWORK_FILES)

    if spec.version is not None:
        if not complete(spec.version):
            raise ClaimedError(f"model: {spec.name}@{spec.version} is not in the model store {storage.redact(base)}")
        return storage.join(base, spec.version), spec.version
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
    versions = sorted((n for n in names if n.isdigit()), key=int, reverse=True)
    for version in versions:
        if complete(version):
            return storage.join(base, version), version
    raise ClaimedError(f"model: no deployed version of {spec.name!r} in the model store {storage.redact(base)}")


def _local_folder(uri: str, scratch: str) -> Path:
    """A local folder holding the model version ``uri`` (downloaded when it is in object storage)."""
    if storage.is_local(uri):
        return Path(storage.local_path(uri))
    target = Path(scratch) / "model"
    storage.filesystem(uri).get(uri.rstrip("/") + "/", str(target) + "/", recursive=True)
    return target


def _store_labels(uri: str) -> dict:
    fs = storage.filesystem(uri)
    path = storage.local_path(uri) if storage.is_local(uri) else uri
    try:
        info = json.loads(fs.cat_file(f"{path.rstrip('/')}/labels.json"))
        return {"classes": [str(c) for c in info["classes"]], "image_size": int(info["image_size"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ClaimedError(f"model: labels.json of {storage.redact(uri)} is not valid: {exc}") from None


# --- KServe / Open Inference Protocol V2 ---------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    url: str  # .../v2/models/<name>
    headers: dict

    def call(self, path: str = "", body: dict | None = None) -> dict:
        """One request; its JSON answer (at most MAX_ANSWER_BYTES; redirects are not followed, so the
        credentials go to the connection's server only)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as answer:
                payload = answer.read(MAX_ANSWER_BYTES + 1)
            if len(payload) > MAX_ANSWER_BYTES:
                raise ClaimedError(f"model: {self.url}{path} answered more than {MAX_ANSWER_BYTES} bytes")
            return json.loads(payload)
        except urllib.error.HTTPError as exc:
            detail = " ".join(exc.read(300).decode(errors="replace").split())
            raise ClaimedError(f"model: {self.url}{path} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClaimedError(f"model: cannot reach {self.url}{path}: {reason}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None  # a 3xx answer becomes an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def kserve_endpoint(spec: ModelSpec) -> Endpoint:
    """The V2 endpoint of ``kserve://<conn_id>/<name>``: base URL and credentials from the http connection."""
    from claimed_airflow.core.credentials import from_connection, mask

    def read(conn_id: str) -> Endpoint:
        from claimed_airflow.version_compat import BaseHook

        conn = BaseHook.get_connection(conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ClaimedError(f"model: connection {conn_id!r} has no host")
        base = host if "://" in host else f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
        scheme = base.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ClaimedError(f"model: connection {conn_id!r} is not an http:// or https:// server")
        extra = conn.extra_dejson or {}
        headers = {}
        token = extra.get("token")
        if token:
            mask(token)
            headers["Authorization"] = f"Bearer {token}"
        elif conn.login:
            mask(conn.password)
            pair = f"{conn.login}:{conn.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if headers and scheme == "http" and not extra.get("allow_http"):
            raise ClaimedError(
                f"model: connection {conn_id!r} would send credentials over plain http; use https "
                "(or set allow_http in its extra, e.g. for a loopback server)"
            )
        return Endpoint(f"{base}/v2/models/{spec.name}", headers)

    return from_connection(spec.conn_id, read, kind="KServe (http)", param="model")


# --- resolution -------------------------------------------------------------------------------------
def resolve(text: str, root: str | None = None) -> dict:
    """What ``text`` names now: model (pinned text), model_name, model_version, model_uri, classes, image_size."""
    spec = parse_model(text)
    if spec.kind == "store":
        uri, version = store_version(spec, root)
        info = _store_labels(uri)
        pinned = ModelSpec("store", spec.name, version)
        return {"model": pinned.pinned, "model_name": spec.name, "model_version": version, "model_uri": uri, **info}
    if spec.kind == "kserve":
        meta = kserve_endpoint(spec).call()
        try:
            parameters = meta.get("parameters") or {}
            classes = [str(c) for c in parameters["classes"]]
            size = int(parameters["image_size"])
            version = str((meta.get("versions") or ["1"])[0])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClaimedError(
                f"model: {spec.pinned} does not say its classes and image size (parameters.classes, image_size); "
                "serve it with claimed-airflow serve"
            ) from None
        return {
            "model": spec.pinned,
            "model_name": spec.name,
            "model_version": version,
            "model_uri": spec.pinned,
            "classes": classes,
            "image_size": size,
        }
    uri, version = store_version(spec, root)
    info = _store_labels(uri)
    pinned = ModelSpec("watsonml", spec.name, version, spec.conn_id, spec.deployment_id)
    return {
        "model": pinned.pinned,
        "model_name": spec.name,
        "model_version": version,
        "model_uri": pinned.pinned,
        **info,
    }


class Predictor:
    """Class probabilities of uint8 grayscale images ``(N, S, S)`` from the model a resolved ``model`` names."""

    def __init__(self, resolved: dict, root: str | None, scratch: str):
        self.spec = parse_model(resolved["model"])
        self.classes, self.image_size = resolved["classes"], resolved["image_size"]
        self.version = resolved["model_version"]
        if self.spec.kind == "store":
            from claimed_airflow.components.train.image_classifier import ImageClassifier

            self.network = ImageClassifier(_local_folder(resolved["model_uri"], scratch))
            if self.network.classes != self.classes:
                raise ClaimedError(f"model: {self.spec.pinned} changed while the run used it")
        elif self.spec.kind == "kserve":
            self.endpoint = kserve_endpoint(self.spec)
        else:
            from claimed_airflow.components.deploy.watson_ml import _client

            self.client, self.secret = _client(self.spec.conn_id, None)

    def predict(self, pixels):
        import numpy as np

        from claimed_airflow.core.imaging import network_input

        n = len(pixels)
        if self.spec.kind == "store":
            probabilities = self.network.predict(network_input(pixels))
        elif self.spec.kind == "kserve":
            body = {
                "inputs": [
                    {"name": "input", "datatype": "UINT8", "shape": list(pixels.shape), "data": pixels.ravel().tolist()}
                ],
                "outputs": [{"name": "probabilities"}],
            }
            answer = self.endpoint.call("/infer", body)
            answered = str(answer.get("model_version", self.version))
            if answered != self.version:
                raise ClaimedError(
                    f"model: {self.spec.pinned} now serves version {answered}, the run resolved {self.version}; "
                    "run again to use the new version"
                )
            tensor = next((o for o in answer.get("outputs", []) if o.get("name") == "probabilities"), None)
            if tensor is None:
                raise ClaimedError(f"model: {self.spec.pinned} answered no 'probabilities' output")
            probabilities = np.asarray(tensor["data"], dtype=np.float32)
        else:
            payload = {"input_data": [{"values": network_input(pixels).tolist()}]}
            try:
                answer = self.client.deployments.score(self.spec.deployment_id, payload)
                probabilities = np.asarray(answer["predictions"][0]["values"], dtype=np.float32)
            except ClaimedError:
                raise
            except Exception as exc:  # WMLClientError, httpx errors, a malformed answer: one line, key scrubbed
                from claimed_airflow.components.deploy.watson_ml import _first_line, _scrub

                text = f"model: Watson ML: {type(exc).__name__}: {_first_line(exc)}"
                raise ClaimedError(_scrub(text, self.secret)) from None
        if probabilities.size != n * len(self.classes):
            raise ClaimedError(
                f"model: {self.spec.pinned} answered {probabilities.size} values for {n} image(s) x "
                f"{len(self.classes)} classes"
            )
        return probabilities.reshape(n, len(self.classes))


@component("predict")
def deployed(
    images: InputPath,
    model: str,
    models_root: str | None = None,
    batch_size: int = 32,
    finding: str = "",
    threshold: float = 0.5,
    predictions: OutputPath = "predictions.csv",
    summary: OutputPath = "summary.json",
) -> dict:
    """Score every image of an image folder (labelled or not) with the deployed model ``model`` names.

    ``model`` is ``<name>`` (the newest version in ``deploy.local``'s model store), ``<name>@<version>``,
    ``kserve://<conn_id>/<model name>`` (an Open Inference Protocol V2 endpoint; http connection) or
    ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]`` (classes and image size from
    that store version). Each image's row gets the prediction, its score, one probability per class and
    the statistics of the 8-bit image the model read (mean, std, min, max, for drift monitoring).

    :param images: Image folder from ``transform.dicom_to_images`` (unlabelled images are scored too).
    :param model: The deployed model (see above); ``predict.resolve_model`` gives the version it is now.
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    :param batch_size: Images per prediction request.
    :param finding: A class whose probability is a finding (e.g. ``COVID-19``); empty: none.
    :param threshold: A probability of ``finding`` at least this counts as a finding.
    :param predictions: CSV: the image index columns, prediction, score, p_<class>, image_mean/std/min/max.
    :param summary: JSON: images, findings (count), finding_max (highest probability of ``finding``), model_name,
        model_version; a gate condition such as ``findings > 0`` reads it.
    """
    import numpy as np

    from claimed_airflow.components.predict.images import score_images
    from claimed_airflow.components.train.image_classifier import load_gray_images
    from claimed_airflow.core.tables import write_table

    if batch_size < 1:
        raise ClaimedError(f"batch_size: must be at least 1, got {batch_size}")
    if not 0 <= threshold <= 1:
        raise ClaimedError(f"threshold: must be between 0 and 1, got {threshold}")
    resolved = resolve(model, models_root)
    classes = resolved["classes"]
    if finding and finding not in classes:
        raise ClaimedError(f"finding: {finding!r} is not a class of {resolved['model']} ({', '.join(classes)})")
    pixels, _, _, index = load_gray_images(images, resolved["image_size"], classes, unlabelled=True)
    with tempfile.TemporaryDirectory(prefix="claimed-model-") as scratch:
        predictor = Predictor(resolved, models_root, scratch)
        table, probabilities = score_images(predictor.predict, pixels, index, classes, batch_size, "predict.deployed")
    flat = pixels.reshape(len(pixels), -1).astype(np.float64)
    table["image_mean"], table["image_std"] = flat.mean(axis=1), flat.std(axis=1)
    table["image_min"], table["image_max"] = flat.min(axis=1), flat.max(axis=1)
    table["model_name"], table["model_version"] = resolved["model_name"], resolved["model_version"]
    write_table(table, predictions)
    scores = probabilities[:, classes.index(finding)] if finding else np.zeros(len(table))
    values = {
        "images": len(table),
        "finding": finding,
        "findings": int((scores >= threshold).sum()) if finding else 0,
        "finding_max": float(scores.max()) if finding else 0.0,
        "threshold": threshold,
        "model_name": resolved["model_name"],
        "model_version": resolved["model_version"],
    }
    Path(summary).write_text(json.dumps(values, indent=2))
    log.info("%s: %d image(s) scored, %d finding(s)", resolved["model"], len(table), values["findings"])
    return {
        "predicted": len(table),
        "findings": values["findings"],
        "model": resolved["model"],
        "model_name": resolved["model_name"],
        "model_version": resolved["model_version"],
        "model_label": f"{resolved['model_name']} v{resolved['model_version']}",
    }
