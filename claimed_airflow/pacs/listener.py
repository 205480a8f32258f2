"""``claimed-airflow listen``: a DICOM listener (C-STORE SCP) that lands studies and starts one run per study.

A PACS or a modality sends studies to it (C-STORE). Each instance is written atomically to
``<landing>/<study key>/<instance key>.dcm``, where a key is a hash of the UID (UIDs never become paths
or log lines); the landing area is a local folder (a hidden temporary name, then a rename) or an object-
store prefix such as ``s3://bucket/landing`` (one PUT per file), by default ``<output_root>/landing``. A
study is complete when no instance of it arrived for ``settle`` seconds; the listener then starts one
run of the DAG (``dicom_inference``) through Airflow's REST API with the run id :func:`study_run_id`
(``study__<study key>``). Airflow refuses a second run with that id (409), so a study is started exactly
once whatever happens to the listener: a restart rescans the landing area and starts the complete
studies not yet started; a study whose run already exists counts as started. The run's conf::

    {"study_instance_uid": "<uid>", "source": "<landing>/<study key>", "arrived_at": "<ISO time>",
     "destination": "<--destination, if given>", ...--conf}

Per study folder, hidden files (which ``input.dicom`` skips): ``.study.json`` (the study's UID, for a
rescan) and ``.started`` (written once Airflow has the run: it saves a request per old study on restart;
Airflow's run id, not this file, is what makes a start happen once).

Nothing heavy is imported here at module level: pynetdicom and requests (the ``pacs`` extra) load when used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.query import _UID, instance_file
from claimed_airflow.pacs.servers import check_ae_title

log = logging.getLogger("claimed_airflow.listener")

RUN_PREFIX = "study__"
STUDY_FILE = ".study.json"
STARTED_FILE = ".started"
DEFAULT_DAG = "dicom_inference"
# DIMSE statuses of a C-STORE
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


def study_key(study_instance_uid: str) -> str:
    """The study's folder name and log name: a hash of its UID (never the UID itself)."""
    return hashlib.sha256(study_instance_uid.encode()).hexdigest()[:32]


