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
from typing import TYPE_CHECKING, Any

from claimed_airflow import __version__
from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.settings import json_setting, list_setting, setting

if TYPE_CHECKING:
    from claimed_airflow.core.options import KubernetesOptions

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
RUN_AS = 1000  # the non-root user of the component images (docker/)
TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")


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
class SecretRef:
    """A Kubernetes secret given to the pod: one key as ``env``, every key as environment, or a volume."""

    secret: str
    env: str | None = None
    key: str | None = None
    mount: str | None = None

    @property
    def kind(self) -> str:
        """``env`` (one key), ``env_all`` (every key, envFrom) or ``volume`` (files under ``mount``)."""
        return "volume" if self.mount else "env" if self.env else "env_all"


def parse_secrets(entries: list[dict] | None, where: str = "secrets") -> tuple[SecretRef, ...]:
    """``{"env": VAR, "secret": name, "key": key}``, ``{"secret": name}`` or ``{"secret": name, "mount": path}``."""
    found = []
    for entry in entries or []:
        if not isinstance(entry, dict) or "secret" not in entry:
            raise ParameterError(f"{where}: expected {{'secret': name, ...}}, got {entry!r}")
        unknown = set(entry) - {"secret", "env", "key", "mount"}
        if unknown:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in {entry!r}")
        if "env" in entry and "key" not in entry:
            raise ParameterError(f"{where}: {entry!r} names an env variable but no key of the secret")
        if "env" in entry and "mount" in entry:
            raise ParameterError(f"{where}: {entry!r} gives both env and mount; give one")
        found.append(SecretRef(entry["secret"], entry.get("env"), entry.get("key"), entry.get("mount")))
    return tuple(found)


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


def check_tolerations(items: Any, where: str = "tolerations") -> tuple[dict[str, Any], ...]:
    """Tolerations as dicts with the keys of a Kubernetes toleration; ``where`` names them in errors."""
    if not isinstance(items, (list, tuple)):
        raise ParameterError(f"{where}: expected a list of dicts, got {items!r}")
    checked = []
    for item in items:
        if not isinstance(item, dict) or set(item) - set(TOLERATION_KEYS):
            raise ParameterError(f"{where}: {item!r} is not a toleration (keys: {', '.join(TOLERATION_KEYS)})")
        checked.append(dict(item))
    return tuple(checked)


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
