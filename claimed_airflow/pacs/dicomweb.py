"""DICOMweb: QIDO-RS search (paged, bounded), WADO-RS retrieve (streamed, capped, concurrent), STOW-RS store."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.query import _UID, INSTANCE_KEYS, MAX_INSTANCES, Instance, Query
from claimed_airflow.pacs.servers import ATTEMPTS, WebServer, backoff

log = logging.getLogger("claimed_airflow")


TRANSIENT = (408, 429, 502, 503, 504)


PAGE = 1000  # QIDO-RS results asked for per request


MAX_PAGES = 100  # QIDO-RS pages of one search (a server that pages forever stops here)


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
                backoff(server.name, what, attempt, f"HTTP {status}")
                continue
            if status in (401, 403):
                raise ClaimedError(
                    f"conn_id: {server.name} refused the credentials for {what} (HTTP {status})"
                ) from None
            raise PacsAnswer(status, f"{server.name}: {what} failed with HTTP {status} {_reason(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt < attempts:
                backoff(server.name, what, attempt, type(exc).__name__)
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
    else:  # studies or series first, then the instances of each
        series = query.level == "series"
        key = "SeriesInstanceUID" if series else "StudyInstanceUID"
        search = client.search_for_series if series else client.search_for_studies
        found = _pages(
            server,
            f"QIDO-RS search for {'series' if series else 'studies'}",
            lambda **page: search(search_filters=filters, **page),
            key,
        )
        groups = (
            instances_of(
                f"QIDO-RS instances of {'series' if series else 'study'} {_value(item, key)}",
                study_instance_uid=_value(item, "StudyInstanceUID"),
                **({"series_instance_uid": _value(item, key)} if series else {}),
            )
            for item in found
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
        body = _FirstPart(response.headers.get("Content-Type", ""), cap)
        for chunk in response.iter_content(1 << 20):
            body.write(chunk)
    data = body.finish()
    if data[128:132] != b"DICM":
        raise SetAside("the server's answer is not a DICOM file (no Part 10 header)")
    return data


class _FirstPart:
    """The first part of a multipart/related answer (the whole body of any other), capped as it streams.

    The parts are split by python-multipart's streaming parser as the chunks arrive (Python's MIME
    parser reads a body line by line: 100 times slower on binary data).
    """

    def __init__(self, content_type: str, cap: int):
        from python_multipart.multipart import MultipartParser, parse_options_header

        self.cap, self.received, self.parts, self.data = cap, 0, 0, bytearray()
        kind, options = parse_options_header(content_type)
        self.parser = None
        if kind.startswith(b"multipart/"):
            if not options.get(b"boundary"):
                raise SetAside("a malformed multipart answer (no boundary)")
            callbacks = {"on_part_begin": self._begin, "on_part_data": self._part}
            self.parser = MultipartParser(options[b"boundary"], callbacks)

    def _begin(self) -> None:
        self.parts += 1

    def _part(self, data: bytes, start: int, end: int) -> None:
        if self.parts == 1:
            self._keep(data[start:end])

    def _keep(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > self.cap:
            raise SetAside(f"larger than the {self.cap} bytes allowed for an instance")

    def write(self, chunk: bytes) -> None:
        """One more chunk of the body."""
        from python_multipart.exceptions import MultipartParseError

        self.received += len(chunk)
        if self.received > self.cap + 65536:  # multipart framing aside
            raise SetAside(f"larger than the {self.cap} bytes allowed for an instance")
        if self.parser is None:
            self._keep(chunk)
            return
        try:
            self.parser.write(chunk)
        except MultipartParseError as exc:
            raise SetAside(f"a malformed multipart answer ({exc})") from None

    def finish(self) -> bytes:
        """The first part (or the body)."""
        if self.parser is not None:
            self.parser.finalize()
            if not self.parts or not self.data:
                raise SetAside("a malformed multipart answer (no readable part)")
        return bytes(self.data)


def _bounded(
    work: Callable[[Instance], Path],
    instances: Iterable[Instance],
    concurrency: int,
    on_error: Callable[[Instance, str], None] | None,
) -> Iterator[tuple[Instance, Path]]:
    """Run ``work`` over ``instances`` in ``concurrency`` threads; yields ``(instance, result)`` as they complete.

    Each thread takes the next instance as soon as it is done with one, so the requests stay in flight
    while the caller handles a result (results are paths: memory stays flat). Closing the generator
    stops the threads after their current instance.
    """
    import queue

    items = iter(instances)
    lock, stop = threading.Lock(), threading.Event()
    results: queue.SimpleQueue = queue.SimpleQueue()
    finished = object()

    def drain() -> None:
        try:
            while not stop.is_set():
                with lock:
                    instance = next(items, None)
                if instance is None:
                    return
                try:
                    results.put((instance, work(instance), None))
                except Exception as exc:  # noqa: BLE001 - handed to the caller's thread below
                    results.put((instance, None, exc))
        finally:
            results.put(finished)

    threads = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="claimed-pacs") as pool:
        for _ in range(threads):
            pool.submit(drain)
        try:
            while threads:
                item = results.get()
                if item is finished:
                    threads -= 1
                    continue
                instance, result, error = item
                if error is None:
                    yield instance, result
                elif on_error is not None and (
                    isinstance(error, SetAside) or (isinstance(error, PacsAnswer) and error.status in (404, 410))
                ):
                    on_error(instance, str(error))
                else:
                    raise error
        finally:
            stop.set()


STORE_CONCURRENCY = 4  # STOW-RS requests in flight


def web_store(server: WebServer, files: list[Path], batch: int = 20, uids: list[str] | None = None) -> dict[str, str]:
    """STOW-RS of ``files``, ``batch`` a request, ``STORE_CONCURRENCY`` requests in flight; the files' bytes
    as they are (nothing decoded or re-encoded). SOPInstanceUID -> "stored" or the server's failure reason.

    ``uids``: the files' SOP Instance UIDs when the caller has them (else read from the headers).
    """
    import threading

    import pydicom

    if uids is None:
        uids = [
            str(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            for p in files
        ]
    local = threading.local()
    url = f"{server.url}/studies"

    def send(start: int) -> dict[str, str]:
        client = getattr(local, "client", None) or setattr(local, "client", server.client()) or local.client
        boundary = uuid.uuid4().hex
        parts = [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes() + b"\r\n"
            for path in files[start : start + batch]
        ]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }

        def post():
            response = client._session.post(url, data=body, headers=headers, timeout=server.timeout)
            if response.status_code != 409:  # 409: none stored, the answer says why
                response.raise_for_status()
            return response

        response = _web_call(server, "STOW-RS store", post)
        try:
            answer = pydicom.Dataset.from_json(response.json()) if response.content else pydicom.Dataset()
        except ValueError:
            answer = pydicom.Dataset()
        found = {str(item.ReferencedSOPInstanceUID): "stored" for item in answer.get("ReferencedSOPSequence", [])}
        for item in answer.get("FailedSOPSequence", []):
            found[str(item.ReferencedSOPInstanceUID)] = f"failed (reason {item.get('FailureReason', '?')})"
        default = "stored" if response.status_code < 300 else f"failed (HTTP {response.status_code})"
        return {uid: found.get(uid, default) for uid in uids[start : start + batch]}

    outcome: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=STORE_CONCURRENCY, thread_name_prefix="claimed-stow") as pool:
        for result in pool.map(send, range(0, len(files), batch)):
            outcome.update(result)
    return outcome