def study_run_id(study_instance_uid: str) -> str:
    """The one DAG run id of a study (``study__<study key>``): Airflow refuses a second run with it."""
    return RUN_PREFIX + study_key(study_instance_uid)


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` to ``path``: a hidden temporary file in the same folder, flushed to disk, then renamed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class Landing:
    """The landing area, one sub-folder per study: a local folder, or a prefix of an object store (any fsspec URI,
    e.g. ``s3://bucket/landing``; credentials as for ``output_root``: the environment or the filesystem's config).

    Each file is written atomically: locally a hidden temporary name, flushed, then renamed; on an object
    store one PUT (an object becomes visible whole or not at all, so a temporary name and a copy would add
    nothing but a second write).
    """

    def __init__(self, root: str | Path) -> None:
        from claimed_airflow.core import storage

        text = str(root)
        self.local = storage.is_local(text)
        self.root: Path | str = Path(storage.local_path(text)) if self.local else text.rstrip("/")
        self._fs = None
        self._known: set[str] = set()  # studies whose .study.json this process has seen (saves a request each)

    @property
    def fs(self):
        if self._fs is None:
            from claimed_airflow.core import storage

            self._fs = storage.filesystem(self.root)
        return self._fs

    def folder(self, key: str) -> Path | str:
        return self.root / key if self.local else f"{self.root}/{key}"

    def location(self, key: str) -> str:
        """The study's folder as a run reads it: an absolute path, or the object-store URI."""
        return str(self.folder(key).resolve()) if self.local else self.folder(key)

    def _put(self, folder: Path | str, name: str, data: bytes) -> None:
        if self.local:
            _write_atomically(folder / name, data)
        else:
            self.fs.pipe_file(f"{folder}/{name}", data)  # one PUT

    def _exists(self, folder: Path | str, name: str) -> bool:
        return (folder / name).exists() if self.local else self.fs.exists(f"{folder}/{name}")

    def prepare(self) -> None:
        """Create the landing folder (an object store needs none)."""
        if self.local:
            self.root.mkdir(parents=True, exist_ok=True)

    def write(self, study_uid: str, sop_uid: str, data: bytes) -> str:
        """Write one instance (atomically); the study's key."""
        key = study_key(study_uid)
        folder = self.folder(key)
        if self.local:
            folder.mkdir(parents=True, exist_ok=True)
        if key not in self._known and not self._exists(folder, STUDY_FILE):
            self._put(folder, STUDY_FILE, json.dumps({"study_instance_uid": study_uid}).encode())
        self._known.add(key)
        self._put(folder, instance_file(sop_uid), data)
        return key

    def study_uid(self, key: str) -> str:
        folder = self.folder(key)
        text = (folder / STUDY_FILE).read_text() if self.local else self.fs.cat_file(f"{folder}/{STUDY_FILE}")
        return json.loads(text)["study_instance_uid"]

    def started(self, key: str) -> bool:
        return self._exists(self.folder(key), STARTED_FILE)

    def mark_started(self, key: str, run_id: str) -> None:
        self._put(self.folder(key), STARTED_FILE, run_id.encode())

    def instances(self, key: str) -> list[str]:
        """The names of the study's instance files."""
        if self.local:
            return [p.name for p in self.folder(key).glob("*.dcm") if not p.name.startswith(".")]
        self.fs.invalidate_cache(self.folder(key))
        names = (p.rsplit("/", 1)[-1] for p in self.fs.ls(self.folder(key), detail=False))
        return [n for n in names if n.endswith(".dcm") and not n.startswith(".")]

    def unstarted(self) -> dict[str, float]:
        """Study key -> time of its newest instance (epoch seconds), of every study not marked started."""
        found: dict[str, float] = {}
        if self.local:
            for folder in self.root.iterdir() if self.root.is_dir() else ():
                if folder.is_dir() and (folder / STUDY_FILE).exists() and not (folder / STARTED_FILE).exists():
                    times = [p.stat().st_mtime for p in folder.glob("*.dcm") if not p.name.startswith(".")]
                    if times:
                        found[folder.name] = max(times)
            return found
        self.fs.invalidate_cache(self.root)
        if not self.fs.exists(self.root):
            return found
        studies: dict[str, dict[str, float]] = {}
        root = self.fs._strip_protocol(self.root).rstrip("/")
        for path, info in self.fs.find(root, detail=True).items():
            key, _, name = path[len(root) + 1 :].partition("/")
            if key and name and "/" not in name:
                studies.setdefault(key, {})[name] = _modified(info)
        for key, files in studies.items():
            times = [t for n, t in files.items() if n.endswith(".dcm") and not n.startswith(".")]
            if STUDY_FILE in files and STARTED_FILE not in files and times:
                found[key] = max(times)
        return found


def _modified(info: dict) -> float:
    """An fsspec entry's modification time (epoch seconds): S3's ``LastModified``, else ``mtime``/``created``."""
    value = info.get("LastModified") or info.get("mtime") or info.get("created") or 0
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass
class AirflowApi:
    """Airflow 3's public REST API: ``POST /api/v2/dags/{dag_id}/dagRuns`` with a JWT from ``/auth/token``.

    Credentials: a ready ``token``, else ``username``/``password`` (``POST /auth/token``), else none
    (``GET /auth/token``: an Airflow whose simple auth manager makes everyone admin). Never shown.
    """

    url: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    _client: Any = field(default=None, repr=False)
    _fixed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self._fixed = bool(self.token)

    def _http(self):
        if self._client is None:
            import requests

            self._client = requests.Session()
        return self._client

    def _request(self, method: str, path: str, **kwargs):
        """One request to the API (``path`` under its base URL)."""
        return self._http().request(method, self.url + path, timeout=self.timeout, **kwargs)

    def _login(self) -> None:
        if self.username:
            body = {"username": self.username, "password": self.password or ""}
            answer = self._request("POST", "/auth/token", json=body)
        else:
            answer = self._request("GET", "/auth/token")
        if answer.status_code not in (200, 201):
            status = answer.status_code
            raise ClaimedError(f"Airflow API {self.url}: /auth/token answered {status} (check the credentials)")
        self.token = answer.json()["access_token"]

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> bool:
        """Start run ``run_id`` of ``dag_id``: True if started now, False if Airflow already has it (409).

        Raises ClaimedError for any other answer (the caller tries again later).
        """
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        for attempt in (1, 2):
            if not self.token:
                self._login()
            answer = self._request(
                "POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body, headers={"Authorization": f"Bearer {self.token}"}
            )
            if answer.status_code == 401 and attempt == 1 and not self._fixed:
                self.token = None  # expired: log in again once
                continue
            break
        if answer.status_code in (200, 201):
            return True
        if answer.status_code == 409:
            return False
        detail = ""
        try:
            detail = str(answer.json().get("detail", ""))[:200]
        except ValueError:
            pass
        raise ClaimedError(f"Airflow API: starting a run of {dag_id} answered {answer.status_code} {detail}".rstrip())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def api_from_connection(conn_id: str | None) -> AirflowApi:
    """The Airflow API of connection ``conn_id`` (host = base URL, login/password, or extra ``token``), else the
    environment: ``CLAIMED_AIRFLOW_API_URL`` and ``CLAIMED_AIRFLOW_API_TOKEN`` or
    ``CLAIMED_AIRFLOW_API_USERNAME``/``CLAIMED_AIRFLOW_API_PASSWORD``."""
    from claimed_airflow.core.credentials import from_connection, mask

    def read(name: str) -> AirflowApi:
        from claimed_airflow.version_compat import BaseHook

        conn = BaseHook.get_connection(name)
        if not conn.host:
            raise ClaimedError(f"airflow_conn_id: connection {name!r} has no host (the Airflow API's base URL)")
        url = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
        if conn.port and url.count(":") < 2:
            url = f"{url}:{conn.port}"
        token = (conn.extra_dejson or {}).get("token")
        mask(conn.password, token)
        return AirflowApi(url=url, username=conn.login, password=conn.password, token=token)

    def environment() -> AirflowApi | None:
        url = os.environ.get("CLAIMED_AIRFLOW_API_URL")
        if not url:
            return None
        token, password = os.environ.get("CLAIMED_AIRFLOW_API_TOKEN"), os.environ.get("CLAIMED_AIRFLOW_API_PASSWORD")
        mask(token, password)
        user = os.environ.get("CLAIMED_AIRFLOW_API_USERNAME")
        return AirflowApi(url=url, username=user, password=password, token=token)

    return from_connection(
        conn_id,
        read,
        kind="Airflow API",
        environment=environment,
        hint="or set CLAIMED_AIRFLOW_API_URL (and CLAIMED_AIRFLOW_API_TOKEN or _USERNAME/_PASSWORD)",
        param="airflow_conn_id",
    )


class Listener:
    """The C-STORE SCP, the landing area and the starter of runs (``serve`` runs it until ``stop``)."""

    def __init__(
        self,
        landing: str | Path,
        start_run: Callable[[str, str, dict], bool],
        *,
        ae_title: str = "CLAIMED",
        port: int = 11112,
        bind: str = "127.0.0.1",
        allowed_calling: list[str] | None = None,
        settle: float = 10.0,
        dag_id: str = DEFAULT_DAG,
        conf: dict | None = None,
        retry: float = 10.0,
    ) -> None:
        self.landing = Landing(landing)
        self.start_run = start_run  # (dag_id, run_id, conf) -> started now (True) or already (False)
        self.ae_title = check_ae_title(ae_title, "ae_title")
        self.port, self.bind = port, bind
        self.allowed = [check_ae_title(a, "allow") for a in allowed_calling or []]
        if settle <= 0:
            raise ClaimedError(f"settle: {settle!r} is not a positive number of seconds")
        self.settle, self.dag_id, self.conf, self.retry = settle, dag_id, dict(conf or {}), retry
        self.pending: dict[str, float] = {}  # study key -> time of its newest instance (a cache of the landing area)
        self.not_before: dict[str, float] = {}  # study key -> when to try again after a failed start
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.counts = {"instances": 0, "refused": 0, "started": 0, "already": 0, "late": 0}
        self.late: set[str] = set()  # studies whose late instances were logged
        self.server = None

    # --- receiving -------------------------------------------------------------------------------
    def on_store(self, event) -> int:
        """EVT_C_STORE: land the instance; a DIMSE status."""
        calling = event.assoc.requestor.ae_title
        try:
            sop_uid = str(event.request.AffectedSOPInstanceUID or "")
            study_uid = str(event.dataset.get("StudyInstanceUID", "") or "").strip("\0 ")
        except Exception as exc:  # noqa: BLE001 - a peer's undecodable data set is refused, not fatal
            return self._refuse(calling, f"data set cannot be decoded ({type(exc).__name__})")
        if not _UID.fullmatch(study_uid) or not _UID.fullmatch(sop_uid):
            return self._refuse(calling, "no valid StudyInstanceUID/SOPInstanceUID")
        try:
            key = self.landing.write(study_uid, sop_uid, event.encoded_dataset())
        except Exception as exc:  # noqa: BLE001 - a full disk, an object store that refuses: the sender retries
            why = getattr(exc, "strerror", None) or type(exc).__name__
            log.error("an instance from %s could not be written to the landing area: %s", calling, why)
            return OUT_OF_RESOURCES
        now = time.time()
        with self.lock:
            self.counts["instances"] += 1
            if self.landing.started(key):
                self.counts["late"] += 1
                if key not in self.late:  # once per study
                    self.late.add(key)
                    log.warning(
                        "study %s: instances arrived after its run was started; not started again "
                        "(delete run %s%s in Airflow and resend to read it again)",
                        key,
                        RUN_PREFIX,
                        key,
                    )
            else:
                self.pending[key] = now
        return SUCCESS

    def _refuse(self, calling: str, why: str) -> int:
        with self.lock:
            self.counts["refused"] += 1
        log.warning("refused an instance from %s: %s", calling, why)
        return CANNOT_UNDERSTAND

    # --- starting runs ---------------------------------------------------------------------------
    def due(self, now: float | None = None) -> list[str]:
        """The pending studies with no new instance for ``settle`` seconds (and no retry waiting)."""
        now = time.time() if now is None else now
        with self.lock:
            return sorted(
                key
                for key, last in self.pending.items()
                if now - last >= self.settle and self.not_before.get(key, 0) <= now
            )

    def start(self, key: str) -> None:
        """Start the run of study ``key`` (or find it started); on failure try again ``retry`` s later."""
        run_id = RUN_PREFIX + key
        with self.lock:
            last = self.pending.get(key)
        if last is None:
            return
        try:
            conf = {
                **self.conf,
                "study_instance_uid": self.landing.study_uid(key),
                "source": self.landing.location(key),
                "arrived_at": datetime.fromtimestamp(last, UTC).isoformat(),
            }
            now = self.start_run(self.dag_id, run_id, conf)
        except (ClaimedError, OSError, ValueError) as exc:
            log.error("study %s: run not started, trying again in %g s: %s", key, self.retry, exc)
            with self.lock:
                self.not_before[key] = time.time() + self.retry
            return
        except Exception as exc:  # noqa: BLE001 - an HTTP client's error (connection refused, timeout)
            log.error("study %s: run not started, trying again in %g s: %s", key, self.retry, type(exc).__name__)
            with self.lock:
                self.not_before[key] = time.time() + self.retry
            return
        self.landing.mark_started(key, run_id)
        with self.lock:
            self.pending.pop(key, None)  # an instance that arrived while starting is in the folder the run reads
            self.not_before.pop(key, None)
            self.counts["started" if now else "already"] += 1
        count = len(self.landing.instances(key))
        if now:
            log.info("study %s: complete (%d instances); started run %s of %s", key, count, run_id, self.dag_id)
        else:
            log.info("study %s: complete (%d instances); run %s already exists (started before)", key, count, run_id)

    def rescan(self) -> int:
        """Put every landed study not yet marked started back in the queue (after a restart); how many."""
        found = self.landing.unstarted()
        with self.lock:
            for key, last in found.items():
                self.pending[key] = max(last, self.pending.get(key, 0))
        return len(found)

    # --- serving ---------------------------------------------------------------------------------
    def open(self) -> None:
        """Start the SCP (in its own threads)."""
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # at INFO it logs every identifier (patient data)
        self.landing.prepare()
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        if self.allowed:
            ae.require_calling_aet = self.allowed
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.maximum_pdu_size = 0  # no limit
        self.server = ae.start_server(
            (self.bind, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)]
        )
        self.port = self.server.server_address[1]

    def serve(self, tick: float | None = None) -> None:
        """Rescan, open the SCP and start the complete studies' runs until :meth:`stop`."""
        from claimed_airflow.core.storage import redact

        waiting = self.rescan()
        self.open()
        log.info(
            "listening as %s on %s:%d; landing area %s; a study is complete after %g s without an instance; "
            "%d landed studies not yet started",
            self.ae_title,
            self.bind,
            self.port,
            redact(str(self.landing.root)),
            self.settle,
            waiting,
        )
        tick = tick or min(1.0, self.settle / 4)
        try:
            while not self.stopped.wait(tick):
                for key in self.due():
                    self.start(key)
        finally:
            self.server.shutdown()
            log.info("stopped; %s", ", ".join(f"{name} {n}" for name, n in self.counts.items()))

    def stop(self, *_: Any) -> None:
        self.stopped.set()


def register(commands: argparse._SubParsersAction) -> None:
    listen = commands.add_parser(
        "listen",
        help="a DICOM listener (C-STORE SCP): land studies, start one dicom_inference run per complete study",
        description="Receive studies by C-STORE, write them to a landing folder and start one Airflow run per "
        "study (run id study__<hash of the StudyInstanceUID>) once no instance arrived for --settle seconds. "
        "Runs until SIGTERM/SIGINT; a restart starts the complete studies not yet started.",
    )
    listen.add_argument(
        "--landing",
        help="landing area, one sub-folder per study: a folder or an object-store URI (s3://bucket/landing, any "
        "fsspec URI); default: <output_root>/landing (the claimed output_root setting, e.g. $CLAIMED_OUTPUT_ROOT)",
    )
    listen.add_argument("--ae-title", default="CLAIMED", help="our AE title (default CLAIMED)")
    listen.add_argument("--port", type=int, default=11112, help="port (default 11112)")
    listen.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    listen.add_argument(
        "--allow", action="append", default=[], metavar="AET", help="a calling AE title allowed to send (default any)"
    )
    listen.add_argument(
        "--settle", type=float, default=10.0, help="seconds without a new instance after which a study is complete"
    )
    listen.add_argument("--dag-id", default=DEFAULT_DAG, help=f"the DAG to start (default {DEFAULT_DAG})")
    listen.add_argument(
        "--airflow-conn-id",
        help="Airflow connection of the Airflow API (host: base URL; login/password or extra token); "
        "default: $CLAIMED_AIRFLOW_API_URL with $CLAIMED_AIRFLOW_API_TOKEN or _USERNAME/_PASSWORD",
    )
    listen.add_argument("--destination", help="the run's destination (where the SR goes: a connection id or URI)")
    listen.add_argument("--conf", default="{}", help="more run conf as a JSON object (e.g. the model)")
    listen.set_defaults(func=listen_command)


def listen_command(args: argparse.Namespace) -> None:
    from claimed_airflow.core import storage

    try:
        conf = json.loads(args.conf)
    except ValueError as exc:
        raise ClaimedError(f"--conf: not JSON ({exc})") from None
    if not isinstance(conf, dict):
        raise ClaimedError("--conf: not a JSON object")
    if args.destination:
        conf["destination"] = args.destination
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = api_from_connection(args.airflow_conn_id)
    listener = Listener(
        args.landing or storage.join(storage.default_root(), "landing"),
        api.trigger,
        ae_title=args.ae_title,
        port=args.port,
        bind=args.bind,
        allowed_calling=args.allow,
        settle=args.settle,
        dag_id=args.dag_id,
        conf=conf,
    )
    signal.signal(signal.SIGTERM, listener.stop)
    signal.signal(signal.SIGINT, listener.stop)
    try:
        listener.serve()
    finally:
        api.close()
