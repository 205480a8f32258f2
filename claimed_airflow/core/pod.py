"""The pod of a task, described once: what the kubernetes engine's pod and an exported KFP step both run.

:func:`task_pod` computes a :class:`TaskPod` from the task's kubernetes options, the component spec and the
claimed settings (:mod:`claimed_airflow.core.settings`). The kubernetes
engine renders it as a KubernetesPodOperator, the KFP export as a step's container and kfp-kubernetes
platform config, and ``deploy.kserve`` / ``train.tfjob`` use the same hardened security contexts and
resource rule. Nothing here imports Airflow or Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from claimed_airflow import __version__
from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.options import KubernetesOptions, SecretRef, check_tolerations, parse_secrets
from claimed_airflow.core.settings import json_setting, list_setting, setting

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
RUN_AS = 1000  # the non-root user of the component images (docker/)


def pod_security_context() -> dict[str, Any]:
    """Pod-level security context of every pod we create (Kubernetes API field names)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level security context: non-root, no privilege escalation, no capabilities, seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resource_requirements(cpu: str, memory: str, gpus: int = 0) -> dict[str, dict[str, str]]:
    """Requests of cpu and memory; limits of memory (a pod never takes more than it asked for) and GPUs.

    No CPU limit: CPU is throttled, not killed, and a limit only slows a step that could use idle cores.
    """
    limits = {"memory": str(memory)}
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    return {"requests": {"cpu": str(cpu), "memory": str(memory)}, "limits": limits}


@dataclass(frozen=True)
class TaskPod:
    """Everything a task's pod is made of, whichever engine creates it."""

    image: str
    cpu: str
    memory: str
    gpus: int
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    image_pull_secrets: tuple[str, ...] = ()
    timeout_s: int | None = None  # activeDeadlineSeconds (Airflow's execution_timeout)
    retries: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, str]]:
        return resource_requirements(self.cpu, self.memory, self.gpus)

    @property
    def pod_security_context(self) -> dict[str, Any]:
        return pod_security_context()

    @property
    def container_security_context(self) -> dict[str, Any]:
        return container_security_context()


def image_for(image: str | None, spec, gpus: int) -> str:
    """``image``, else setting ``gpu_image`` (GPU tasks) / ``image``, else ``<spec image>:<version>[-gpu]``."""
    if image:
        return image
    configured = (setting("gpu_image") if gpus else None) or setting("image")
    if configured:
        return str(configured)
    return versioned(spec.image, gpus)


def versioned(image: str, gpus: int = 0) -> str:
    """``image`` tagged ``:<library version>`` (``-gpu`` for GPU pods) unless it has a tag or digest: never latest."""
    last = image.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return image
    return f"{image}:{__version__}{'-gpu' if gpus else ''}"


def task_pod(options: KubernetesOptions, spec, *, retries: int = 0, timeout: timedelta | None = None) -> TaskPod:
    """The pod running ``spec`` with the task's kubernetes ``options`` (unset ones from the component and the
    claimed settings, read now), its ``retries`` and ``timeout`` (Airflow's execution_timeout)."""
    cpu = options.cpu if options.cpu is not None else str(spec.resources.cpu)
    memory = options.memory if options.memory is not None else str(spec.resources.memory)
    gpus = options.gpus if options.gpus is not None else int(spec.resources.gpus)
    image = image_for(options.image, spec, gpus)
    node_selector = options.node_selector
    if node_selector is None:
        node_selector = json_setting("gpu_node_selector" if gpus else "node_selector", None)
    if not isinstance(node_selector or {}, dict):
        raise ParameterError(f"node_selector: expected a JSON object, got {node_selector!r}")
    tolerations = options.tolerations
    if tolerations is None:
        default = [GPU_TOLERATION] if gpus else None
        tolerations = json_setting("gpu_tolerations" if gpus else "tolerations", default)
    pull_secrets = options.image_pull_secrets
    if pull_secrets is None:
        pull_secrets = list_setting("image_pull_secrets")
    return TaskPod(
        image=image,
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        env={"CLAIMED_IMAGE": image, **(options.env_vars or {})},
        secrets=parse_secrets(list(options.secrets or [])),
        tolerations=check_tolerations(tolerations or []),
        node_selector={str(k): str(v) for k, v in (node_selector or {}).items()},
        image_pull_secrets=tuple(pull_secrets),
        timeout_s=max(1, int(timeout.total_seconds())) if timeout is not None else None,
        retries=int(retries or 0),
        labels={"app.kubernetes.io/name": "claimed-airflow", "claimed-component": spec.name},
        annotations={"claimed-airflow/version": __version__},
    )
