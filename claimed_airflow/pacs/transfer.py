"""A retrieval: search, then fetch into a private folder, yielding each file as it arrives."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.dicomweb import web_fetch, web_search
from claimed_airflow.pacs.dimse import dimse_fetch, dimse_search
from claimed_airflow.pacs.query import Instance, Query
from claimed_airflow.pacs.servers import DimseServer, WebServer

log = logging.getLogger("claimed_airflow")


MAX_CONCURRENCY = 32  # retrieve requests in flight


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
