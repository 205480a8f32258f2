"""Artifacts are URIs (local path, ``file://``, ``s3://``, any fsspec protocol); writes are atomic."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claimed_airflow.core.errors import ClaimedError

_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_QUERY_PROTOCOLS = ("http", "https")  # where '?' starts a query, not a glob
REDACTED = "***"
QUERY_SCHEMES = ("dicomweb", "dicomweb+http", "dicomweb+https", "dicom")  # PACS queries, not files


@dataclass(frozen=True)
class Scope:
    """Where a task's outputs live: ``<root>/<dag_id>/<run_id>/<task_id>``."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def parts(self) -> list[str]:
        task = self.task_id if self.map_index < 0 else f"{self.task_id}_{self.map_index}"
        return [safe_name(self.dag_id), safe_name(self.run_id), safe_name(task)]


def safe_name(text: str) -> str:
    """A path segment safe on every filesystem and object store (run ids contain ':' and '+')."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def default_root() -> str:
    """Output root from ``CLAIMED_OUTPUT_ROOT``; default ``./claimed-artifacts``."""
    return os.environ.get("CLAIMED_OUTPUT_ROOT") or str(Path("claimed-artifacts").resolve())


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
    secrets = []
    rest, _, fragment = rest.partition("#")
    rest, has_query, query = rest.partition("?")
    at = rest.rfind("@")
    slash = rest.find("/")
    # userinfo ends at the last '@' of the authority; a secret key may contain '/', so an '@' after a '/'
    # still counts when what precedes it has a ':' (``key:se/cret@bucket``), as a path rarely does
    if at >= 0 and (slash < 0 or at < slash or ":" in rest[:at]):
        secrets.append(rest[:at])
        secrets += rest[:at].split(":", 1)[1:]
        rest = f"{REDACTED}{rest[at:]}"
    if has_query:
        items = []
        for item in query.split("&"):
            name, equals, value = item.partition("=")
            if not equals:
                name, value = REDACTED, name
            secrets.append(value)
            items.append(f"{name}={REDACTED}" if equals else REDACTED)
        rest = f"{rest}?{'&'.join(items)}"
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
    if fs.isdir(uri):
        fs.get(uri.rstrip("/") + "/", str(target) + "/", recursive=True)
    elif _is_glob(uri):
        fs.get(uri, str(target))
    else:
        fs.get_file(uri, str(target))  # one file, whatever its name holds (a signed URL's '?' is no glob)
    return str(target)


def commit(local: str | Path, uri: str) -> None:
    """Move a finished local file or folder to ``uri`` so that readers never see a partial artifact.

    Local targets: copy to a temporary sibling, then rename over the target (a retried task replaces
    the previous attempt's artifact in one step). Remote targets: upload; the manifest written last
    by the runner is the commit marker there.
    """
    local = Path(local)
    if is_local(uri):
        target = Path(local_path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        if local.is_dir():
            shutil.copytree(local, staging)
        else:
            shutil.copy2(local, staging)
        if target.exists() and (target.is_dir() or staging.is_dir()) and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)  # a folder (or a file becoming a folder) cannot be replaced in one step
            os.rename(staging, target)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(staging, target)
        return
    fs = filesystem(uri)
    if fs.exists(uri):
        fs.rm(uri, recursive=True)
    if local.is_dir():
        fs.put(str(local) + "/", uri.rstrip("/") + "/", recursive=True)
    else:
        fs.put(str(local), uri)


def write_json(uri: str, data: Any) -> None:
    """Write JSON atomically (temporary name then rename locally; one PUT remotely)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    if is_local(uri):
        target = Path(local_path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
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


def content_hash(path: str | Path) -> str | None:
    """``sha256:<hex>`` of a file, or of a folder (sorted relative names and file hashes); None if absent."""
    path = Path(path)
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
