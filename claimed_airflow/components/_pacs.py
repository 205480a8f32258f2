"""PACS access for the input/output components: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and DIMSE (C-FIND, C-GET, C-STORE).

Servers come from an Airflow connection (``dicomweb``: base URL, basic auth or bearer token, TLS
verification; ``dicom``: AE title, host, port, our calling AE title) when Airflow is there, else
from a URL and ``DICOMWEB_*`` environment variables. Secrets stay inside the HTTP session: they are
not parameters, never logged and never returned. Every error names the server (URL or
``AET@host:port``), never a credential.

Source URIs (``input.dicom`` and the flagship's ``dicom_source``)::

    dicomweb://<conn_id>?modality=CR&study_date=20200101-20201231
    dicomweb+http://host:8042/dicom-web?level=instance&AccessionNumber=A123
    dicom://<conn_id>?modality=MR               dicom://PACS_AET@host:104?patient_id=P1

Instances are written as ``<sha256(SOPInstanceUID)[:32]>.dcm`` (never the UID itself as a path) into
a folder that survives a failed attempt, so a retried task fetches only what is still missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from claimed_airflow.core.credentials import from_connection, mask
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")

WEB_SCHEMES = ("dicomweb", "dicomweb+http", "dicomweb+https")
SCHEMES = (*WEB_SCHEMES, "dicom")
LEVELS = ("study", "series", "instance")
DEFAULT_CALLING_AET = "CLAIMED"
ATTEMPTS = 3  # tries of a request that failed to connect or got a transient answer (429, 502, 503, 504)
TRANSIENT = (408, 429, 502, 503, 504)
PAGE = 1000  # QIDO-RS results asked for per request
MAX_PAGES = 100  # QIDO-RS pages of one search (a server that pages forever stops here)
MAX_INSTANCES = 100_000  # instances of one retrieval unless max_instances says otherwise
MAX_CONCURRENCY = 32  # retrieve requests in flight
MAX_INSTANCE_BYTES = 2 << 30  # one instance (a connection's max_instance_mb lowers or raises it)
NAMED_FILTERS = {
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "study_date": "StudyDate",
    "accession_number": "AccessionNumber",
    "patient_id": "PatientID",
}
STUDY_KEYS = ("StudyInstanceUID",)
SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID")
INSTANCE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_UID = re.compile(r"[0-9]{1,64}(\.[0-9]{1,64}){0,63}")
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$|^[0-9A-Fa-f]{8}$")


def is_pacs_uri(uri: str) -> bool:
    return "://" in uri and uri.split("://", 1)[0].lower() in SCHEMES


def instance_file(sop_instance_uid: str) -> str:
    """The file name of an instance: a hash of its UID (UIDs from a server never become paths)."""
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32] + ".dcm"


# ---------------------------------------------------------------- servers


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


def web_server(conn_id: str | None, url: str | None = None, verify: bool | None = None) -> WebServer:
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
            lambda name: _connection_server(name, url),
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


def _connection_server(conn_id: str, url: str | None) -> WebServer:
    """The server of DICOMweb connection ``conn_id``; ``url`` may replace its path, not its origin."""
    from claimed_airflow.hooks.dicomweb import DicomWebHook

    server = DicomWebHook(conn_id).server()
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
        return from_connection(
            conn_id, read, kind="PACS", environment=lambda: split_hosts(os.environ.get("CLAIMED_PACS_ALLOWED_HOSTS"))
        )
    except ClaimedError:
        return set()


def split_hosts(value) -> set[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    return {str(item).strip().lower() for item in items if str(item).strip()}


def _check_allowed(protocol: str, host: str, port: int | None, uri: str, param: str) -> None:
    allowed = allowed_hosts(protocol)
    host = host.lower()
    if host in allowed or (port is not None and f"{host}:{port}" in allowed):
        return
    conn = "dicomweb_default" if protocol == "dicomweb" else "dicom_default"
    raise ClaimedError(
        f"{param}: {redacted(uri)} names a host; use a connection id ({protocol}://<conn_id>), "
        f"or list the host in allowed_hosts of connection {conn!r}"
    )


def dimse_server(conn_id: str | None, address: str | None = None, calling_ae_title: str | None = None) -> DimseServer:
    """The DICOM peer of an Airflow connection of type ``dicom``, or of ``address`` (``AET@host:port``)."""
    if address:
        server = parse_address(address)
    elif conn_id:
        server = from_connection(conn_id, _dimse_connection, kind="DICOM", hint="or give the address as AET@host:port")
    else:
        raise ClaimedError("address: no DICOM peer (give conn_id or the address as AET@host:port)")
    if calling_ae_title:
        server.calling_ae_title = _aet(calling_ae_title, "calling_ae_title")
    return server


def _dimse_connection(conn_id: str) -> DimseServer:
    from claimed_airflow.hooks.dicom import DicomHook

    return DicomHook(conn_id).server()


def parse_address(address: str) -> DimseServer:
    match = re.fullmatch(r"(?:dicom://)?([^@/]+)@([^:/@]+):(\d+)/?", address.strip())
    if not match:
        raise ClaimedError(f"address: {address!r} is not AET@host:port (e.g. ORTHANC@127.0.0.1:4242)")
    return DimseServer(ae_title=_aet(match[1], "address"), host=match[2], port=int(match[3]))


def _aet(value: str, name: str) -> str:
    value = value.strip()
    if not value or len(value) > 16 or "\\" in value or not value.isprintable():
        raise ClaimedError(f"{name}: {value!r} is not an AE title (1 to 16 printable characters)")
    return value


# ---------------------------------------------------------------- queries


@dataclass
class Query:
    """A search: the level it runs at and DICOM keyword -> value filters (wildcards, ranges as in PS3.4 C.2)."""

    level: str = "series"
    filters: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


def make_query(
    level: str = "series",
    modality: str | None = None,
    body_part: str | None = None,
    study_date: str | None = None,
    accession_number: str | None = None,
    patient_id: str | None = None,
    filters: dict | None = None,
    limit: int | None = None,
) -> Query:
    """A :class:`Query` from the components' named filters plus any attribute (keyword or 8-hex tag)."""
    if level not in LEVELS:
        raise ClaimedError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    named = {
        "modality": modality,
        "body_part": body_part,
        "study_date": study_date,
        "accession_number": accession_number,
        "patient_id": patient_id,
    }
    values = {NAMED_FILTERS[k]: v for k, v in named.items() if v not in (None, "")}
    for key, value in (filters or {}).items():
        if not _KEYWORD.match(str(key)):
            raise ClaimedError(f"filters: {key!r} is not a DICOM keyword or tag")
        if isinstance(value, (dict, list)):
            raise ClaimedError(f"filters: the value of {key} must be a string, got {value!r}")
        values[str(key)] = str(value)
    if study_date and not re.fullmatch(r"\d{8}(-\d{8})?|-\d{8}|\d{8}-", study_date.strip()):
        raise ClaimedError(f"study_date: expected YYYYMMDD or a range YYYYMMDD-YYYYMMDD, got {study_date!r}")
    if level == "study" and "BodyPartExamined" in values:
        raise ClaimedError("body_part: BodyPartExamined is a series attribute; search at level series or instance")
    if level == "study" and "Modality" in values:
        values["ModalitiesInStudy"] = values.pop("Modality")
    if limit is not None and limit < 1:
        raise ClaimedError(f"max_instances: must be positive, got {limit}")
    return Query(level=level, filters=values, limit=limit)


