"""Credentials of components: one rule for every service a component talks to.

A component that needs credentials takes a connection id (``conn_id``) and documents environment variables
for runs without Airflow. :func:`from_connection` looks them up in one order:

1. the Airflow connection ``conn_id`` (when one is given), read by the component's ``read(conn_id)``, which
   uses a hook (Airflow is imported only now); a connection that is not defined is an error naming it, except
   the running component's own default connection (its parameter's declared default, e.g. ``dicomweb_default``
   of ``conn_id``), which is optional;
2. the component's environment variables (``environment()``; None when they are not set), when no connection
   is given, the default connection is not defined, or Airflow is not installed here (a pod or a KFP step: its
   credentials come as environment);
3. else one error naming the connection and the environment variables.

Any other failure to read the connection is one line naming it. Secrets never reach a log or an error:
messages are redacted (:func:`claimed_airflow.core.storage.redact`) and :func:`mask` registers a secret
read with Airflow's log masker.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from claimed_airflow.core.context import current
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.storage import redact

T = TypeVar("T")
log = logging.getLogger(__name__)


def airflow_errors(name: str = "AirflowNotFoundException") -> tuple[type[BaseException], ...]:
    """Airflow's exception class ``name``, every class of that name (it moved between Airflow versions:
    :func:`claimed_airflow.version_compat.exception_classes`). Raises ImportError when Airflow is not installed.
    """
    from claimed_airflow import version_compat

    return version_compat.exception_classes(name)


def mask(*secrets: str | None) -> None:
    """Register ``secrets`` with Airflow's log masker (task logs, rendered fields) when Airflow runs this process."""
    if "airflow" not in sys.modules:
        return
    from claimed_airflow.version_compat import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def from_connection(
    conn_id: str | None,
    read: Callable[[str], T],
    *,
    kind: str,
    environment: Callable[[], T | None] | None = None,
    hint: str = "",
    param: str = "conn_id",
    failure: str | None = None,
) -> T:
    """The credentials of Airflow connection ``conn_id`` (``read(conn_id)``); no ``conn_id`` (or no Airflow here):
    ``environment()``.

    ``kind`` names the service in errors (``DICOMweb``); ``hint`` says what works without a connection
    (``or set CDSAPI_URL/CDSAPI_KEY``); ``param`` is the component's parameter holding the id; ``failure``
    replaces ``use <kind> connection`` in the error of a connection that cannot be used.
    """
    if not conn_id:
        found = environment() if environment else None
        if found is None:
            raise ClaimedError(_with_hint(f"{param}: no {kind} connection given", hint))
        return found
    try:
        not_found = airflow_errors()
    except ImportError:  # a pod or a KFP step: no Airflow to read the connection, its credentials come as environment
        found = environment() if environment else None
        if found is None:
            raise ClaimedError(_with_hint(f"{param}: Airflow is needed to read connection {conn_id!r}", hint)) from None
        log.info("%s: no Airflow here to read connection %r; using the environment", param, conn_id)
        return found
    try:
        return read(conn_id)
    except ClaimedError:
        raise
    except not_found:  # a named connection never silently becomes the environment's credentials
        found = environment() if environment and _declared_default(param, conn_id) else None
        if found is None:
            raise ClaimedError(f"{param}: Airflow connection {conn_id!r} is not defined") from None
        log.info("%s: default connection %r is not defined; using the environment", param, conn_id)
        return found
    except Exception as exc:  # the hook's own errors (bad extra, unreachable server, ...): one line
        cannot = failure or f"use {kind} connection"
        raise ClaimedError(redact(f"{param}: cannot {cannot} {conn_id!r}: {exc}")) from None


def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


def _declared_default(param: str, conn_id: str) -> bool:
    """``conn_id`` is the running component's declared default of its parameter ``param`` (not merely a name
    ending in ``_default``: a connection the user names must exist)."""
    spec = current().spec
    return spec is not None and any(p.name == param and p.default == conn_id for p in spec.parameters)
