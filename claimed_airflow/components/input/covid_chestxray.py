"""Read the COVID-19 chest X-ray collection layout (ieee8023/covid-chestxray-dataset)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from claimed_airflow.core import OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError

SCHEMES = ("http", "https", "s3", "file")
REQUIRED_COLUMNS = ("filename", "finding", "view", "modality")
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


@component("input", operator="CovidChestXrayInputOperator")
def covid_chestxray(
    source: str,
    views: list[str] | None = None,
    modalities: list[str] | None = None,
    findings: list[str] | None = None,
    timeout: float = 60.0,
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
    missing are reported and left out.

    :param source: Folder, archive or URI (file://, http(s)://, s3://) of the dataset layout.
    :param views: Keep these views only (e.g. PA, AP, "AP Supine"); empty keeps all.
    :param modalities: Keep these modalities only (e.g. X-ray, CT); empty keeps all.
    :param findings: Keep rows whose finding (or one of its ``/``-separated parts, e.g. COVID-19 in
        Pneumonia/Viral/COVID-19) is one of these; it becomes the label. Empty keeps all, labelled by
        the last part of the finding.
    :param timeout: Seconds to wait for a remote source.
    :param metadata: The filtered metadata table (CSV) with ``label`` and ``image`` columns.
    :param images: The images, one folder per label.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="chestxray-") as tmp:
        root = _dataset_root(_fetch(source, Path(tmp), timeout), source)
        try:
            frame = pd.read_csv(root / "metadata.csv")
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ClaimedError(f"source: metadata.csv of {source} is not a readable CSV table: {exc}") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ClaimedError(
                f"source: metadata.csv of {source} lacks column(s) {', '.join(missing)} "
                f"(has {', '.join(map(str, frame.columns))})"
            )
        total = len(frame)
        if views:
            frame = frame[_isin(frame["view"], views)]
        if modalities:
            frame = frame[_isin(frame["modality"], modalities)]
        frame = frame.assign(label=[_label(str(f), findings) for f in frame["finding"]])
        frame = frame[frame["label"].notna()]
        out = Path(images)
        out.mkdir(parents=True, exist_ok=True)
        kept, paths = [], []
        progress = Progress("chest X-ray images", len(frame))
        for index, row in frame.iterrows():
            folder = str(row["folder"]) if "folder" in frame.columns and pd.notna(row.get("folder")) else "images"
            image = root / folder / str(row["filename"])
            if not image.is_file():
                reject(str(row["filename"]), f"image not found under {folder}/")
            else:
                relative = f"{_safe(row['label'])}/{Path(str(row['filename'])).name}"
                (out / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(image, out / relative)
                kept.append(index)
                paths.append(relative)
            progress.advance()
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


def _fetch(source: str, tmp: Path, timeout: float) -> Path:
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
                shutil.copyfileobj(response, handle)
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
            fs.get(path.rstrip("/") + "/", str(tmp / "dataset") + "/", recursive=True)
            return tmp / "dataset"
        target = tmp / Path(path).name
        fs.get(path, str(target))
        return target
    except (OSError, ValueError) as exc:
        raise ClaimedError(f"source: cannot fetch {source}: {exc}") from None


def _dataset_root(path: Path, source: str) -> Path:
    """The folder holding metadata.csv: ``path`` itself, an extracted archive, or one level below."""
    if path.is_file():
        folder = path.parent / (path.name + ".extracted")
        name = path.name.lower()
        try:
            if name.endswith(".zip") or zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        if member.startswith("/") or ".." in Path(member).parts:
                            raise ClaimedError(f"source: archive {source} has an unsafe member {member!r}")
                    archive.extractall(folder)
            elif tarfile.is_tarfile(path):
                with tarfile.open(path) as archive:
                    archive.extractall(folder, filter="data")
            else:
                raise ClaimedError(f"source: {source} is neither a folder nor a {'/'.join(ARCHIVES)} archive")
        except (zipfile.BadZipFile, tarfile.TarError) as exc:
            raise ClaimedError(f"source: archive {source} cannot be read: {exc}") from None
        path = folder
    if (path / "metadata.csv").is_file():
        return path
    below = [p.parent for p in path.glob("*/metadata.csv")]
    if len(below) == 1:
        return below[0]
    raise ClaimedError(f"source: {source} has no metadata.csv (expected the ieee8023 layout: metadata.csv + images/)")
