"""Create or update a KServe InferenceService and wait until it is Ready."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from claimed_airflow.core import component
from claimed_airflow.core.component import DEFAULT_IMAGE
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.pod import container_security_context, pod_security_context, resource_requirements, versioned

log = logging.getLogger("claimed_airflow")

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_REMOTE = ("s3://", "gs://", "pvc://", "hdfs://", "webhdfs://", "https://", "http://", "oci://", "hf://")


def inference_service(arguments: Mapping[str, Any], namespace: str) -> dict:
    """The ``InferenceService`` manifest (serving.kserve.io/v1beta1) of ``deploy.kserve``'s bound ``arguments``
    (``kserve.spec.bind({...})``: its parameters are the manifest's, listed once) in ``namespace``.

    ``model_format="claimed"`` runs ``claimed-airflow serve`` in the component image as a custom
    predictor: KServe's storage initializer copies ``storage_uri`` (the folder ``deploy.local``
    published, with ``model.keras``) to ``/mnt/models``, and the container answers the same Open
    Inference Protocol as the local server. Any other format (``tensorflow`` for a SavedModel, ``onnx``,
    ...) uses a KServe serving runtime through ``predictor.model``.
    """
    service = SimpleNamespace(**arguments)
    # the kubernetes engine's rule: memory and GPUs limited
    resources = resource_requirements(service.cpu, service.memory, service.gpus)
    predictor: dict = {
        "minReplicas": service.min_replicas,
        "maxReplicas": service.max_replicas,
        "securityContext": pod_security_context(),
    }
    if service.service_account:
        predictor["serviceAccountName"] = service.service_account
    if service.model_format == "claimed":
        predictor["containers"] = [
            {
                "name": "kserve-container",
                "image": versioned(service.image, service.gpus),
                "args": [
                    "claimed-airflow",
                    "serve",
                    MODEL_DIR,
                    "--host",
                    "0.0.0.0",
                    "--port",
                    "8080",
                    "--name",
                    service.service_name,
                ],
                "env": [{"name": "STORAGE_URI", "value": service.storage_uri}],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": resources,
                "securityContext": container_security_context(),
            }
        ]
    else:
        model = {
            "modelFormat": {"name": service.model_format},
            "storageUri": service.storage_uri,
            "resources": resources,
            "securityContext": container_security_context(),
        }
        model["protocolVersion"] = service.protocol_version
        if service.runtime:
            model["runtime"] = service.runtime
        predictor["model"] = model
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": service.service_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "claimed-airflow"},
        },
        "spec": {"predictor": predictor},
    }


@component("deploy")
def kserve(
    storage_uri: str,
    service_name: str,
    namespace: str | None = None,
    model_format: str = "claimed",
    runtime: str | None = None,
    protocol_version: str = "v2",
    image: str = DEFAULT_IMAGE,
    service_account: str | None = None,
    cpu: str = "1",
    memory: str = "2Gi",
    gpus: int = 0,
    min_replicas: int = 1,
    max_replicas: int = 1,
    ready_timeout: int = 600,
    poll_interval: float = 5.0,
    conn_id: str | None = None,
) -> dict:
    """Create or update a KServe ``InferenceService`` for a published model and wait until it is Ready.

    Talks to the Kubernetes API through the cncf.kubernetes provider's ``KubernetesHook`` (Airflow
    connection ``conn_id``); without a connection (or without Airflow) the usual kubeconfig or
    in-cluster configuration is used. An existing service of the same name is replaced (its
    ``resourceVersion`` is kept), so re-running the task rolls out the new model.

    :param storage_uri: Model location the cluster can read (``s3://``, ``gs://``, ``pvc://``, ...), e.g. the
        ``model_uri`` of ``deploy.local`` with an object-storage ``models_root``.
    :param service_name: Name of the InferenceService (lowercase letters, digits and ``-``).
    :param namespace: Kubernetes namespace of the InferenceService; default the connection's
        namespace, else ``default``.
    :param model_format: ``claimed`` (default: ``claimed-airflow serve`` as a custom predictor, reads
        ``model.keras``) or a KServe model format such as ``tensorflow`` (SavedModel) or ``onnx``.
    :param runtime: KServe ServingRuntime to use with a model format (default: KServe picks one).
    :param protocol_version: Inference protocol of a serving runtime: ``v1`` or ``v2``.
    :param image: Container image of the ``claimed`` predictor.
    :param service_account: Service account with the credentials to read ``storage_uri``.
    :param cpu: CPU request of each predictor replica.
    :param memory: Memory request and limit of each predictor replica.
    :param gpus: NVIDIA GPUs per predictor replica (``nvidia.com/gpu`` limit).
    :param min_replicas: Minimum number of predictor replicas (0 allows scale to zero).
    :param max_replicas: Maximum number of predictor replicas.
    :param ready_timeout: Seconds to wait for the ``Ready`` condition before failing.
    :param poll_interval: Seconds between two status checks.
    :param conn_id: Airflow Kubernetes connection (cncf.kubernetes provider); none: kubeconfig/in-cluster.
    """
    arguments = dict(locals())  # the parameters as bound: the manifest is made of them
    if not _DNS_LABEL.match(service_name):
        raise ClaimedError(
            f"service_name: {service_name!r} is not a valid Kubernetes name "
            "(lowercase letters, digits and '-', starting with a letter, at most 63 characters)"
        )
    if not storage_uri.startswith(_REMOTE):
        raise ClaimedError(
            f"storage_uri: {storage_uri!r} is not a location a cluster can read; "
            f"use one of {', '.join(_REMOTE)} (e.g. deploy.local with an s3:// models_root)"
        )
    if protocol_version not in ("v1", "v2"):
        raise ClaimedError(f"protocol_version: expected 'v1' or 'v2', got {protocol_version!r}")
    if gpus < 0 or min_replicas < 0 or max_replicas < max(min_replicas, 1):
        raise ClaimedError(
            "gpus/min_replicas/max_replicas: need gpus >= 0 and 0 <= min_replicas <= max_replicas >= 1, "
            f"got {gpus}/{min_replicas}/{max_replicas}"
        )
    from claimed_airflow.components._kubernetes import KubeApi, KubeError, WaitTimeout, wait_condition
    from claimed_airflow.core import waits

    api = KubeApi(f"{GROUP}/{VERSION}", conn_id)
    namespace = namespace or api.default_namespace or "default"
    body = inference_service(arguments, namespace)
    where = f"InferenceService {namespace}/{service_name}"

    def apply() -> str:
        try:
            existing = api.get(namespace, PLURAL, service_name, missing=True)
            if existing is None:
                log.info("creating %s (storageUri %s)", where, storage_uri)
                api.create(namespace, PLURAL, body)
                return "created"
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            log.info("updating %s (storageUri %s)", where, storage_uri)
            api.replace(namespace, PLURAL, service_name, body)
            return "updated"
        except KubeError as exc:
            if exc.status == 404:  # the inferenceservices resource itself is unknown
                raise ClaimedError(f"{where}: {exc}; is KServe installed in the cluster?") from None
            raise

    action = waits.once("apply", apply)
    try:
        _, obj = wait_condition(api, conn_id, namespace, PLURAL, service_name, ("Ready",), ready_timeout, poll_interval)
    except WaitTimeout as exc:
        ready = _ready(exc.last)
        last = "no status yet"
        if ready:
            last = f"Ready={ready.get('status')}: {ready.get('reason') or ''} {ready.get('message') or ''}".strip()
        raise ClaimedError(
            f"ready_timeout: {where} was not Ready after {ready_timeout:g} s (last status: {last})"
        ) from None
    status = obj.get("status") or {}
    url = status.get("url") or ""
    log.info("%s is Ready at %s", where, url)
    return {"url": url, "service_name": service_name, "namespace": namespace, "action": action}


def _ready(obj: dict) -> dict | None:
    """The Ready condition of an InferenceService, if it has one."""
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
