"""PACS servers: a DICOMweb service or a DICOM peer, from a connection (read by the caller: the hooks) or
the environment; credentials bound to their origin, secrets checked when read, hosts by allow-list."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from claimed_airflow.core.credentials import from_connection, mask
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


DEFAULT_CALLING_AET = "CLAIMED"


ATTEMPTS = 3  # tries of a request that failed to connect or got a transient answer (429, 502, 503, 504)


MAX_INSTANCE_BYTES = 2 << 30  # one instance (a connection's max_instance_mb lowers or raises it)


@dataclass
class WebServer:
    """A DICOMweb service. ``url`` carries no credentials; ``auth``/``headers`` hold them and are never shown."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify: bool | str = True
    timeout: float = 60.0
    allow_http: bool = False  # send the credentials over plain http (a connection must say so)
    max_instance_bytes: int = MAX_INSTANCE_BYTES

    @property
    def name(self) -> str:
        return self.url

    @property
    def has_credentials(self) -> bool:
        return bool(self.auth or self.headers.get("Authorization"))

    def client(self):
        import requests
        from dicomweb_client.api import DICOMwebClient

        session = requests.Session()
        session.verify = self.verify
        if self.auth:
            session.auth = self.auth
        session.headers.update(self.headers)
        logging.getLogger("dicomweb_client").setLevel(logging.WARNING)  # a line per instance at INFO
        logging.getLogger("retrying").setLevel(logging.ERROR)  # a traceback per failed try at WARNING
        client = DICOMwebClient(self.url, session=session, timeout=self.timeout)
        client.set_http_retry_params(retry=False)  # retried here, connection errors included
        return client


