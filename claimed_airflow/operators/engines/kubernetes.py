"""Engine ``kubernetes``: run the component in its own pod through the cncf.kubernetes KubernetesPodOperator.

The pod runs the component image with the CLI entrypoint,
``claimed-airflow run <component> --param=value ... --output-root <root> --dag-id ... --xcom-file
/airflow/xcom/return.json`` (and ``--cache`` when the task caches: the pod looks up the cache index
under the output root), so a pod does exactly what ``claimed-airflow run`` does on a laptop. The
result JSON (output URIs and small values) comes back as XCom through the operator's sidecar.

The pod runner is the provider's KubernetesPodOperator, built when the task runs: its pod lifecycle (create,
wait for start, stream logs, read the XCom sidecar, clean up, delete on kill) and its deferral to the
provider's pod trigger have no hook-level equivalent, and rewriting them would copy the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from claimed_airflow.core import commandline, pod, storage
from claimed_airflow.operators.engines.protocol import Defer, EngineTask

log = logging.getLogger(__name__)

XCOM_FILE = "/airflow/xcom/return.json"
COMMAND = ["claimed-airflow"]


def secrets(refs) -> list:
    """The provider's ``Secret`` objects of the pod's :class:`~claimed_airflow.core.pod.SecretRef` list."""
    from airflow.providers.cncf.kubernetes.secret import Secret

    rendered = []
    for ref in refs:
        if ref.kind == "volume":
            rendered.append(Secret("volume", ref.mount, ref.secret, ref.key))
        elif ref.kind == "env":
            rendered.append(Secret("env", ref.env, ref.secret, ref.key))
        else:
            rendered.append(Secret("env", None, ref.secret))
    return rendered


def model(kind: str, data: dict):
    """A kubernetes client model (``V1SecurityContext``, ...) from a dict with API (camelCase) or Python keys."""
    from kubernetes.client import models

    cls = getattr(models, kind)
    names = {**{api: attr for attr, api in cls.attribute_map.items()}, **{attr: attr for attr in cls.attribute_map}}
    values = {}
    for key, value in data.items():
        attr = names[key]
        kind_of = cls.openapi_types[attr]
        values[attr] = model(kind_of, value) if isinstance(value, dict) and hasattr(models, kind_of) else value
    return cls(**values)


def describe(task: EngineTask) -> pod.TaskPod:
    """The task's pod (image, resources, environment, secrets, scheduling, security) from the settings now."""
    return pod.task_pod(task.kubernetes, task.spec, retries=task.retries, timeout=task.timeout)


def pod_operator(task: EngineTask, context: Any):
    """The KubernetesPodOperator that runs this task's component (built, not executed)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    from claimed_airflow.core.settings import setting

    described = describe(task)
    if storage.is_local(task.root):
        log.warning(
            "output_root %s is a local path: the pod writes there inside its own filesystem. Use shared "
            "storage (s3://..., or a volume mounted at the same path through pod_options).",
            task.root,
        )
    options = task.kubernetes
    arguments: dict[str, Any] = {
        "task_id": task.task_id,
        "namespace": options.namespace or setting("kubernetes_namespace"),
        "kubernetes_conn_id": options.conn_id,
        "image": described.image,
        "cmds": list(COMMAND),
        "arguments": commandline.run_args(
            task.spec, task.arguments, root=task.root, scope=task.scope, xcom_file=XCOM_FILE, cache=task.cache
        ),
        "labels": dict(described.labels),
        "annotations": dict(described.annotations),
        "container_resources": model("V1ResourceRequirements", described.resources),
        "node_selector": dict(described.node_selector),
        "tolerations": [model("V1Toleration", t) for t in described.tolerations],
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=s) for s in described.image_pull_secrets],
        "secrets": secrets(described.secrets),
        "env_vars": [k8s.V1EnvVar(name=k, value=v) for k, v in described.env.items()],
        "security_context": model("V1PodSecurityContext", described.pod_security_context),
        "container_security_context": model("V1SecurityContext", described.container_security_context),
        "xcom_sidecar_container_security_context": model("V1SecurityContext", described.container_security_context),
        "active_deadline_seconds": described.timeout_s,
        "do_xcom_push": True,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "allow_nested_operators": True,
        "deferrable": task.deferrable,  # the triggerer watches the pod
    }
    arguments.update(options.pod_options or {})
    return KubernetesPodOperator(**arguments)


class KubernetesEngine:
    """The component runs in its own pod (KubernetesPodOperator); deferrable: the provider's trigger watches it."""

    name: ClassVar[str] = "kubernetes"
    defers: ClassVar[bool] = True

    def run(self, task: EngineTask, context: Any) -> dict[str, Any]:
        runner = task.started = pod_operator(task, context)
        return _through(task, lambda: runner.execute(context))

    def resume(self, task: EngineTask, context: Any, state: dict[str, Any], event: Any) -> dict[str, Any]:
        """The KubernetesPodOperator's own re-entry (``trigger_reentry``) reads the pod's logs and XCom."""
        method = str(state.get("method") or "")
        if not method or method.startswith("_"):
            raise RuntimeError(f"{task.spec.name}: cannot resume the pod with method {method!r}")
        runner = task.started = pod_operator(task, context)
        return _through(task, lambda: getattr(runner, method)(context, event, **(state.get("kwargs") or {})))

    def kill(self, task: EngineTask) -> None:
        """The task is killed: the KubernetesPodOperator deletes the pod it started."""
        if task.started is not None:
            task.started.on_kill()


def _through(task: EngineTask, call: Callable[[], Any]) -> dict[str, Any]:
    """``call()`` on the pod runner: its deferral as the engine's :class:`Defer`, its result checked."""
    from claimed_airflow.version_compat import TaskDeferred

    try:
        result = call()
    except TaskDeferred as deferred:
        state = {"method": deferred.method_name, "kwargs": deferred.kwargs or {}}
        raise Defer(deferred.trigger, state, deferred.timeout) from None
    return _checked(task.spec, result)


def _checked(spec, result) -> dict[str, Any]:
    if not isinstance(result, dict) or "manifest" not in result:
        raise RuntimeError(f"{spec.name}: the pod wrote no result to {XCOM_FILE} (got {result!r})")
    return result