def parse_source(uri: str, param: str = "source") -> tuple[str, str | None, str | None, Query, dict]:
    """``(protocol, conn_id, url_or_address, query, options)`` of a PACS source URI (see the module doc).

    A URI naming a host instead of a connection id must name one of :func:`allowed_hosts`.
    Query keys: ``level``, the named filters (``modality``, ``body_part``, ``study_date``,
    ``accession_number``, ``patient_id``), ``max_instances``, ``concurrency``, ``transfer_syntax``,
    ``calling_ae_title``, and any DICOM keyword (``SeriesDescription=CHEST*``).
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ClaimedError(f"source: {uri!r} is not a dicomweb://, dicomweb+http(s):// or dicom:// URI")
    if "@" in parts.netloc and scheme != "dicom":
        raise ClaimedError("source: put credentials in an Airflow connection, not in the URI")
    params = dict(parse_qsl(parts.query, keep_blank_values=False))
    options = {k: params.pop(k) for k in ("concurrency", "transfer_syntax", "calling_ae_title") if k in params}
    level = params.pop("level", "series")
    limit = params.pop("max_instances", None)
    named = {k: params.pop(k) for k in list(params) if k in NAMED_FILTERS}
    try:
        limit_value = int(limit) if limit else None
    except ValueError:
        raise ClaimedError(f"source: max_instances={limit!r} is not a number") from None
    query = make_query(level=level, filters=params, limit=limit_value, **named)
    if scheme == "dicomweb":
        if not parts.netloc or parts.path.strip("/"):
            raise ClaimedError(f"source: {uri!r}: expected dicomweb://<connection id>?<filters>")
        return "dicomweb", parts.netloc, None, query, options
    if scheme.startswith("dicomweb+"):
        url = f"{scheme.split('+', 1)[1]}://{parts.netloc}{parts.path}"
        _check_allowed("dicomweb", parts.hostname or "", origin(url)[2], uri, param)
        return "dicomweb", None, url, query, options
    if "@" in parts.netloc:
        peer = parse_address(parts.netloc)
        _check_allowed("dicom", peer.host, peer.port, uri, param)
        return "dicom", None, parts.netloc, query, options
    return "dicom", parts.netloc or None, None, query, options


def redacted(uri: str) -> str:
    """A source URI for messages: scheme, server part and filter names only."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# ---------------------------------------------------------------- DICOMweb


@dataclass(frozen=True)
class Instance:
    study: str
    series: str
    sop: str
    sop_class: str = ""

    @property
    def file(self) -> str:
        return instance_file(self.sop)


