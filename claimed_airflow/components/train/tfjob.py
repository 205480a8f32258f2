"""Distributed training: a Kubeflow Training Operator job (TFJob or PyTorchJob) running a training component."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Literal

from claimed_airflow.core import OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.pod import (
    GPU_TOLERATION,
    container_security_context,
    pod_security_context,
    resource_requirements,
    versioned,
)

log = logging.getLogger("claimed_airflow")
API = "kubeflow.org/v1"
KINDS = {  # kind -> (plural, replica specs key, chief replica type, container name the operator requires)
    "TFJob": ("tfjobs", "tfReplicaSpecs", "Chief", "tensorflow"),
    "PyTorchJob": ("pytorchjobs", "pytorchReplicaSpecs", "Master", "pytorch"),
}
REPLICA_ENV = "CLAIMED_REPLICA"


@component("train")
def tfjob(
    trainer: str,
    job_root: str,
    fixed: dict | None = None,
    kind: Literal["TFJob", "PyTorchJob"] = "TFJob",
    workers: int = 2,
    gpus_per_worker: int | None = None,
    image: str | None = None,
    job_name: str | None = None,
    job_namespace: str = "kubeflow",
    job_node_selector: dict | None = None,
    conn_id: str | None = None,
    timeout: float = 86400.0,
    poll_interval: float = 15.0,
    delete_on_timeout: bool = True,
    job: OutputPath = "job.json",
) -> dict:
    """Run a training component on N workers with GPUs as a Kubeflow TFJob or PyTorchJob and wait for it.

    Every replica runs the same ``claimed-airflow run <trainer>`` entrypoint in the component image; the
    Training Operator sets ``TF_CONFIG`` (TFJob) or ``MASTER_ADDR``/``RANK``/``WORLD_SIZE`` (PyTorchJob),
    which the trainer's distribution strategy reads. Each replica writes its outputs under
    ``<job_root>/<job name>/<job name>/<pod name>/``; the chief's (TFJob ``Chief``, PyTorchJob
    ``Master``) are the result. Waits for Succeeded or Failed with a timeout; a failed job or a
    timeout fails the task with the operator's message.

    :param trainer: Training component (name such as train.mobilenet_v2, or module:function).
    :param job_root: Root URI shared by the replicas for their outputs, e.g. s3://bucket/training.
    :param fixed: Arguments of the trainer (inputs as shared URIs, hyperparameters), as a JSON object.
    :param kind: TFJob (TensorFlow/Keras trainers) or PyTorchJob (PyTorch trainers).
    :param workers: Number of replicas in total (one chief plus workers - 1).
    :param gpus_per_worker: GPUs of each replica (default: the trainer's own GPU count).
    :param image: Container image of the replicas (default: the trainer's image).
    :param job_name: Name of the job (default: the trainer's name with a random suffix); give a fixed
        name (e.g. from the run id) to re-attach to the same job when the task is retried.
    :param job_namespace: Kubernetes namespace of the job.
    :param job_node_selector: Node labels the replicas must run on (JSON object), e.g. a GPU type.
    :param conn_id: Airflow Kubernetes connection (cncf.kubernetes provider); none: in-cluster or kubeconfig.
    :param timeout: Seconds to wait for the job to finish.
    :param poll_interval: Seconds between status checks.
    :param delete_on_timeout: Delete the job (and free its GPUs) when it times out.
    :param job: The job manifest that was submitted (JSON, valid for kubectl apply).
    """
    from claimed_airflow.components._kubernetes import KubeApi, KubeError, dns_name, wait_condition
    from claimed_airflow.core import registry, waits

    spec = registry.get(trainer)
    namespace = job_namespace
    if workers < 1:
        raise ClaimedError(f"workers: expected at least 1, got {workers}")
    if "://" not in job_root or job_root.startswith("file://"):
        log.warning("job_root %s is not shared storage; only a shared volume mounted at that path works", job_root)
    # a random suffix is drawn once per task try (kept when a deferred task resumes)
    name = (
        dns_name(job_name)
        if job_name
        else waits.once("name", lambda: dns_name(f"{spec.name}-{uuid.uuid4().hex[:6]}", limit=40))
    )
    gpus = spec.resources.gpus if gpus_per_worker is None else gpus_per_worker
    manifest = job_manifest(
        spec,
        trainer,
        name=name,
        namespace=namespace,
        kind=kind,
        workers=workers,
        gpus=gpus,
        image=image or versioned(spec.image, gpus),
        job_root=job_root,
        fixed=fixed or {},
        node_selector=job_node_selector or {},
    )
    Path(job).write_text(json.dumps(manifest, indent=2))
    plural, _, chief, _ = KINDS[kind]
    api = KubeApi(API, conn_id)

    def submit() -> str:
        try:
            api.create(namespace, plural, manifest)
            log.info("created %s %s/%s with %d replica(s)", kind, namespace, name, workers)
            return "created"
        except KubeError as exc:
            if exc.status != 409:
                raise ClaimedError(f"job_namespace: cannot create {kind} {name} in {namespace}: {exc}") from None
            log.info("%s %s/%s exists already; waiting for it", kind, namespace, name)
            return "attached"

    waits.once("submit", submit)
    try:
        state, obj = wait_condition(
            api, conn_id, namespace, plural, name, ("Succeeded", "Failed"), timeout, poll_interval
        )
    except ClaimedError as exc:
        if delete_on_timeout and str(exc).startswith("timeout:"):
            api.delete(namespace, plural, name)
            raise ClaimedError(f"{exc}; the {kind} was deleted") from None
        raise
    if state == "Failed":
        message = next((c.get("message", "") for c in obj["status"]["conditions"] if c["type"] == "Failed"), "")
        raise ClaimedError(f"trainer: {kind} {namespace}/{name} failed: {message}")
    from claimed_airflow.core import storage

    chief_dir = storage.join(job_root, name, name, f"{name}-{chief.lower()}-0")
    outputs = {o.name: storage.join(chief_dir, str(o.default)) for o in spec.outputs}
    model = outputs.get("model") or next(iter(outputs.values()), chief_dir)
    return {"model": model, "outputs": outputs, "job_name": name, "state": state}


def job_manifest(spec, trainer, *, name, namespace, kind, workers, gpus, image, job_root, fixed, node_selector):
    """The TFJob/PyTorchJob whose replicas run ``claimed-airflow run <trainer>``; outputs per pod name."""
    _, replica_key, chief, container_name = KINDS[kind]
    command = [
        "claimed-airflow",
        "run",
        trainer,
        "--output-root",
        job_root,
        "--dag-id",
        name,
        "--run-id",
        name,
        "--task-id",
        f"$({REPLICA_ENV})",
    ]
    for key, value in fixed.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    resources = resource_requirements(spec.resources.cpu, spec.resources.memory, gpus)
    pod = {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": {
            "containers": [
                {
                    "name": container_name,
                    "image": image,
                    "command": command,
                    "env": [{"name": REPLICA_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": resources,
                    "securityContext": container_security_context(),
                }
            ],
            "securityContext": pod_security_context(),
            **({"nodeSelector": node_selector} if node_selector else {}),
            **({"tolerations": [dict(GPU_TOLERATION)]} if gpus else {}),
        },
    }
    replicas = {chief: {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}}
    if workers > 1:
        replicas["Worker"] = {"replicas": workers - 1, "restartPolicy": "OnFailure", "template": pod}
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "claimed-airflow"},
        },
        "spec": {"runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3}, replica_key: replicas},
    }
