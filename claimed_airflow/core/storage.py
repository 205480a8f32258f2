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


def filesystem(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri)[0]


def exists(uri: str) -> bool:
    if is_local(uri):
        path = local_path(uri)
        return bool(glob.glob(path)) if _GLOB_CHARS.search(path) else os.path.exists(path)
    fs = filesystem(uri)
    return bool(fs.glob(uri)) if _GLOB_CHARS.search(uri.split("://", 1)[1]) else fs.exists(uri)


def stage_input(name: str, uri: str, workdir: Path) -> str:
    """A local path for input ``name``: local URIs as they are, remote ones downloaded into ``workdir``."""
    if not exists(uri):
        raise ClaimedError(f"{name}: input path does not exist: {uri}")
    if is_local(uri):
        return str(Path(local_path(uri)).expanduser())
    fs = filesystem(uri)
    target = workdir / "inputs" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if fs.isdir(uri):
        fs.get(uri.rstrip("/") + "/", str(target) + "/", recursive=True)
    else:
        fs.get(uri, str(target))
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
