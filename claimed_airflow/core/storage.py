"""Artifacts are URIs (local path, ``file://``, ``s3://``, any fsspec protocol); writes are atomic."""

from __future__ import annotations

import ctypes
import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.settings import setting

_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_QUERY_PROTOCOLS = ("http", "https")  # where '?' starts a query, not a glob
REDACTED = "***"
WORK_PREFIX = "claimed-work-"
VERSION_MARKER = ".claimed-version"  # claims a version folder (object storage; empty local models)
STALE_AFTER = 60.0  # seconds: a working folder younger than this may still be taking its lock
log = logging.getLogger("claimed_airflow")
QUERY_SCHEMES = ("dicomweb", "dicomweb+http", "dicomweb+https", "dicom")  # PACS queries, not files


@dataclass(frozen=True)
class Scope:
    """Where a task's outputs live: ``<root>/<dag_id>/<run_id>/<task_id>`` (``/<step>``: a component run as a step
    of another in the same task, :func:`claimed_airflow.core.runner.run_step`)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    step: str = ""

    def parts(self) -> list[str]:
        task = self.task_id if self.map_index < 0 else f"{self.task_id}_{self.map_index}"
        parts = [safe_name(self.dag_id), safe_name(self.run_id), safe_name(task)]
        return [*parts, safe_name(self.step)] if self.step else parts


def safe_name(text: str) -> str:
    """A path segment safe on every filesystem and object store (run ids contain ':' and '+'); never ``.``, ``..``
    or hidden (a run id typed into the trigger form may be ``..``)."""
    return _UNSAFE.sub("_", text).strip("_").lstrip(".") or "_"


def default_root() -> str:
    """The ``output_root`` setting (:mod:`claimed_airflow.core.settings`); unset: ``$AIRFLOW_HOME/claimed-artifacts``
    in a process running Airflow (a worker, ``dag.test()``), else ``./claimed-artifacts`` (the CLI, a pod, a KFP
    step). The one definition of the default output root."""
    configured = setting("output_root")
    if configured:
        return str(configured)
    if "airflow" in sys.modules:  # as core.settings tells a process running Airflow (never importing it here)
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        return os.path.join(home, "claimed-artifacts")
    return str(Path("claimed-artifacts").resolve())


def protocol(uri: str) -> str:
    if "://" not in uri:
        return "file"
    return uri.split("://", 1)[0]


def is_local(uri: str) -> bool:
    return protocol(uri) in ("file", "local")


def local_path(uri: str) -> str:
    """The filesystem path of a local URI (plain path or ``file://``)."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def task_uri(root: str, scope: Scope) -> str:
    return join(normalize(root), *scope.parts())


def normalize(uri: str) -> str:
    """Absolute path for local URIs, unchanged for remote ones."""
    return str(Path(local_path(uri)).expanduser().resolve()) if is_local(uri) else uri.rstrip("/")


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a URI: ``file`` + absolute path, ``s3://bucket`` + key, ..."""
    if is_local(uri):
        return "file", normalize(uri)
    scheme, rest = uri.split("://", 1)
    bucket, _, key = rest.partition("/")
    return f"{scheme}://{bucket}", key.rstrip("/")


def redact(text: str) -> str:
    """``text`` with the credentials of every URI in it replaced by ``***``: what logs and manifests record.

    Userinfo (``s3://key:secret@bucket``, ``https://token@host``), every query value (signed URLs:
    ``X-Amz-Signature``, ``sig``, ``token``, ...) and the fragment are replaced; query names stay.
    Works on a URI or on a whole message that contains URIs.
    """
    return _URI.sub(lambda match: _redact_uri(match.group())[0], text) if "://" in text else text


def uri_secrets(text: str) -> list[str]:
    """The credentials :func:`redact` removes from ``text`` (to register with a log masker)."""
    return [secret for match in _URI.finditer(text) for secret in _redact_uri(match.group())[1]]


def redact_values(value: Any) -> Any:
    """:func:`redact` applied to every string inside nested dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_values(item) for item in value)
    return value


def _redact_uri(uri: str) -> tuple[str, list[str]]:
    scheme, rest = uri.split("://", 1)
    # a PACS query (dicomweb://conn?modality=CR, dicom://AET@host:port) carries filters and AE titles, not
    # credentials (input.dicom refuses those): keep them, as masking "CR" would blank it in every log line
    pacs_query = scheme.lower() in QUERY_SCHEMES
    secrets = []
    rest, _, fragment = rest.partition("#")
    rest, has_query, query = rest.partition("?")
    at = rest.rfind("@")
    slash = rest.find("/")
    # userinfo ends at the last '@' of the authority; a secret key may contain '/', so an '@' after a '/'
    # still counts when what precedes it has a ':' (``key:se/cret@bucket``), as a path rarely does
    ae_title = scheme.lower() == "dicom" and ":" not in rest[:at]
    if at >= 0 and (slash < 0 or at < slash or ":" in rest[:at]) and not ae_title:
        secrets.append(rest[:at])
        secrets += rest[:at].split(":", 1)[1:]
        rest = f"{REDACTED}{rest[at:]}"
    if has_query and not pacs_query:
        items = []
        for item in query.split("&"):
            name, equals, value = item.partition("=")
            if not equals:
                name, value = REDACTED, name
            secrets.append(value)
            items.append(f"{name}={REDACTED}" if equals else REDACTED)
        rest = f"{rest}?{'&'.join(items)}"
    elif has_query:
        rest = f"{rest}?{query}"
    if fragment:
        secrets.append(fragment.partition("=")[2] or fragment)
        rest = f"{rest}#{REDACTED}"
    if REDACTED in secrets:  # already redacted
        secrets = [s for s in secrets if s != REDACTED]
    return f"{scheme}://{rest}", [s for s in secrets if s and s != REDACTED]


def _is_glob(uri: str) -> bool:
    path = uri.split("://", 1)[-1]
    if protocol(uri) in _QUERY_PROTOCOLS:
        path = path.split("?", 1)[0]
    return bool(_GLOB_CHARS.search(path))


def filesystem(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri)[0]


def exists(uri: str) -> bool:
    if is_local(uri):
        path = local_path(uri)
        return bool(glob.glob(path)) if _GLOB_CHARS.search(path) else os.path.exists(path)
    fs = filesystem(uri)
    return bool(fs.glob(uri)) if _is_glob(uri) else fs.exists(uri)


def stage_input(name: str, uri: str, workdir: Path) -> str:
    """A local path for input ``name``: local URIs as they are, remote ones downloaded into ``workdir``.

    PACS queries (``dicomweb://``, ``dicom://``, see ``input.dicom``) are passed on unchanged: the
    component searches and retrieves them itself.
    """
    if protocol(uri).lower() in QUERY_SCHEMES:
        return uri
    if not exists(uri):
        raise ClaimedError(f"{name}: input path does not exist: {redact(uri)}")
    if is_local(uri):
        return str(Path(local_path(uri)).expanduser())
    fs = filesystem(uri)
    target = workdir / "inputs" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if _is_glob(uri) and not fs.isdir(uri):
            fs.get(uri, str(target))
        else:  # a file or folder under its own name (readers tell a table's format by its suffix)
            target = target / _file_name(uri, name)
            target.parent.mkdir()
            if fs.isdir(uri):
                fs.get(uri.rstrip("/") + "/", str(target) + "/", recursive=True)
            else:  # one file, whatever its name holds (a signed URL's '?' is no glob)
                fs.get_file(uri, str(target))
    except ValueError as exc:  # fsspec refuses object names with '..' that would land outside the target
        raise ClaimedError(f"{name}: cannot download {redact(uri)}: {redact(str(exc))}") from None
    return str(target)


def stage_files(name: str, uri: str, names: list[str], workdir: Path) -> str:
    """A local folder holding the files ``names`` (paths relative to folder input ``name``): a local folder as it
    is (nothing copied), else only those files downloaded into ``workdir`` (a name missing there stays missing:
    the component reports it). A name leading out of the folder is an error naming it."""
    from claimed_airflow.core.paths import inside

    if not exists(uri):
        raise ClaimedError(f"{name}: input path does not exist: {redact(uri)}")
    if is_local(uri):
        return str(Path(local_path(uri)).expanduser())
    fs = filesystem(uri)
    if not fs.isdir(uri):  # one file: staged whole
        return stage_input(name, uri, workdir)
    target = workdir / "inputs" / name / _file_name(uri, name)
    target.mkdir(parents=True)
    try:
        locals_ = [str(inside(target, item)) for item in names]
    except ClaimedError as exc:
        raise ClaimedError(f"{name}: {exc}") from None
    remotes = [f"{uri.rstrip('/')}/{item}" for item in names]
    try:
        fs.get(remotes, locals_)  # concurrently on an object store
    except FileNotFoundError:  # some are missing: the others one by one
        for remote, local in zip(remotes, locals_, strict=True):
            try:
                fs.get_file(remote, local)
            except FileNotFoundError:
                Path(local).unlink(missing_ok=True)
    return str(target)


def _file_name(uri: str, fallback: str) -> str:
    """The last segment of a remote file's path (no query or fragment of a URL), made a safe file name."""
    if protocol(uri) in _QUERY_PROTOCOLS:
        from urllib.parse import urlsplit

        path = urlsplit(uri).path
    else:
        path = uri.split("://", 1)[-1].partition("/")[2]  # after the bucket or host, never its credentials
    segment = path.rstrip("/").rpartition("/")[2]
    return safe_name(segment) if segment else safe_name(fallback)


def commit(local: str | Path, uri: str, *, move: bool = False) -> None:
    """Move a finished local file or folder to ``uri`` so that readers never see a partial artifact.

    Local targets: copy to a hidden temporary sibling (``move``: renamed there instead where it is on the same
    file system and holds no symbolic link, no byte copied; ``local`` is gone then), then swap it with the
    target in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames) or rename it into
    place, so a retried task replaces the previous attempt's artifact and a reader always finds a complete one.
    Leftovers of a commit that was killed (hidden ``.<name>.tmp-*`` siblings) are removed first.
    Remote targets: upload; if the upload fails, what was written is removed (best effort), and the
    manifest that the runner writes last is the commit marker there.
    """
    local = Path(local)
    if is_local(uri):
        target = Path(local_path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        staging = (move and _stage_move(local, target.parent, target.name)) or _stage_copy(
            local, target.parent, target.name
        )
        if target.exists() or target.is_symlink():
            if _rename2(staging, target, _RENAME_EXCHANGE):
                _remove_path(staging)  # now holds the previous artifact
            elif target.is_dir() or staging.is_dir():
                old = target.with_name(f".{target.name}.tmp-old-{uuid.uuid4().hex[:8]}")
                os.rename(target, old)  # no exchange here: a folder cannot be replaced in one step
                os.rename(staging, target)
                _remove_path(old)
            else:
                os.replace(staging, target)
        else:
            os.replace(staging, target)
        return
    fs = filesystem(uri)
    if fs.exists(uri):
        fs.rm(uri, recursive=True)
    _upload(fs, local, uri)


def _upload(fs, local: Path, uri: str) -> None:
    """Upload a file or folder; if that fails, remove what was written and raise one redacted line."""
    try:
        if local.is_dir():
            fs.put(str(local) + "/", uri.rstrip("/") + "/", recursive=True)
        else:
            fs.put(str(local), uri)
    except Exception as exc:
        remove(uri)
        raise ClaimedError(f"cannot write {redact(uri)}: {redact(' '.join(str(exc).split()))}") from None


def commit_version(local: str | Path, base: str) -> tuple[str, int]:
    """Publish ``local`` as ``<base>/<n>`` with the next free version ``n``; returns its URI and ``n``.

    Local: the copy is staged next to the versions and renamed into place exclusively
    (``renameat2(RENAME_NOREPLACE)``; elsewhere a rename that fails on an existing non-empty folder),
    so concurrent publishers get distinct versions and a version appears only complete.
    Object storage: the version is claimed by creating ``<n>/.claimed-version`` exclusively (a
    conditional PUT, ``If-None-Match: *``, on S3; a check then a write where the store has no such
    write), then the model is uploaded into it; a failed upload removes the version again.
    """
    local = Path(local)
    fs = filesystem(base)
    if not is_local(base):
        for _ in range(1000):
            fs.invalidate_cache()
            version = _next_version(fs, base)
            uri = join(base, str(version))
            if _create_exclusive(fs, join(uri, VERSION_MARKER)):
                _upload(fs, local, uri)
                return uri, version
        raise ClaimedError(f"{redact(base)}: no free version after 1000 tries")
    folder = Path(local_path(base))
    folder.mkdir(parents=True, exist_ok=True)
    staging = _stage_copy(local, folder, "version")
    try:
        for _ in range(1000):
            version = _next_version(fs, str(folder))
            target = folder / str(version)
            try:
                if not _rename2(staging, target, _RENAME_NOREPLACE):
                    if staging.is_dir():
                        if not any(staging.iterdir()):
                            (staging / VERSION_MARKER).touch()  # an empty folder could be renamed over
                        os.rename(staging, target)  # fails on an existing non-empty folder
                    else:
                        os.link(staging, target)  # fails on an existing name
                        staging.unlink()
                return join(normalize(base), str(version)), version
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    raise
        raise ClaimedError(f"{base}: no free version after 1000 tries")
    finally:
        _remove_path(staging)


def _create_exclusive(fs, uri: str) -> bool:
    """Create an empty object unless it exists; False if it did."""
    try:
        fs.pipe_file(uri, b"", mode="create")
    except FileExistsError:
        return False
    except TypeError:  # a filesystem without exclusive creation
        if fs.exists(uri):
            return False
        fs.pipe_file(uri, b"")
    return True


def _next_version(fs, base: str) -> int:
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.glob(base.rstrip("/") + "/*")] if fs.exists(base) else []
    return max((int(n) for n in names if n.isdigit()), default=0) + 1


def _stage_copy(local: Path, parent: Path, name: str) -> Path:
    staging = parent / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    if local.is_dir():
        shutil.copytree(local, staging)
    else:
        shutil.copy2(local, staging)
    return staging


def _stage_move(local: Path, parent: Path, name: str) -> Path | None:
    """``local`` renamed to a hidden staging sibling in ``parent``; None where it holds a symbolic link (a copy
    follows it; moved, it could point into the working folder that is removed) or lies on another file system."""
    if local.is_symlink() or (local.is_dir() and any(p.is_symlink() for p in local.rglob("*"))):
        return None
    staging = parent / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(local, staging)
    except OSError:  # another file system (EXDEV)
        return None
    os.utime(staging)  # fresh: not taken for a killed commit's leftover (_remove_leftovers)
    return staging


def _remove_leftovers(target: Path) -> None:
    """Hidden staging copies of ``target`` left by a commit that was killed (older than STALE_AFTER)."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        try:
            if time.time() - leftover.lstat().st_mtime > STALE_AFTER:
                _remove_path(leftover)
        except OSError:
            continue


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def remove(uri: str) -> None:
    """Remove a file or folder if it exists (best effort on object storage)."""
    if is_local(uri):
        _remove_path(Path(local_path(uri)))
        return
    try:
        fs = filesystem(uri)
        if fs.exists(uri):
            fs.rm(uri, recursive=True)
    except Exception as exc:  # noqa: BLE001 - cleaning up after a failure must not hide that failure
        log.warning("could not remove %s: %s", redact(uri), redact(str(exc)))


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_libc = None


def _rename2(source: Path, target: Path, flags: int) -> bool:
    """Linux ``renameat2``: True when done, False where unsupported; raises OSError (e.g. EEXIST) otherwise."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018 - glibc >= 2.28
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    at_fdcwd = -100
    if _libc.renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # kernel or filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(target))


@contextmanager
def work_dir() -> Iterator[str]:
    """A private working folder for one run (staged inputs, outputs before commit), removed at the end.

    ``<tmp>/claimed-work-*`` holds an exclusive ``flock`` on its ``.lock`` for as long as the run's
    process (or a child it forked) lives; the kernel releases it when they die, even by SIGKILL. So
    each call first removes the folders of killed runs: those whose lock is free (and older than
    ``STALE_AFTER``). The one convention for temporary folders of the core; ``on_kill`` removes the
    folder of a run it ends (``runner.working_folders``).
    """
    parent = Path(tempfile.gettempdir())
    remove_stale_work_dirs(parent)
    folder = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=parent)
    lock = os.open(os.path.join(folder, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        _lock(lock, blocking=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def remove_stale_work_dirs(parent: str | Path | None = None) -> list[str]:
    """Remove the working folders left by killed runs (their lock is free); returns what was removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(WORK_PREFIX + "*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_AFTER:
                continue
            lock = os.open(folder / ".lock", os.O_RDWR)
        except FileNotFoundError:  # a run killed while removing its folder (its lock file went first)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
            continue
        except OSError:
            continue
        try:
            if _lock(lock, blocking=False):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
                log.info("removed the working folder of a killed run: %s", folder)
        finally:
            os.close(lock)
    return removed


def _lock(fd: int, *, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no stale-folder detection
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def write_json(uri: str, data: Any) -> None:
    """Write JSON atomically (temporary name then rename locally; one PUT remotely)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    if is_local(uri):
        target = Path(local_path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        staging.write_text(text)
        os.replace(staging, target)
    else:
        with filesystem(uri).open(uri, "w") as handle:
            handle.write(text)


def read_json(uri: str) -> Any:
    if is_local(uri):
        return json.loads(Path(local_path(uri)).read_text())
    with filesystem(uri).open(uri) as handle:
        return json.load(handle)


def content_hash(path: str | Path, names: list[str] | None = None) -> str | None:
    """``sha256:<hex>`` of a file, or of a folder (sorted relative names and file hashes); None if absent.
    With ``names``: of those files of a folder only (a missing one hashed as missing, one leading out as outside)."""
    path = Path(path)
    if names is not None and path.is_dir():
        from claimed_airflow.core.paths import inside

        digest = hashlib.sha256()
        for name in sorted(set(names)):
            try:  # a name from a table: never a file outside the folder (the component sets it aside)
                file = inside(path, name)
            except ClaimedError:
                digest.update(f"{name}\0outside\n".encode())
                continue
            digest.update(f"{name}\0{_file_digest(file) if file.is_file() else 'missing'}\n".encode())
        return "sha256:" + digest.hexdigest()
    if path.is_file():
        return "sha256:" + _file_digest(path)
    if not path.is_dir():
        matches = sorted(glob.glob(str(path)))
        if not matches:
            return None
        digest = hashlib.sha256()
        for match in matches:
            digest.update(f"{match}\0{content_hash(match)}\n".encode())
        return "sha256:" + digest.hexdigest()
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_digest(file)}\n".encode())
    return "sha256:" + digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
