"""Engine ``kubernetes``: run the component in its own pod through the cncf.kubernetes KubernetesPodOperator.

The pod runs the component image with the CLI entrypoint,
``claimed-airflow run <component> --param=value ... --output-root <root> --dag-id ... --xcom-file
/airflow/xcom/return.json`` (and ``--cache`` when the task caches: the pod looks up the cache index
under the output root), so a pod does exactly what ``claimed-airflow run`` does on a laptop. The
result JSON (output URIs and small values) comes back as XCom through the operator's sidecar.
"""

from __future__ import annotations

import logging
from typing import Any

from claimed_airflow import __version__
from claimed_airflow.core import commandline, storage

log = logging.getLogger(__name__)

XCOM_FILE = "/airflow/xcom/return.json"
COMMAND = ["claimed-airflow"]
GPU_RESOURCE = "nvidia.com/gpu"
RUN_AS = 1000  # the non-root user of the component images (docker/)
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def image_for(operator, spec, gpus: int) -> str:
    """Operator ``image``, else setting ``gpu_image``/``image``, else ``<spec image>:<version>[-gpu]``."""
    from claimed_airflow.operators.engines import setting

    if operator.image:
        return operator.image
    configured = (setting("gpu_image") if gpus else None) or setting("image")
    if configured:
        return configured
    last = spec.image.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return spec.image
    return f"{spec.image}:{__version__}{'-gpu' if gpus else ''}"


def resources(operator, spec) -> tuple[dict[str, str], dict[str, str], int]:
    """(requests, limits, gpus): the component's defaults overridden by the operator's cpu/memory/gpus."""
    cpu = str(operator.cpu if operator.cpu is not None else spec.resources.cpu)
    memory = str(operator.memory if operator.memory is not None else spec.resources.memory)
    gpus = int(operator.gpus if operator.gpus is not None else spec.resources.gpus)
    requests = {"cpu": cpu, "memory": memory}
    limits = {"memory": memory}
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    return requests, limits, gpus


def secrets(entries: list[dict] | None) -> list:
    """Kubernetes secrets given as dicts: ``{"env": VAR, "secret": name, "key": key}`` (one key as an
    environment variable), ``{"secret": name}`` (every key as a variable) or ``{"secret": name,
    "mount": path}`` (a volume)."""
    from airflow.providers.cncf.kubernetes.secret import Secret

    found = []
    for entry in entries or []:
        if not isinstance(entry, dict) or "secret" not in entry:
            raise ValueError(f"secrets: expected {{'secret': name, ...}}, got {entry!r}")
        unknown = set(entry) - {"secret", "env", "key", "mount"}
        if unknown:
            raise ValueError(f"secrets: unknown key(s) {', '.join(sorted(unknown))} in {entry!r}")
        if "mount" in entry:
            found.append(Secret("volume", entry["mount"], entry["secret"], entry.get("key")))
        elif "env" in entry:
            if "key" not in entry:
                raise ValueError(f"secrets: {entry!r} names an env variable but no key of the secret")
            found.append(Secret("env", entry["env"], entry["secret"], entry["key"]))
        else:
            found.append(Secret("env", None, entry["secret"]))
    return found


def pod_operator(operator, context: Any, spec, root: str, scope):
    """The KubernetesPodOperator that runs this task's component (built, not executed)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    from claimed_airflow.operators.engines import json_setting, setting

    requests, limits, gpus = resources(operator, spec)
    image = image_for(operator, spec, gpus)
    node_selector = operator.node_selector
    if node_selector is None:
        node_selector = json_setting("gpu_node_selector" if gpus else "node_selector", None)
    tolerations = operator.tolerations
    if tolerations is None:
        tolerations = json_setting("gpu_tolerations" if gpus else "tolerations", [GPU_TOLERATION] if gpus else None)
    pull_secrets = operator.image_pull_secrets
    if pull_secrets is None:
        configured = setting("image_pull_secrets")
        pull_secrets = [s.strip() for s in configured.split(",") if s.strip()] if configured else []
    if storage.is_local(root):
        log.warning(
            "output_root %s is a local path: the pod writes there inside its own filesystem. Use shared "
            "storage (s3://..., or a volume mounted at the same path through pod_options).",
            root,
        )
    env = {"CLAIMED_IMAGE": image, **(operator.env_vars or {})}
    options: dict[str, Any] = {
        "task_id": operator.task_id,
        "namespace": operator.namespace or setting("kubernetes_namespace"),
        "kubernetes_conn_id": operator.kubernetes_conn_id,
        "image": image,
        "cmds": list(COMMAND),
        "arguments": commandline.run_args(
            spec,
            operator.component_arguments(),
            root=root,
            scope=scope,
            xcom_file=XCOM_FILE,
            cache=operator._cache_enabled(),
        ),
        "labels": {"app.kubernetes.io/name": "claimed-airflow", "claimed-component": spec.name},
        "annotations": {"claimed-airflow/version": __version__},
        "container_resources": k8s.V1ResourceRequirements(requests=requests, limits=limits),
        "node_selector": node_selector or {},
        "tolerations": [k8s.V1Toleration(**t) for t in tolerations or []],
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=s) for s in pull_secrets],
        "secrets": secrets(operator.secrets),
        "env_vars": [k8s.V1EnvVar(name=k, value=str(v)) for k, v in env.items()],
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "xcom_sidecar_container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False, run_as_non_root=True, capabilities=k8s.V1Capabilities(drop=["ALL"])
        ),
        "do_xcom_push": True,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "allow_nested_operators": True,
    }
    options.update(operator.pod_options or {})
    return KubernetesPodOperator(**options)


def execute(operator, context: Any, spec, root: str, scope) -> dict[str, Any]:
    pod = pod_operator(operator, context, spec, root, scope)
    result = pod.execute(context)
    if not isinstance(result, dict) or "manifest" not in result:
        raise RuntimeError(f"{spec.name}: the pod wrote no result to {XCOM_FILE} (got {result!r})")
    return result
