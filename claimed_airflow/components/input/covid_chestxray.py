"""Read the COVID-19 chest X-ray collection layout (ieee8023/covid-chestxray-dataset)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from claimed_airflow.core import OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import inside
from claimed_airflow.core.tables import require_columns

SCHEMES = ("http", "https", "s3", "file")
REQUIRED_COLUMNS = ("filename", "finding", "view", "modality")
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")
MAX_ARCHIVE_BYTES = 8 * 1024**3  # the full ieee8023 repository unpacks to about 1 GB
MAX_ARCHIVE_MEMBERS = 100_000  # it has about 1,000 files
_CHUNK = 1024 * 1024


@component("input")
def covid_chestxray(
    source: str,
    views: list[str] | None = None,
    modalities: list[str] | None = None,
    findings: list[str] | None = None,
    timeout: float = 60.0,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    max_archive_members: int = MAX_ARCHIVE_MEMBERS,
    metadata: OutputPath = "metadata.csv",
    images: OutputPath = "images",
) -> dict:
    """Read the COVID-19 chest X-ray collection (metadata.csv + images/) and sort its images by finding.

    The source is the layout of ieee8023/covid-chestxray-dataset: a ``metadata.csv`` (patientid, sex,
    age, finding, view, modality, folder, filename, ...) beside the image folder. It may be a local
    folder, a ``file://``, ``http(s)://`` or ``s3://`` URI of that folder or of a .zip/.tar(.gz)
    archive of it. Rows are filtered by view, modality and finding; the images are copied to
    ``images/<label>/`` and the metadata gets ``label`` and ``image`` (the path under ``images``),
    ready for ``input.images_to_dicom`` (``filename_column="image"``) or training. Rows whose image is
    missing, or whose ``folder``/``filename`` leads out of the dataset (``..``, an absolute path, a
    symbolic link pointing elsewhere), are reported and left out. Downloads and archives are unpacked
    in a temporary folder that is removed afterwards, failure included; an archive larger than the
    limits below, or with a member outside its root or a link, is refused.

    :param source: Folder, archive or URI (file://, http(s)://, s3://) of the dataset layout.
    :param views: Keep these views only (e.g. PA, AP, "AP Supine"); empty keeps all.
    :param modalities: Keep these modalities only (e.g. X-ray, CT); empty keeps all.
    :param findings: Keep rows whose finding (or one of its ``/``-separated parts, e.g. COVID-19 in
        Pneumonia/Viral/COVID-19) is one of these; it becomes the label. Empty keeps all, labelled by
        the last part of the finding.
    :param timeout: Seconds to wait for a remote source.
    :param max_archive_bytes: Most bytes a download and its unpacked archive may take (default 8 GiB).
    :param max_archive_members: Most files and folders an archive may have (default 100,000).
    :param metadata: The filtered metadata table (CSV) with ``label`` and ``image`` columns.
    :param images: The images, one folder per label.
    """
    import pandas as pd

    if max_archive_bytes <= 0 or max_archive_members <= 0:
        raise ClaimedError("max_archive_bytes, max_archive_members: must be positive")
    limits = (max_archive_bytes, max_archive_members)
    with tempfile.TemporaryDirectory(prefix="claimed-chestxray-", ignore_cleanup_errors=True) as tmp:
        root = _dataset_root(_fetch(source, Path(tmp), timeout, max_archive_bytes), source, Path(tmp), limits)
        real_root = root.resolve()
        try:
            frame = pd.read_csv(root / "metadata.csv")
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ClaimedError(f"source: metadata.csv of {source} is not a readable CSV table: {exc}") from None
        require_columns(frame, REQUIRED_COLUMNS, param=f"source: metadata.csv of {source}")
        total = len(frame)
        if views:
            frame = frame[_isin(frame["view"], views)]
        if modalities:
            frame = frame[_isin(frame["modality"], modalities)]
        frame = frame.assign(label=[_label(str(f), findings) for f in frame["finding"]])
        frame = frame[frame["label"].notna()]
        out = Path(images)
        out.mkdir(parents=True, exist_ok=True)
        kept, paths, taken = [], [], set()
        progress = Progress("chest X-ray images", len(frame))
        for index, row in frame.iterrows():
            progress.advance()
            folder = str(row["folder"]) if "folder" in frame.columns and pd.notna(row.get("folder")) else "images"
            filename = str(row["filename"])
            item = f"row {index} ({filename!r})"
            try:
                image = inside(real_root, folder, filename)
            except ClaimedError as exc:
                reject(item, f"leads out of the dataset: {exc}")
                continue
            if not image.is_file():
                reject(filename, f"image not found under {folder}/")
                continue
            relative = f"{_safe(row['label'])}/{Path(filename).name}"
            if relative in taken:
                reject(item, f"another row already gave the image {relative}")
                continue
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, out / relative)
            kept.append(index)
            paths.append(relative)
            taken.add(relative)
        frame = frame.loc[kept].assign(image=paths)
        if frame.empty:
            raise ClaimedError(
                f"no rows left after filtering {total} rows of {source} "
                f"(views={views}, modalities={modalities}, findings={findings})"
            )
        frame.to_csv(metadata, index=False)
    counts = frame["label"].value_counts().to_dict()
    return {"rows_in": total, "rows_out": len(frame), "labels": {str(k): int(v) for k, v in sorted(counts.items())}}


def _isin(column, wanted: list[str]):
    wanted = {w.strip().lower() for w in wanted}
    return column.astype(str).str.strip().str.lower().isin(wanted)


def _label(finding: str, findings: list[str] | None) -> str | None:
    parts = [p.strip() for p in finding.split("/") if p.strip()]
    if not findings:
        return parts[-1] if parts else None
    lowered = {p.lower() for p in [finding.strip(), *parts]}
    for wanted in findings:
        if wanted.strip().lower() in lowered:
            return wanted.strip()
    return None


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("._") or "_"


def _fetch(source: str, tmp: Path, timeout: float, max_bytes: int = MAX_ARCHIVE_BYTES) -> Path:
    """A local folder or archive for ``source`` (downloaded into ``tmp`` when remote)."""
    scheme = urllib.parse.urlparse(source).scheme.lower() if "://" in source else "file"
    if scheme not in SCHEMES:
        raise ClaimedError(f"source: scheme {scheme!r} of {source} is not supported; use http(s)://, s3:// or file://")
    if scheme == "file":
        path = Path(source[len("file://") :] if source.startswith("file://") else source).expanduser()
        if not path.exists():
            raise ClaimedError(f"source: {source} does not exist")
        return path
    if scheme in ("http", "https"):
        name = Path(urllib.parse.urlparse(source).path).name or "download"
        target = tmp / name
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response, open(target, "wb") as handle:
                _copy_capped(response, handle, max_bytes, f"source: download of {source}")
        except urllib.error.HTTPError as exc:
            raise ClaimedError(f"source: cannot fetch {source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ClaimedError(f"source: cannot fetch {source}: {reason}") from None
        return target
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(source)
        if fs.isdir(path):
            prefix = path.rstrip("/") + "/"
            found = fs.find(prefix, detail=True)
            if len(found) > MAX_ARCHIVE_MEMBERS or sum(int(f.get("size") or 0) for f in found.values()) > max_bytes:
                raise ClaimedError(f"source: {source} has more than {MAX_ARCHIVE_MEMBERS} files or {max_bytes} bytes")
            for key in found:
                _member_name(key.removeprefix(prefix), source)  # no key may land outside the folder
            fs.get(prefix, str(tmp / "dataset") + "/", recursive=True)
            return tmp / "dataset"
        target = tmp / Path(path).name
        fs.get(path, str(target))
        return target
    except (OSError, ValueError) as exc:
        raise ClaimedError(f"source: cannot fetch {source}: {exc}") from None


def _copy_capped(reader, writer, budget: int, what: str, limit: int | None = None) -> int:
    """Copy in chunks; a :class:`ClaimedError` once more than ``budget`` bytes came. Returns the bytes copied."""
    copied = 0
    while chunk := reader.read(_CHUNK):
        copied += len(chunk)
        if copied > budget:
            raise ClaimedError(f"{what} exceeds max_archive_bytes ({limit or budget} bytes)")
        writer.write(chunk)
    return copied


def _member_name(name: str, source: str) -> Path:
    """The relative path of an archive member; refuses absolute names, drive letters and ``..``."""
    path = Path(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise ClaimedError(f"source: archive {source} has an unsafe member {name!r} (absolute or '..')")
    return path


def _extract(path: Path, folder: Path, source: str, limits: tuple[int, int]) -> None:
    """Unpack a zip or tar archive into ``folder``: members checked, total size and count capped while writing."""
    import stat

    max_bytes, max_members = limits
    budget, count = max_bytes, 0

    def counted() -> None:
        nonlocal count
        count += 1
        if count > max_members:
            raise ClaimedError(f"source: archive {source} has more than max_archive_members ({max_members}) members")

    folder.mkdir()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                counted()
                target = folder / _member_name(info.filename, source)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ClaimedError(f"source: archive {source} has a symbolic link {info.filename!r}")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as reader, open(target, "wb") as writer:
                    budget -= _copy_capped(reader, writer, budget, f"source: archive {source}", max_bytes)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive:  # read one header at a time: the count is checked before all are listed
                counted()
                _member_name(member.name, source)
                if not (member.isfile() or member.isdir()):
                    raise ClaimedError(f"source: archive {source} has a link or special file {member.name!r}")
                budget -= member.size
                if budget < 0:
                    raise ClaimedError(f"source: archive {source} exceeds max_archive_bytes ({max_bytes} bytes)")
                archive.extract(member, folder, filter="data")
    else:
        raise ClaimedError(f"source: {source} is neither a folder nor a {'/'.join(ARCHIVES)} archive")


def _dataset_root(path: Path, source: str, tmp: Path, limits: tuple[int, int]) -> Path:
    """The folder holding metadata.csv: ``path`` itself, an archive unpacked in ``tmp``, or one level below."""
    if path.is_file():
        folder = tmp / "extracted"
        try:
            _extract(path, folder, source, limits)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise ClaimedError(f"source: archive {source} cannot be read: {exc}") from None
        path = folder
    if (path / "metadata.csv").is_file():
        return path
    below = [p.parent for p in path.glob("*/metadata.csv")]
    if len(below) == 1:
        return below[0]
    raise ClaimedError(f"source: {source} has no metadata.csv (expected the ieee8023 layout: metadata.csv + images/)")