@dataclass
class DimseServer:
    """A DICOM (DIMSE) peer: its AE title, host and port, the AE title we call it with, and how we retrieve.

    ``retrieve``: ``get`` (C-GET) or ``move`` (C-MOVE to our own storage SCP, ``move_ae_title`` listening
    on ``move_bind``:``move_port``; the PACS must know that AE title, host and port).
    """

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = DEFAULT_CALLING_AET
    timeout: float = 30.0
    retrieve: str = "get"
    move_ae_title: str = DEFAULT_CALLING_AET
    move_port: int = 0
    move_bind: str = ""

    @property
    def name(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def flag(value) -> bool | str:
    """``verify``: true/false, or the path of a CA bundle."""
    if value is None or isinstance(value, bool):
        return True if value is None else value
    text = str(value).strip()
    if text.lower() in ("", "true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    return text


def _no_userinfo(url: str, name: str) -> None:
    if "@" in urlsplit(url).netloc:
        raise ClaimedError(f"{name}: put credentials in an Airflow connection, not in the URL")


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL: where credentials bound to it may go."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ClaimedError(f"url: {redacted(url)} has no valid port") from None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def secret(value: str | None, name: str) -> str | None:
    """A secret as read (file, environment, connection): surrounding whitespace stripped; one that still
    holds whitespace or control characters is refused without showing it (it would break the header)."""
    if value is None:
        return None
    value = value.strip()
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ClaimedError(f"{name}: the secret holds whitespace or control characters (not shown); check its source")
    return value or None


def web_server(
    conn_id: str | None,
    url: str | None = None,
    verify: bool | None = None,
    *,
    read: Callable[[str], WebServer] | None = None,
) -> WebServer:
    """The DICOMweb server of an Airflow connection, else ``url`` + environment; credentials bound to their origin.

    A connection's credentials go only to its own origin: ``url`` may change the path, not the scheme,
    host or port. Without a connection (none given, or not defined, or no Airflow here:
    :mod:`claimed_airflow.core.credentials`), ``DICOMWEB_TOKEN`` (bearer) or ``DICOMWEB_USERNAME`` and
    ``DICOMWEB_PASSWORD`` (basic) are sent only to the origin of ``DICOMWEB_URL``; TLS verification
    from ``DICOMWEB_VERIFY``. Credentials never go over plain http unless the connection says
    ``allow_http`` (environment: ``DICOMWEB_ALLOW_HTTP=true``).
    """
    if url:
        _no_userinfo(url, "url")
    if conn_id:
        server = from_connection(
            conn_id,
            lambda name: _connection_server(name, url, read),
            kind="DICOMweb",
            environment=lambda: _environment_server(url),
            hint="or give the url (credentials in DICOMWEB_TOKEN or DICOMWEB_USERNAME/DICOMWEB_PASSWORD)",
        )
    else:
        server = _environment_server(url)
        if server is None:
            raise ClaimedError("url: no DICOMweb URL (give url or conn_id, or set DICOMWEB_URL)")
    if verify is not None:
        server.verify = verify
    if not server.url.startswith(("http://", "https://")):
        raise ClaimedError(f"url: {redacted(server.url)} is not an http(s) URL of a DICOMweb service")
    if server.has_credentials and server.url.startswith("http://") and not server.allow_http:
        raise ClaimedError(f"url: no credentials over plain http to {server.url} (use https, or allow_http)")
    return server


def _connection_server(conn_id: str, url: str | None, read: Callable[[str], WebServer] | None) -> WebServer:
    """The server of connection ``conn_id`` (``read``: the hook); ``url`` may replace its path, not its origin."""
    if read is None:
        raise ClaimedError(f"conn_id: {conn_id!r}: no reader of DICOMweb connections given")
    server = read(conn_id)
    if url:
        if origin(url) != origin(server.url):
            raise ClaimedError(
                f"url: {redacted(url)} is not on the origin of connection {conn_id!r}; "
                "its credentials go only there (use a connection of that server)"
            )
        server.url = url.rstrip("/")
    return server


def _environment_server(url: str | None) -> WebServer | None:
    """The server of ``url`` or ``$DICOMWEB_URL``; the ``DICOMWEB_*`` credentials only on DICOMWEB_URL's origin."""
    home = os.environ.get("DICOMWEB_URL")
    url = url or home
    if not url:
        return None
    _no_userinfo(url, "url")
    server = WebServer(url=url.rstrip("/"), verify=flag(os.environ.get("DICOMWEB_VERIFY")))
    server.allow_http = flag(os.environ.get("DICOMWEB_ALLOW_HTTP", "false")) is True
    if not home or origin(url) != origin(home):
        return server  # another server than the one the credentials are for: none sent
    token = secret(os.environ.get("DICOMWEB_TOKEN"), "DICOMWEB_TOKEN")
    user = secret(os.environ.get("DICOMWEB_USERNAME"), "DICOMWEB_USERNAME")
    if token:
        mask(token)
        server.headers["Authorization"] = f"Bearer {token}"
    elif user:
        password = secret(os.environ.get("DICOMWEB_PASSWORD"), "DICOMWEB_PASSWORD") or ""
        mask(password)
        server.auth = (user, password)
    return server


def allowed_hosts(protocol: str) -> set[str]:
    """Hosts a URI may name instead of a connection: ``allowed_hosts`` of connection ``dicomweb_default``
    or ``dicom_default`` (``host`` or ``host:port``, comma-separated or a list), else
    ``$CLAIMED_PACS_ALLOWED_HOSTS``; none by default."""
    conn_id = "dicomweb_default" if protocol == "dicomweb" else "dicom_default"

    def read(name: str) -> set[str]:
        from claimed_airflow.version_compat import BaseHook

        return split_hosts(BaseHook.get_connection(name).extra_dejson.get("allowed_hosts"))

    try:
        return from_connection(conn_id, read, kind="PACS")
    except ClaimedError:  # the default connection is not defined (or no Airflow here): the environment's list
        return split_hosts(os.environ.get("CLAIMED_PACS_ALLOWED_HOSTS"))


def split_hosts(value) -> set[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return {str(item).strip().lower() for item in items if str(item).strip()}


def check_allowed(protocol: str, host: str, port: int | None, uri: str, param: str) -> None:
    allowed = allowed_hosts(protocol)
    host = host.lower()
    if host in allowed or (port is not None and f"{host}:{port}" in allowed):
        return
    conn = "dicomweb_default" if protocol == "dicomweb" else "dicom_default"
    raise ClaimedError(
        f"{param}: {redacted(uri)} names a host; use a connection id ({protocol}://<conn_id>), "
        f"or list the host in allowed_hosts of connection {conn!r}"
    )


def dimse_server(
    conn_id: str | None,
    address: str | None = None,
    calling_ae_title: str | None = None,
    *,
    read: Callable[[str], DimseServer] | None = None,
) -> DimseServer:
    """The DICOM peer of an Airflow connection of type ``dicom`` (``read``: the hook), or of ``address``."""
    if address:
        server = parse_address(address)
    elif conn_id and read is not None:
        server = from_connection(conn_id, read, kind="DICOM", hint="or give the address as AET@host:port")
    else:
        raise ClaimedError("address: no DICOM peer (give conn_id or the address as AET@host:port)")
    if calling_ae_title:
        server.calling_ae_title = check_ae_title(calling_ae_title, "calling_ae_title")
    return server


def parse_address(address: str) -> DimseServer:
    match = re.fullmatch(r"(?:dicom://)?([^@/]+)@([^:/@]+):(\d+)/?", address.strip())
    if not match:
        raise ClaimedError(f"address: {address!r} is not AET@host:port (e.g. ORTHANC@127.0.0.1:4242)")
    return DimseServer(ae_title=check_ae_title(match[1], "address"), host=match[2], port=int(match[3]))


def check_ae_title(value: str, name: str) -> str:
    value = value.strip()
    if not value or len(value) > 16 or "\\" in value or not value.isprintable():
        raise ClaimedError(f"{name}: {value!r} is not an AE title (1 to 16 printable characters)")
    return value


def redacted(uri: str) -> str:
    """A source URI for messages: scheme, server part and filter names only."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def backoff(name: str, what: str, attempt: int, why: str) -> None:
    delay = 0.5 * 2 ** (attempt - 1)
    log.warning("%s: %s: %s; retrying in %.1f s (try %d of %d)", name, what, why, delay, attempt + 1, ATTEMPTS)
    time.sleep(delay)