def _value(item: dict, keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    element = item.get(f"{tag_for_keyword(keyword):08X}", {})
    values = element.get("Value") or [""]
    return str(values[0])


def _web_call(server: WebServer, what: str, call: Callable, attempts: int = ATTEMPTS):
    """``call()`` with retries of connection errors and transient answers; errors name the server."""
    import requests

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in TRANSIENT and attempt < attempts:
                _backoff(server.name, what, attempt, f"HTTP {status}")
                continue
            if status in (401, 403):
                raise ClaimedError(
                    f"conn_id: {server.name} refused the credentials for {what} (HTTP {status})"
                ) from None
            raise PacsAnswer(status, f"{server.name}: {what} failed with HTTP {status} {_reason(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt < attempts:
                _backoff(server.name, what, attempt, type(exc).__name__)
                continue
            raise ClaimedError(
                f"conn_id: cannot reach DICOMweb server {server.name} ({type(exc).__name__}) after {attempts} tries"
            ) from None
        except (requests.RequestException, ValueError) as exc:  # its text may hold a header value (the token)
            raise ClaimedError(f"conn_id: {server.name}: {what} failed ({type(exc).__name__})") from None


class PacsAnswer(ClaimedError):
    """An error answer of the server, with its HTTP ``status`` (0 when unknown)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _reason(exc) -> str:
    response = exc.response
    return (response.reason or "") if response is not None else ""


def _backoff(name: str, what: str, attempt: int, why: str) -> None:
    delay = 0.5 * 2 ** (attempt - 1)
    log.warning("%s: %s: %s; retrying in %.1f s (try %d of %d)", name, what, why, delay, attempt + 1, ATTEMPTS)
    time.sleep(delay)


def _pages(server: WebServer, what: str, search: Callable[..., list[dict]], key: str) -> Iterator[dict]:
    """All results of a QIDO-RS search, page by page (``offset``), until a page brings nothing new.

    Some servers ignore ``offset`` for some queries (Orthanc 1.10 with ModalitiesInStudy) and answer
    the same page again; paging stops there instead of looping.
    """
    seen: set[str] = set()
    offset = 0
    for _ in range(MAX_PAGES):
        page = _web_call(server, what, lambda offset=offset: search(offset=offset, limit=PAGE))
        fresh = [item for item in page if _value(item, key) not in seen]
        if not fresh:
            return
        for item in fresh:
            seen.add(_value(item, key))
            yield item
        if len(page) < PAGE:
            return
        offset += len(page)
    raise ClaimedError(f"source: {server.name}: {what} still had results after {MAX_PAGES} pages; narrow the query")


def web_search(server: WebServer, query: Query) -> list[Instance]:
    """QIDO-RS: the instances matching ``query`` (studies or series first, then their instances)."""
    client = server.client()
    filters = dict(query.filters)
    fields = list(INSTANCE_KEYS)
    instances: list[Instance] = []

    def instances_of(what: str, **uids: str) -> Iterator[dict]:
        def search(**page):
            return client.search_for_instances(
                **uids, search_filters=filters if not uids else {}, fields=fields, **page
            )

        return _pages(server, what, search, "SOPInstanceUID")

    if query.level == "instance":
        groups: Iterable[Iterator[dict]] = [instances_of("QIDO-RS search for instances")]
    elif query.level == "series":
        series = _pages(
            server,
            "QIDO-RS search for series",
            lambda **page: client.search_for_series(search_filters=filters, **page),
            "SeriesInstanceUID",
        )
        groups = (
            instances_of(
                f"QIDO-RS instances of series {_value(item, 'SeriesInstanceUID')}",
                study_instance_uid=_value(item, "StudyInstanceUID"),
                series_instance_uid=_value(item, "SeriesInstanceUID"),
            )
            for item in series
        )
    else:
        studies = _pages(
            server,
            "QIDO-RS search for studies",
            lambda **page: client.search_for_studies(search_filters=filters, **page),
            "StudyInstanceUID",
        )
        groups = (
            instances_of(
                f"QIDO-RS instances of study {_value(item, 'StudyInstanceUID')}",
                study_instance_uid=_value(item, "StudyInstanceUID"),
            )
            for item in studies
        )
    for group in groups:
        for item in group:
            instance = Instance(
                _value(item, "StudyInstanceUID"),
                _value(item, "SeriesInstanceUID"),
                _value(item, "SOPInstanceUID"),
                _value(item, "SOPClassUID"),
            )
            if not all(_UID.fullmatch(uid) for uid in (instance.study, instance.series, instance.sop)):
                from claimed_airflow.core import reject

                reject(instance.sop[:80] or "(no SOPInstanceUID)", "the server answered an invalid UID")
                continue
            instances.append(instance)
            if query.limit and len(instances) >= query.limit:
                return instances
            if len(instances) > MAX_INSTANCES:
                raise ClaimedError(f"source: more than {MAX_INSTANCES} instances match; narrow it or set max_instances")
    return instances


def web_fetch(
    server: WebServer,
    instances: list[Instance],
    folder: Path,
    concurrency: int = 8,
    transfer_syntax: str = "*",
    on_error: Callable[[Instance, str], None] | None = None,
) -> Iterator[tuple[Instance, Path]]:
    """WADO-RS: each instance into ``folder/<hash>.dcm`` with at most ``concurrency`` requests in flight.

    Files already there (an earlier, failed attempt) are not fetched again. Each file is written under
    a temporary name and renamed, so a killed task leaves no partial file. An instance the server
    does not have (404, 410) goes to ``on_error``; other errors stop the retrieval. Yields
    ``(instance, path)`` as they complete.
    """
    local = threading.local()
    media = (("application/dicom", transfer_syntax),) if transfer_syntax else None

    def fetch(instance: Instance) -> Path:
        target = folder / instance.file
        if target.exists():
            return target
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = server.client()
        what = f"WADO-RS retrieve of instance {instance.sop}"
        data = _web_call(server, what, lambda: _instance_bytes(client, server, instance, transfer_syntax, media))
        staging = folder / f".{instance.file}.{uuid.uuid4().hex[:8]}.part"
        try:
            staging.write_bytes(data)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return target

    yield from _bounded(fetch, instances, concurrency, on_error)


class SetAside(ClaimedError):
    """One instance that cannot be used (too large, not DICOM, a malformed answer): set aside, the rest goes on."""


def _instance_bytes(client, server: WebServer, instance: Instance, transfer_syntax: str, media) -> bytes:
    """The instance as the server sent it (Part 10 bytes, nothing decoded or re-encoded), read as a stream.

    More than ``server.max_instance_bytes``, an answer that is not a Part 10 file, or a multipart
    message without a readable part sets this instance aside (:class:`SetAside`); nothing is parsed
    with ``force``.
    """
    url = f"{server.url}/studies/{instance.study}/series/{instance.series}/instances/{instance.sop}"
    accept = 'multipart/related; type="application/dicom"'
    if transfer_syntax:
        accept += f"; transfer-syntax={transfer_syntax}"
    cap = server.max_instance_bytes
    with client._session.get(url, headers={"Accept": accept}, stream=True, timeout=server.timeout) as response:
        response.raise_for_status()
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap + 65536:
            raise SetAside(f"larger than the {cap} bytes allowed for an instance ({declared} bytes)")
        body = bytearray()
        for chunk in response.iter_content(1 << 20):
            body += chunk
            if len(body) > cap + 65536:  # multipart framing aside
                raise SetAside(f"larger than the {cap} bytes allowed for an instance")
        content_type = response.headers.get("Content-Type", "")
    data = _first_part(content_type, bytes(body)) if content_type.startswith("multipart/") else bytes(body)
    if len(data) > cap:
        raise SetAside(f"larger than the {cap} bytes allowed for an instance")
    if data[128:132] != b"DICM":
        raise SetAside("the server's answer is not a DICOM file (no Part 10 header)")
    return data


def _first_part(content_type: str, body: bytes) -> bytes:
    """The first part of a multipart/related answer (Python's MIME parser)."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    payload = parts[0].get_payload(decode=True) if parts else None
    if not payload:
        raise SetAside("a malformed multipart answer (no readable part)")
    return payload


def _bounded(
    work: Callable[[Instance], Path],
    instances: Iterable[Instance],
    concurrency: int,
    on_error: Callable[[Instance, str], None] | None,
) -> Iterator[tuple[Instance, Path]]:
    """Run ``work`` over ``instances`` with at most ``concurrency`` in flight; keeps memory flat."""
    pending: dict[Future, Instance] = {}
    items = iter(instances)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="claimed-pacs") as pool:
        try:
            while True:
                while len(pending) < max(1, concurrency):
                    instance = next(items, None)
                    if instance is None:
                        break
                    pending[pool.submit(work, instance)] = instance
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    instance = pending.pop(future)
                    try:
                        yield instance, future.result()
                    except SetAside as exc:
                        if on_error is None:
                            raise
                        on_error(instance, str(exc))
                        continue
                    except PacsAnswer as exc:
                        if exc.status in (404, 410) and on_error is not None:
                            on_error(instance, str(exc))
                            continue
                        raise
        finally:
            for future in pending:
                future.cancel()


def web_store(server: WebServer, files: list[Path], batch: int = 20) -> dict[str, str]:
    """STOW-RS of ``files`` in batches; returns SOPInstanceUID -> "stored" or the server's failure reason."""
    import pydicom

    client = server.client()
    outcome: dict[str, str] = {}
    for start in range(0, len(files), batch):
        datasets = [pydicom.dcmread(path) for path in files[start : start + batch]]
        answer = _web_call(server, "STOW-RS store", lambda datasets=datasets: client.store_instances(datasets))
        for item in answer.get("ReferencedSOPSequence", []):
            outcome[str(item.ReferencedSOPInstanceUID)] = "stored"
        for item in answer.get("FailedSOPSequence", []):
            outcome[str(item.ReferencedSOPInstanceUID)] = f"failed (reason {item.get('FailureReason', '?')})"
        for ds in datasets:
            outcome.setdefault(str(ds.SOPInstanceUID), "stored")
    return outcome


# ---------------------------------------------------------------- DIMSE

QR_LEVEL = {"study": "STUDY", "series": "SERIES", "instance": "IMAGE"}
# C-GET: the transfer syntaxes offered for each SOP class, so that the PACS sends files as stored
GET_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.1.99",  # Deflated
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@contextlib.contextmanager
def association(server: DimseServer, contexts: list, roles: list | None = None, handlers: list | None = None):
    """An association with ``server`` (tried ``ATTEMPTS`` times); released, or aborted on error."""
    from pynetdicom import AE

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # at INFO it logs every identifier (patient data)
    ae = AE(ae_title=server.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    ae.connection_timeout = min(server.timeout, 10)
    for context in contexts:
        ae.add_requested_context(*context) if isinstance(context, tuple) else ae.add_requested_context(context)
    assoc = None
    for attempt in range(1, ATTEMPTS + 1):
        assoc = ae.associate(server.host, server.port, ae_title=server.ae_title, ext_neg=roles, evt_handlers=handlers)
        if assoc.is_established:
            break
        if assoc.is_rejected:
            raise ClaimedError(
                f"conn_id: DICOM peer {server.name} rejected the association from {server.calling_ae_title} "
                "(check the AE titles and that the PACS knows ours)"
            )
        if attempt < ATTEMPTS:
            _backoff(server.name, "association", attempt, "no answer" if not assoc.is_aborted else "aborted")
    if assoc is None or not assoc.is_established:
        raise ClaimedError(f"conn_id: cannot reach DICOM peer {server.name} after {ATTEMPTS} tries")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        assoc.release()


def echo(server: DimseServer) -> None:
    """C-ECHO: raises a clear error unless the peer answers with success."""
    from pynetdicom.sop_class import Verification

    with association(server, [Verification]) as assoc:
        status = assoc.send_c_echo()
        if status is None or int(status.get("Status", -1)) != 0:
            raise ClaimedError(f"{server.name}: C-ECHO failed")


def _identifier(level: str, filters: dict[str, str], keys: Iterable[str], **unique: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key in keys:
        setattr(ds, key, "")
    for key, value in {**filters, **unique}.items():
        if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            from pydicom.datadict import dictionary_VR

            ds.add_new(int(key, 16), dictionary_VR(int(key, 16)), value)
        else:
            setattr(ds, key, value)
    return ds


def _find(assoc, server: DimseServer, identifier) -> list:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    found = []
    for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if status is None or "Status" not in status:
            raise ClaimedError(f"{server.name}: C-FIND got no answer (timeout or aborted association)")
        code = int(status.Status)
        if code in (0xFF00, 0xFF01) and answer is not None:
            found.append(answer)
        elif code != 0x0000:
            raise ClaimedError(f"{server.name}: C-FIND failed with status 0x{code:04X}")
    return found


def dimse_search(server: DimseServer, query: Query) -> list[Instance]:
    """C-FIND (Study Root): studies or series matching ``query``, then their instances."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    instances: list[Instance] = []
    with association(server, [StudyRootQueryRetrieveInformationModelFind]) as assoc:
        if query.level == "instance":
            answers = _find(assoc, server, _identifier("IMAGE", query.filters, INSTANCE_KEYS))
        else:
            keys = STUDY_KEYS if query.level == "study" else SERIES_KEYS
            answers = []
            for parent in _find(assoc, server, _identifier(QR_LEVEL[query.level], query.filters, keys)):
                if query.level == "study":
                    series = _find(
                        assoc, server, _identifier("SERIES", {}, SERIES_KEYS, StudyInstanceUID=parent.StudyInstanceUID)
                    )
                else:
                    series = [parent]
                for item in series:
                    unique = {"StudyInstanceUID": item.StudyInstanceUID, "SeriesInstanceUID": item.SeriesInstanceUID}
                    answers += _find(assoc, server, _identifier("IMAGE", {}, INSTANCE_KEYS, **unique))
                    if query.limit and len(answers) >= query.limit:
                        break
                if query.limit and len(answers) >= query.limit:
                    break
    for answer in answers:
        instances.append(
            Instance(
                str(answer.get("StudyInstanceUID", "")),
                str(answer.get("SeriesInstanceUID", "")),
                str(answer.get("SOPInstanceUID", "")),
                str(answer.get("SOPClassUID", "")),
            )
        )
    instances = [i for i in instances if i.sop]
    if not query.limit and len(instances) > MAX_INSTANCES:
        raise ClaimedError(f"source: more than {MAX_INSTANCES} instances match; narrow it or set max_instances")
    return instances[: query.limit] if query.limit else instances


def _receiver(folder: Path, wanted: set[str]) -> Callable:
    """The C-STORE handler of a retrieval: each instance asked for written as received (not decoded)."""
    from pydicom.filewriter import write_file_meta_info

    def store(event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID or "")
        if uid not in wanted:
            return 0xC211  # not asked for: refused
        target = folder / instance_file(uid)
        staging = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            with open(staging, "wb") as out:
                out.write(b"\0" * 128 + b"DICM")
                write_file_meta_info(out, event.file_meta, enforce_standard=True)
                out.write(event.request.DataSet.getvalue())
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return 0x0000

    return store


RETRIEVE_OK = (0x0000, 0xFF00, 0xFF01)
RETRIEVE_HINTS = {
    0xA801: "the PACS does not know the move destination (add our move AE title, host and port to its configuration)",
    0xB000: "some sub-operations failed (an instance the PACS could not send in a transfer syntax we accept)",
}


def dimse_fetch(
    server: DimseServer,
    instances: list[Instance],
    folder: Path,
    on_error: Callable[[Instance, str], None] | None = None,
) -> Iterator[tuple[Instance, Path]]:
    """C-GET or C-MOVE (``server.retrieve``) of the instances not yet in ``folder``, series by series.

    Each SOP class C-FIND reported is offered once per transfer syntax (a context accepts one), so
    the PACS sends the files as stored, without transcoding; the files are written as received.
    C-MOVE runs our own storage SCP (``server.move_ae_title`` on ``server.move_port``, accepting
    only the PACS's AE title and only the instances asked for) for one association per series. An
    instance the PACS did not send goes to ``on_error`` with the PACS's status; the others go on.
    """
    wanted = {i.sop for i in instances}
    missing = [i for i in instances if not (folder / i.file).exists()]
    by_series: dict[tuple[str, str], list[Instance]] = {}
    for item in missing:
        by_series.setdefault((item.study, item.series), []).append(item)
    handler = _receiver(folder, wanted)
    with contextlib.ExitStack() as stack:
        if server.retrieve == "move" and by_series:
            stack.enter_context(_storage_scp(server, handler, {i.sop_class for i in missing if i.sop_class}))
        for (study, series), items in by_series.items():
            identifier = _identifier(
                "IMAGE", {}, (), StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=[i.sop for i in items]
            )
            problem = _retrieve_series(server, items, identifier, handler, folder)
            for item in items:
                if not (folder / item.file).exists() and on_error is not None:
                    on_error(item, f"{server.name} did not send it ({problem})")
    for instance in instances:
        path = folder / instance.file
        if path.exists():
            yield instance, path


# C-GET of instances whose SOP class the PACS's C-FIND did not say (dcmqrscp does not): the classes
# proposed, most common first, a group per association until every instance came
COMMON_CLASSES = (
    "CTImageStorage MRImageStorage ComputedRadiographyImageStorage DigitalXRayImageStorageForPresentation "
    "SecondaryCaptureImageStorage UltrasoundImageStorage NuclearMedicineImageStorage EnhancedMRImageStorage "
    "EnhancedCTImageStorage DigitalMammographyXRayImageStorageForPresentation XRayAngiographicImageStorage "
    "PositronEmissionTomographyImageStorage DigitalXRayImageStorageForProcessing UltrasoundMultiFrameImageStorage "
    "XRayRadiofluoroscopicImageStorage ComprehensiveSRStorage BasicTextSRStorage EnhancedSRStorage "
    "KeyObjectSelectionDocumentStorage DigitalMammographyXRayImageStorageForProcessing "
    "MultiFrameTrueColorSecondaryCaptureImageStorage MultiFrameGrayscaleByteSecondaryCaptureImageStorage "
    "MultiFrameGrayscaleWordSecondaryCaptureImageStorage EncapsulatedPDFStorage SegmentationStorage "
    "GrayscaleSoftcopyPresentationStateStorage RTImageStorage RTStructureSetStorage RTDoseStorage "
    "VLPhotographicImageStorage BreastTomosynthesisImageStorage EnhancedXAImageStorage"
).split()


def _get_passes(items: list[Instance]) -> Iterator[list[tuple[str, list[str]]]]:
    """The storage contexts of each C-GET association: every class in every syntax, then one syntax at a time.

    A PACS that picks the context matching the stored file's syntax (Orthanc) sends everything in
    the first association(s). One that takes the first context of the SOP class, whatever its syntax
    (dcmqrscp), sends its uncompressed files there and each compressed one in the pass offering only
    that file's syntax. Only what is still missing is asked for again.
    """
    from pydicom.uid import UID
    from pynetdicom import sop_class

    classes = sorted({i.sop_class for i in items if i.sop_class})
    if any(not i.sop_class for i in items):
        classes += [str(getattr(sop_class, n)) for n in COMMON_CLASSES if str(getattr(sop_class, n)) not in classes]
    classes = [str(UID(c)) for c in classes]
    step = 127 // len(GET_SYNTAXES)
    for n in range(0, len(classes), step):
        yield [(c, [ts]) for c in classes[n : n + step] for ts in GET_SYNTAXES]
    for ts in GET_SYNTAXES[len(UNCOMPRESSED) :]:
        for n in range(0, len(classes), 127):
            yield [(c, [ts]) for c in classes[n : n + 127]]


def _retrieve_series(server: DimseServer, items: list[Instance], identifier, handler, folder: Path) -> str:
    """C-GET or C-MOVE of one series; "" when every instance came, else what the PACS answered."""
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
    )

    verb = f"C-{server.retrieve.upper()}"
    if server.retrieve == "move":
        passes = [([StudyRootQueryRetrieveInformationModelMove], None, None)]
    else:
        passes = (
            (
                [StudyRootQueryRetrieveInformationModelGet, *group],
                [build_role(c, scp_role=True) for c in dict.fromkeys(c for c, _ in group)],
                [(evt.EVT_C_STORE, handler)],
            )
            for group in _get_passes(items)
        )
    problem = ""
    for contexts, roles, handlers in passes:
        left = [i.sop for i in items if not (folder / i.file).exists()]
        if not left:
            return ""
        identifier.SOPInstanceUID = left
        try:
            with association(server, contexts, roles, handlers) as assoc:
                if server.retrieve == "move":
                    model = StudyRootQueryRetrieveInformationModelMove
                    answers = assoc.send_c_move(identifier, server.move_ae_title, model)
                else:
                    answers = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
                for status, _ in answers:
                    if status is None or "Status" not in status:
                        problem = f"{verb} got no answer (timeout or aborted association)"
                        break
                    code = int(status.Status)
                    if code not in RETRIEVE_OK:
                        hint = RETRIEVE_HINTS.get(code, "")
                        problem = f"{verb} status 0x{code:04X}" + (f": {hint}" if hint else "")
        except ClaimedError as exc:
            problem = str(exc)
    if all((folder / i.file).exists() for i in items):
        return ""
    log.warning("%s: %s", server.name, problem or f"{verb} reported success but did not send every instance")
    return problem or f"{verb} reported success without sending it"


@contextlib.contextmanager
def _storage_scp(server: DimseServer, handler: Callable, classes: set[str]):
    """Our storage SCP for C-MOVE: any storage SOP class in any transfer syntax, from the PACS's AE title only."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

    ae = AE(ae_title=server.move_ae_title)
    ae.require_calling_aet = [server.ae_title]
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = server.timeout
    for cls in sorted({c.abstract_syntax for c in StoragePresentationContexts} | classes):
        ae.add_supported_context(cls, ALL_TRANSFER_SYNTAXES)
    try:
        scp = ae.start_server(
            (server.move_bind, server.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, handler)]
        )
    except OSError as exc:
        raise ClaimedError(
            f"conn_id: cannot listen for C-MOVE on {server.move_bind or '*'}:{server.move_port} ({exc.strerror})"
        ) from None
    try:
        yield scp
    finally:
        scp.shutdown()


UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")  # every SCP accepts these
STORED_WITH_WARNING = (0xB000, 0xB006, 0xB007)
NO_ANSWER = "failed (no answer: timeout or aborted association)"


def _store_batches(heads: list, limit: int = 128) -> Iterator[tuple[list[int], list]]:
    """Files in groups whose presentation contexts fit one association (at most ``limit``).

    Each SOP class is proposed in the file's own transfer syntax and, in a context of its own, in the
    uncompressed ones, so a peer that accepts only uncompressed data still gets a context to use.
    """
    batch: list[int] = []
    contexts: dict[tuple[str, tuple[str, ...]], None] = {}
    for n, ds in enumerate(heads):
        cls, ts = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
        wanted = [(cls, UNCOMPRESSED)] + ([] if ts in UNCOMPRESSED else [(cls, (ts,))])
        new = [c for c in wanted if c not in contexts]
        if batch and len(contexts) + len(new) > limit:
            yield batch, [(c, list(t)) for c, t in contexts]
            batch, contexts = [], {}
            new = wanted
        batch.append(n)
        contexts.update(dict.fromkeys(new))
    if batch:
        yield batch, [(c, list(t)) for c, t in contexts]


def _accepted(assoc) -> set[tuple[str, str]]:
    return {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}


def as_uncompressed(path: Path):
    """The dataset of ``path`` in Explicit VR Little Endian: compressed pixel data decoded with pydicom's
    handlers (pylibjpeg, openjpeg, RLE, JPEG-LS), deflated data inflated."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        ds.decompress(generate_instance_uid=False)  # the same instance: Explicit VR Little Endian, decoded
    elif str(ds.file_meta.TransferSyntaxUID) not in UNCOMPRESSED:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _even(ds):
    """``ds`` with odd-length Pixel Data padded to an even length (PS3.5 7.1.1), as a strict peer needs it."""
    if "PixelData" in ds and len(ds.PixelData) % 2:
        ds.PixelData = ds.PixelData + b"\0"
    return ds


def _send(assoc, server: DimseServer, path: Path, ds) -> str:
    """C-STORE of one file: as it is when the peer accepted its syntax, else decompressed; the outcome."""
    import pydicom
    from pydicom.uid import UID

    cls, ts = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
    accepted = _accepted(assoc)
    try:
        if (cls, ts) in accepted and not path.stat().st_size % 2:
            payload = path  # streamed from the file
        elif (cls, ts) in accepted:
            payload = _even(pydicom.dcmread(path))  # an odd length (not conformant): a peer may abort on it
        elif any((cls, u) in accepted for u in UNCOMPRESSED):
            payload = _even(as_uncompressed(path))
        else:
            return f"failed (the peer accepted no presentation context for {UID(cls).name} in {UID(ts).name})"
    except Exception as exc:  # noqa: BLE001 - this file cannot be decoded here; the others go on
        return f"failed (the peer does not take {UID(ts).name} and it cannot be decompressed: {type(exc).__name__})"
    try:
        status = assoc.send_c_store(payload)
    except (ValueError, AttributeError) as exc:  # no context after all, or not encodable
        return f"failed ({type(exc).__name__}: {exc})"
    if status is None or "Status" not in status:
        return NO_ANSWER
    code = int(status.Status)
    return "stored" if code == 0 or code in STORED_WITH_WARNING else f"failed (status 0x{code:04X})"


def dimse_store(server: DimseServer, files: list[Path]) -> dict[str, str]:
    """C-STORE of ``files``; SOPInstanceUID -> "stored" or why not.

    Each file goes as it is where the peer accepted its transfer syntax, else decompressed to an
    uncompressed one it accepted; a file neither way is reported and the rest goes on. An association
    lost midway is made again for the files not yet sent.
    """
    import pydicom

    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    outcome: dict[str, str] = {}
    for batch, contexts in _store_batches(heads):
        todo = list(batch)
        for _ in range(ATTEMPTS):
            try:
                with association(server, contexts) as assoc:
                    while todo and assoc.is_established:
                        n = todo.pop(0)
                        outcome[str(heads[n].SOPInstanceUID)] = result = _send(assoc, server, files[n], heads[n])
                        if result == NO_ANSWER:
                            break  # the peer dropped this file and the association: a new one for the rest
            except ClaimedError as exc:
                if not outcome:
                    raise  # the peer is not there at all: a clear error, nothing was stored
                log.warning("%s", exc)
            if not todo:
                break
        for n in todo:
            outcome[str(heads[n].SOPInstanceUID)] = "failed (not sent: the association was lost)"
    return outcome


# ---------------------------------------------------------------- shared by the input components


def partial_folder(key: str) -> tuple[Path, bool]:
    """``(folder, kept)``: where a retrieval puts its files, private to us (0700, our own).

    Under a local output root it is ``<task folder>/.partial-<digest>``, kept after a failed attempt so a
    retry fetches only what is missing; a folder there that is not ours or is open to others is refused.
    Otherwise a fresh folder in the temp dir (unpredictable name, removed when the retrieval ends).
    """
    from claimed_airflow.core import storage
    from claimed_airflow.core.context import current

    ctx = current()
    task = getattr(ctx, "task_uri", "") or ""
    if not (task and storage.is_local(task)):
        return Path(tempfile.mkdtemp(prefix="claimed-pacs-")), False
    digest = hashlib.sha256(f"{task}\0{key}".encode()).hexdigest()[:24]
    folder = Path(storage.local_path(task)) / f".partial-{digest}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        info = folder.lstat()
        if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ClaimedError(
                f"source: the retrieval folder {folder.name} in the task's folder is not a private folder of ours "
                "(another owner, a link, or open to others): remove it"
            ) from None
    return folder, True


def retrieve(
    protocol: str,
    server: WebServer | DimseServer,
    query: Query,
    concurrency: int = 8,
    transfer_syntax: str = "*",
) -> tuple[Path, list[Instance], Iterator[Path], int]:
    """Search, then fetch into a folder kept between attempts: ``(folder, instances, files, reused)``.

    ``files`` yields each file as soon as it is there (in completion order), so the caller reads
    one while the next ones arrive. Instances the server no longer has are reported and left out.
    """
    from claimed_airflow.core import reject
    from claimed_airflow.core.identifying import redact_query

    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ClaimedError(f"concurrency: expected 1 to {MAX_CONCURRENCY}, got {concurrency}")
    search = web_search if protocol == "dicomweb" else dimse_search
    instances = search(server, query)
    shown = redact_query(query.filters)
    log.info("%s: %d instance(s) match %s at level %s", server.name, len(instances), shown, query.level)
    if not instances:
        raise ClaimedError(f"source: no instance on {server.name} matches {shown or 'the query'}")
    folder, kept = partial_folder(f"{protocol}\0{server.name}\0{query.level}\0{sorted(query.filters.items())}")
    reused = sum(1 for i in instances if (folder / i.file).exists())
    if reused:
        log.info("%s: %d instance(s) already fetched by an earlier attempt", server.name, reused)

    def missing(instance: Instance, reason: str) -> None:
        reject(instance.sop, reason)

    def files() -> Iterator[Path]:
        try:
            if protocol == "dicomweb":
                fetched = web_fetch(server, instances, folder, concurrency, transfer_syntax, missing)
            else:
                fetched = dimse_fetch(server, instances, folder, missing)
            for _, path in fetched:
                yield path  # the caller links it into its output before asking for the next
        finally:
            if not kept:
                shutil.rmtree(folder, ignore_errors=True)

    return folder, instances, files(), reused


# ---------------------------------------------------------------- shared by the output components


def destination_server(destination: str) -> tuple[str, WebServer | DimseServer]:
    """``(protocol, server)`` of a destination URI: ``dicomweb://<conn>``, ``dicomweb+https://host/path``,
    ``dicom://<conn>`` or ``dicom://AET@host:port`` (a query part is not allowed here)."""
    if not is_pacs_uri(destination):
        raise ClaimedError(f"destination: {destination!r} is not a dicomweb://, dicomweb+http(s):// or dicom:// URI")
    if urlsplit(destination).query:
        raise ClaimedError(f"destination: {redacted(destination)} takes no query (filters are for sources)")
    protocol, conn_id, where, _, _ = parse_source(destination, "destination")
    if protocol == "dicomweb":
        return protocol, web_server(conn_id, where)
    return protocol, dimse_server(conn_id, where)


def store_folder(
    protocol: str,
    server: WebServer | DimseServer,
    folder: str | Path,
    batch: int = 20,
    max_rejected: int | None = None,
) -> list[dict]:
    """Store every DICOM file under ``folder`` (STOW-RS or C-STORE); one row per file with its outcome.

    Files that are not DICOM (``index.csv``, ...) are skipped; a file the server refuses is reported
    and the rest goes on; more than ``max_rejected`` files not stored, or none stored, is an error.
    The instances keep their SOP Instance UIDs, so storing the same results again replaces or keeps
    them on the PACS, it never duplicates.
    """
    import pydicom

    from claimed_airflow.components.input.dicom import has_dicm_magic
    from claimed_airflow.core import reject

    base = Path(folder)
    candidates = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".") and has_dicm_magic(p))
    if not candidates:
        raise ClaimedError(f"dicom: no DICOM file in {folder}")
    uids, files = {}, []
    for path in candidates:
        try:
            uids[path] = str(
                pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
            )
            files.append(path)
        except Exception as exc:  # noqa: BLE001 - this file is set aside, the rest is stored
            reject(path.relative_to(base).as_posix(), f"not a readable DICOM file ({type(exc).__name__}: {exc})")
    if protocol == "dicomweb":
        outcome = web_store(server, files, batch)
    else:
        outcome = dimse_store(server, files)
    rows = []
    for path in files:
        result = outcome.get(uids[path], "not answered")
        name = path.relative_to(base).as_posix()
        if result != "stored":
            reject(name, f"{server.name} did not store {uids[path]}: {result}")
        rows.append({"file": name, "SOPInstanceUID": uids[path], "outcome": result})
    stored = sum(r["outcome"] == "stored" for r in rows)
    failed = len(rows) - stored + len(candidates) - len(files)
    if max_rejected is not None and failed > max_rejected:
        raise ClaimedError(f"max_rejected: {failed} file(s) not stored on {server.name}, more than {max_rejected}")
    if not stored:
        raise ClaimedError(f"dicom: {server.name} stored none of the {len(files)} file(s)")
    log.info("%s: stored %d of %d instance(s)", server.name, stored, len(files))
    return rows
