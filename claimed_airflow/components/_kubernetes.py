"""Kubernetes custom objects (InferenceService, TFJob, Katib Experiment) for the components that manage them.

One way in: the official ``kubernetes`` client, configured from an Airflow Kubernetes connection
through the cncf.kubernetes provider's ``KubernetesHook`` when ``conn_id`` is given, else from the
pod's service account (in cluster) or the usual kubeconfig. API errors become one-line
``ClaimedError``s; credentials are never logged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from claimed_airflow.core import waits
from claimed_airflow.core.credentials import airflow_errors, from_connection
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.storage import redact
from claimed_airflow.core.waits import WaitTimeout

__all__ = [
    "KubeApi",
    "KubeError",
    "WaitTimeout",
    "condition",
    "condition_state",
    "dns_name",
    "wait_condition",
    "watch_condition",
]


class KubeError(ClaimedError):
    """An error answer of the API server, with its HTTP ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def custom_objects_api(conn_id: str | None):
    """(CustomObjectsApi, the connection's namespace or None) from an Airflow connection, else in-cluster/kubeconfig."""
    if conn_id:
        try:
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        except ImportError:
            raise ClaimedError(
                "conn_id: a Kubernetes connection needs Airflow's cncf.kubernetes provider "
                "(pip install 'claimed-airflow[airflow,kubernetes]'); or leave conn_id empty to use kubeconfig"
            ) from None

        def read(name: str):
            hook = KubernetesHook(conn_id=name)
            return hook.custom_object_client, hook.get_namespace()

        # no environment fallback: a connection given is used, or its absence is the error (core.credentials)
        return from_connection(conn_id, read, kind="Kubernetes", hint="or leave conn_id empty to use kubeconfig")
    try:
        from kubernetes import client, config
    except ImportError:
        raise ClaimedError("conn_id: the kubernetes client is not installed (pip install kubernetes)") from None
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise ClaimedError(f"conn_id: none given and no kubeconfig or in-cluster configuration: {exc}") from None
    return client.CustomObjectsApi(), None


class KubeApi:
    """Namespaced custom objects of one API (``group/version``, e.g. ``kubeflow.org/v1``)."""

    def __init__(self, api_version: str, conn_id: str | None = None):
        self.group, _, self.version = api_version.partition("/")
        self.client, self.default_namespace = custom_objects_api(conn_id)

    def create(self, namespace: str, plural: str, body: dict) -> dict:
        return self._call("create", plural, self.client.create_namespaced_custom_object, namespace, plural, body)

    def get(self, namespace: str, plural: str, name: str, missing: bool = False) -> dict | None:
        """The object, or None when ``missing`` and it does not exist."""
        try:
            return self._call("get", plural, self.client.get_namespaced_custom_object, namespace, plural, name)
        except KubeError as exc:
            if missing and exc.status == 404:
                return None
            raise

    def replace(self, namespace: str, plural: str, name: str, body: dict) -> dict:
        method = self.client.replace_namespaced_custom_object
        return self._call("replace", plural, method, namespace, plural, name, body)

    def delete(self, namespace: str, plural: str, name: str) -> dict:
        return self._call("delete", plural, self.client.delete_namespaced_custom_object, namespace, plural, name)

    def list(self, namespace: str, plural: str, label_selector: str = "") -> dict:
        method = self.client.list_namespaced_custom_object
        return self._call("list", plural, method, namespace, plural, label_selector=label_selector)

    def _call(self, verb: str, plural: str, method, namespace: str, *args, **kwargs) -> dict:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return method(self.group, self.version, namespace, *args, **kwargs)
        except ApiException as exc:
            where = f"{verb} {plural}.{self.group} in {namespace}"
            if exc.status in (401, 403):
                raise KubeError(
                    exc.status, f"conn_id: the Kubernetes API refused to {where} ({exc.status}: {_message(exc)})"
                ) from None
            raise KubeError(exc.status, f"{where}: HTTP {exc.status} {_message(exc)}") from None
        except HTTPError as exc:
            raise ClaimedError(f"conn_id: cannot reach the Kubernetes API: {exc}") from None


def _message(exc) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def condition(obj: dict, *types: str) -> str | None:
    """The first of ``types`` that is a True condition of ``obj.status.conditions``."""
    for item in obj.get("status", {}).get("conditions", []) or []:
        if item.get("type") in types and str(item.get("status")) == "True":
            return item["type"]
    return None


