"""Connection to a DICOMweb service (QIDO-RS, WADO-RS, STOW-RS): base URL, basic auth or bearer token, TLS."""

from __future__ import annotations

from typing import Any

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.hooks import with_connection_form
from claimed_airflow.pacs.servers import WebServer, flag, secret
from claimed_airflow.version_compat import BaseHook


@with_connection_form
class DicomWebHook(BaseHook):
    """A PACS's DICOMweb service, for input.dicomweb and output.dicomweb.

    Connection fields: **Base URL** (host, e.g. ``https://pacs.example.org/dicom-web``), **Username** and
    **Password** (basic auth), or the password alone as a **bearer token**, and the extras
    ``auth_type`` (``basic`` or ``bearer``; default basic with a username, else bearer), ``verify``
    (true/false or a CA bundle path), ``timeout`` (seconds), ``allow_http`` (send the credentials over
    plain http; default no) and ``allowed_hosts`` (on ``dicomweb_default``: the hosts a
    ``dicomweb+https://host/...`` URI may name). The secret is stripped of surrounding whitespace and
    refused if it still holds any. The password or token is registered with
    Airflow's secrets masker and stays inside the HTTP session: never logged, returned or put in XCom.

    :param dicomweb_conn_id: Airflow connection id (type ``dicomweb``).
    """

    conn_name_attr = "dicomweb_conn_id"
    default_conn_name = "dicomweb_default"
    conn_type = "dicomweb"
    hook_name = "DICOMweb (PACS)"

    def __init__(self, dicomweb_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dicomweb_conn_id = dicomweb_conn_id

    def server(self):
        """The service as a :class:`claimed_airflow.pacs.servers.WebServer` (URL, auth, verification)."""
        from claimed_airflow.version_compat import mask_secret

        name = self.dicomweb_conn_id
        conn = self.get_connection(name)
        extra = conn.extra_dejson
        if not conn.host:
            raise ClaimedError(f"conn_id: connection {name!r} has no base URL (host)")
        url = conn.host if "://" in conn.host else f"https://{conn.host}"
        auth_type = (extra.get("auth_type") or ("basic" if conn.login else "bearer")).lower()
        if auth_type not in ("basic", "bearer"):
            raise ClaimedError(f"conn_id: connection {name!r}: auth_type must be basic or bearer, not {auth_type!r}")
        server = WebServer(url=url.rstrip("/"), verify=flag(extra.get("verify")))
        server.allow_http = flag(extra.get("allow_http", False)) is True
        if extra.get("timeout"):
            server.timeout = float(extra["timeout"])
        if extra.get("max_instance_mb"):
            server.max_instance_bytes = int(float(extra["max_instance_mb"]) * (1 << 20))
        password = secret(conn.password, f"conn_id: connection {name!r}: password")
        if password:
            mask_secret(password)
            if auth_type == "bearer":
                server.headers["Authorization"] = f"Bearer {password}"
            else:
                server.auth = (secret(conn.login, f"conn_id: connection {name!r}: login") or "", password)
        elif conn.login:
            raise ClaimedError(f"conn_id: connection {name!r} has a username but no password")
        return server

    def get_conn(self):
        """A ``dicomweb_client.DICOMwebClient`` of the connection."""
        return self.server().client()

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: one QIDO-RS search for a single study."""
        try:
            server = self.server()
            server.client().search_for_studies(limit=1)
            return True, f"QIDO-RS answered at {server.url}"
        except ClaimedError as exc:  # our messages name the server, never a secret
            return False, str(exc)
        except Exception as exc:  # a client's text may hold a header value: its type only
            return False, f"{type(exc).__name__} (details withheld: they may hold the credentials)"