def condition_state(
    api_version: str, conn_id: str | None, namespace: str, plural: str, name: str, types: list[str]
) -> tuple[str | None, dict]:
    """One status check (a :class:`~claimed_airflow.core.waits.Poll` check): the first True condition of ``types``."""
    obj = KubeApi(api_version, conn_id).get(namespace, plural, name)
    return condition(obj, *types), obj


@contextlib.asynccontextmanager
async def watch_condition(
    api_version: str, conn_id: str | None, namespace: str, plural: str, name: str, types: list[str]
) -> AsyncIterator[Callable[[], Awaitable[tuple[str | None, dict]]]]:
    """:func:`condition_state` in the triggerer: one asynchronous client (kubernetes_asyncio) for every check;
    without kubernetes_asyncio (the kube-client extra alone) the blocking check, in a thread."""
    try:
        from aiohttp import ClientError
        from kubernetes_asyncio.client import CustomObjectsApi
        from kubernetes_asyncio.client.exceptions import ApiException
    except ImportError:
        import asyncio

        yield lambda: asyncio.to_thread(condition_state, api_version, conn_id, namespace, plural, name, types)
        return

    group, _, version = api_version.partition("/")
    async with async_api_client(conn_id) as api_client:
        api = CustomObjectsApi(api_client)

        async def check() -> tuple[str | None, dict]:
            try:
                obj = await api.get_namespaced_custom_object(group, version, namespace, plural, name)
            except ApiException as exc:
                where = f"get {plural}.{group} in {namespace}"
                if exc.status in (401, 403):
                    message = f"conn_id: the Kubernetes API refused to {where} ({exc.status}: {_message(exc)})"
                    raise KubeError(exc.status, message) from None
                raise KubeError(exc.status, f"{where}: HTTP {exc.status} {_message(exc)}") from None
            except ClientError as exc:
                raise ClaimedError(f"conn_id: cannot reach the Kubernetes API: {exc}") from None
            return condition(obj, *types), obj

        yield check


@contextlib.asynccontextmanager
async def async_api_client(conn_id: str | None) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ApiClient configured as :func:`custom_objects_api` configures the blocking one: from
    the Airflow connection (the cncf.kubernetes provider's AsyncKubernetesHook), else in-cluster or kubeconfig."""
    from kubernetes_asyncio import client, config

    if not conn_id:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            try:
                await config.load_kube_config(client_configuration=configuration)
            except (config.ConfigException, OSError) as exc:
                message = f"conn_id: none given and no kubeconfig or in-cluster configuration: {exc}"
                raise ClaimedError(message) from None
        async with client.ApiClient(configuration) as api_client:
            yield api_client
        return
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

    hook = AsyncKubernetesHook(conn_id=conn_id)
    async with contextlib.AsyncExitStack() as stack:
        try:  # no environment fallback: the connection given is used, or its absence is the error
            api_client = await stack.enter_async_context(hook.get_conn())
        except airflow_errors():
            raise ClaimedError(f"conn_id: Airflow connection {conn_id!r} is not defined") from None
        except Exception as exc:
            raise ClaimedError(redact(f"conn_id: cannot use Kubernetes connection {conn_id!r}: {exc}")) from None
        yield api_client


def wait_condition(
    api: KubeApi,
    conn_id: str | None,
    namespace: str,
    plural: str,
    name: str,
    types: tuple[str, ...],
    timeout: float,
    interval: float = 5.0,
) -> tuple[str, dict]:
    """Wait until one of the conditions ``types`` of the object is True (here, or in Airflow's triggerer)."""
    kwargs = {
        "api_version": f"{api.group}/{api.version}",
        "conn_id": conn_id,
        "namespace": namespace,
        "plural": plural,
        "name": name,
        "types": list(types),
    }
    # condition_state, or watch_condition in the triggerer (waits.CHECKS)
    return waits.wait(waits.Poll("kubernetes.condition", kwargs, timeout, interval, what=f"{plural}/{name}"))


def dns_name(text: str, limit: int = 50) -> str:
    """A Kubernetes object name (RFC 1123 label) derived from ``text``."""
    name = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in name:
        name = name.replace("--", "-")
    return name[:limit].strip("-") or "claimed"
