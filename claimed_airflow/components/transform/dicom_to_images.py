"""Decode DICOM pixel data into normalised 8-bit PNG images, one folder per label."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import (
    DEFAULT_MAX_PIXELS,
    check_frame_size,
    dicom_image,
    fit,
    frame_count,
    frame_size,
    to_uint8,
)
from claimed_airflow.core.paths import inside
from claimed_airflow.core.pool import default_workers, run_jobs

UNLABELLED = "_unlabelled"
INDEX = "index.csv"
SHARDS = "_shards"  # labels starting with "_" are not classes (see train.mobilenet_v2)
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
# imported once by the forkserver, so that each worker starts warm (missing decoders are skipped)
_PRELOAD = ["numpy", "pydicom", "pydicom.pixels", "PIL.Image", "PIL.PngImagePlugin", "openjpeg", "libjpeg", "rle"]


def folder_name(label: str) -> str:
    """A label as a safe folder name (no path separators, no '.'/'..')."""
    name = label.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return name if name.strip(".") else "_" + name


def image_stem(file: str) -> str:
    path = Path(file)
    if path.suffix.lower() in _DICOM_SUFFIXES:
        path = path.with_suffix("")
    return path.as_posix().replace("/", "__")


def convert_file(job: dict) -> dict:
    """Decode one DICOM file and write its PNG(s); runs in a worker process. Never raises.

    Returns ``{"images": [(image, frame, array or None), ...]}`` or ``{"error": reason}``.
    """
    try:
        return {"images": _convert(job)}
    except _Reject as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": "out of memory while decoding"}
    except Exception as exc:  # noqa: BLE001 - any decoder failure sets this file aside
        return {"error": f"pixel data not decodable ({type(exc).__name__}: {exc})"}


def _crashed(job: dict) -> dict:
    return {"error": "the decoder crashed or ran out of memory (its worker process died)"}


class _Reject(Exception):
    pass


def _convert(job: dict) -> list:
    import pydicom
    from pydicom.pixels import iter_pixels

    if job.get("refused"):
        raise _Reject(job["refused"])
    path = Path(job["path"])
    if not path.is_file():
        raise _Reject("file not found in the files folder")
    ds = pydicom.dcmread(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise _Reject("no pixel data")
    try:
        check_frame_size(*frame_size(ds), job["max_pixels"])
    except ValueError as exc:
        raise _Reject(str(exc)) from None
    frames = frame_count(ds)
    size, aspect, windowing = job["size"], job["aspect"], job["windowing"]
    if job["all_frames"]:
        stream = iter_pixels(ds) if frames > 1 else iter([ds.pixel_array])
        images = ((i, fit(to_uint8(ds, i, windowing=windowing, pixels=p), size, aspect)) for i, p in enumerate(stream))
    else:
        index = job["frame"] if job["frame"] >= 0 else frames + job["frame"]
        if not 0 <= index < frames:
            raise _Reject(f"frame {job['frame']} out of range (the file has {frames} frame(s))")
        fast = job["fast_decode"]
        images = iter([(index, dicom_image(ds, size, index, aspect=aspect, windowing=windowing, fast_decode=fast))])
    out, stem, label_dir = Path(job["out"]), job["stem"], job["folder"]
    (out / label_dir).mkdir(exist_ok=True)
    written = []
    for index, image in images:
        name = f"{label_dir}/{stem}_f{index:04d}.png" if job["all_frames"] and frames > 1 else f"{label_dir}/{stem}.png"
        image.save(out / name, compress_level=job["compress_level"])
        if job["shards"]:
            import numpy as np

            written.append((name, index, np.asarray(image)))
        else:
            written.append((name, index, None))
    return written


class _ShardWriter:
    def __init__(self, folder: Path, size: int):
        self.folder, self.size = folder, size
        self.count = 0
        self.arrays, self.names, self.labels = [], [], []

    def add(self, array, name: str, label: str) -> None:
        self.arrays.append(array)
        self.names.append(name)
        self.labels.append(label)
        if len(self.arrays) >= self.size:
            self.flush()

    def flush(self) -> None:
        import numpy as np

        if not self.arrays:
            return
        self.folder.mkdir(exist_ok=True)
        np.savez(
            self.folder / f"shard-{self.count:05d}.npz",
            images=np.stack(self.arrays),
            image=np.array(self.names),
            label=np.array(self.labels),
        )
        self.count += 1
        self.arrays, self.names, self.labels = [], [], []


@component("transform", data_parallel=True)
def dicom_to_images(
    files: InputPath,
    metadata: InputPath | None = None,
    size: int = 64,
    aspect: Literal["stretch", "pad", "crop"] = "stretch",
    windowing: Literal["dicom", "minmax"] = "dicom",
    frame: int = 0,
    all_frames: bool = False,
    label_column: str = "label",
    shards: bool = False,
    shard_size: int = 1024,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_rejected: int | None = None,
    fast_decode: bool = True,
    shard_tables: InputPath | None = None,
    shard_index: int | None = None,
    images: OutputPath = "images",
) -> dict:
    """Decode DICOM files into 8-bit grayscale PNGs in one sub-folder per label, plus an ``index.csv``.

    Applies the Modality LUT (rescale slope/intercept or LUT), the VOI LUT or window (center/width),
    inverts MONOCHROME1 and scales to 0-255; colour images become their luminance. Decoders: pydicom
    with pylibjpeg (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE); deflated and big/little
    endian, explicit/implicit VR files natively. Files are decoded in parallel worker processes with
    a bounded queue, so memory stays flat as the number of files grows. Files that cannot be decoded
    (truncated, no pixel data, unsupported compression, frames larger than ``max_pixels``) are
    reported and left out; the task fails only if none remain or more than ``max_rejected`` fail.

    :param files: Folder with the DICOM files named in the ``file`` column.
    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex, PatientAge, ...); with
        ``shard_tables`` only its rows of the shard's files are read, and without it the shard table's rows are used.
    :param size: Width and height of the written images in pixels; 0 keeps each image's own size.
    :param aspect: How a non-square image becomes square: stretch, pad (black borders) or crop (centre).
    :param windowing: ``dicom`` uses the file's VOI LUT/window when present (else min..max); ``minmax`` always
        scales the frame's min..max range.
    :param frame: Frame of multi-frame files to write (0-based, negative counts from the end).
    :param all_frames: Write every frame of multi-frame files (``<name>_f0003.png``) instead of one.
    :param label_column: Column with the class label; rows without one go to ``_unlabelled``.
    :param shards: Also write NumPy shards ``_shards/shard-NNNNN.npz`` (arrays images, image, label).
    :param shard_size: Images per NumPy shard.
    :param workers: Worker processes decoding in parallel; 0 = the number of CPUs available, 1 = no pool.
    :param max_pixels: Largest frame (Rows x Columns x samples) decoded; larger files are set aside.
    :param max_rejected: Fail the task when more files than this are set aside (default: never, unless all).
    :param fast_decode: Decode JPEG 2000 and 8-bit grayscale JPEG baseline files only at the resolution
        ``size`` needs (wavelet levels, DCT scaling): several times faster on large images; pixels differ
        from a full decode + resize by a few grey levels on average (sharper edges differ more). False always
        decodes in full.
    :param shard_tables: Shard tables of input.dicom: decode only the files of shard ``shard_index`` (an empty
        shard, or one whose files are all set aside, writes an empty output; transform.merge_shards joins them).
    :param shard_index: The shard of ``shard_tables`` to decode (0-based); none: every shard, merged.
    :param images: Folder ``<label>/<name>.png`` plus ``index.csv`` (image, label, frame and the metadata columns).
    """
    import pandas as pd

    from claimed_airflow.core.tables import read_table, write_table

    if size < 0 or 0 < size < 8:
        raise ClaimedError(f"size: must be 0 (original size) or at least 8 pixels, got {size}")
    if workers < 0:
        raise ClaimedError(f"workers: must be 0 (all CPUs) or a positive number, got {workers}")
    if max_pixels < 1:
        raise ClaimedError(f"max_pixels: must be positive, got {max_pixels}")
    if shards and size == 0:
        raise ClaimedError("shards: NumPy shards need one image size; set size > 0")
    if shard_size < 1:
        raise ClaimedError(f"shard_size: must be positive, got {shard_size}")
    if shards and shard_tables is not None:
        raise ClaimedError("shards: NumPy shards of a shard's images would collide in the merge; leave shards off")
    if shard_tables is not None:  # the shard's rows only: of metadata, else those its shard table carries
        from claimed_airflow.core import sharding

        table = sharding.rows_of(shard_tables, shard_index, metadata)
        if table is None:
            table = pd.DataFrame({"file": sharding.files_of(shard_tables, shard_index)})
        sharding.announce("dicom_to_images", shard_index, len(table))
    elif metadata is None:
        raise ClaimedError("metadata: required (the metadata table of input.dicom) unless shard_tables is given")
    else:
        table = read_table(metadata, name="metadata")
    if "file" not in table.columns:
        raise ClaimedError("metadata: column 'file' missing; expected the output of input.dicom")
    out = Path(images)
    out.mkdir(parents=True)
    records = table.to_dict("records")
    workers = workers or default_workers()
    workers = max(1, min(workers, len(records)))
    options = {
        "out": str(out),
        "size": size,
        "aspect": aspect,
        "windowing": windowing,
        "frame": frame,
        "all_frames": all_frames,
        "max_pixels": max_pixels,
        "shards": shards,
        "compress_level": 1,
        "fast_decode": fast_decode,
    }

    def jobs():
        seen: set[str] = set()
        for position, row in enumerate(records):
            label = row.get(label_column)
            label = UNLABELLED if label is None or pd.isna(label) else str(label)
            stem = image_stem(str(row["file"]))
            if stem in seen:  # two rows for one file: decode it once
                continue
            seen.add(stem)
            try:  # the file name is a table value: it never leads out of the files folder
                path, refused = str(inside(files, str(row["file"]))), None
            except ClaimedError as exc:
                path, refused = "", f"leads out of the files folder: {exc}"
            yield {
                **options,
                "position": position,
                "path": path,
                "refused": refused,
                "label": label,
                "folder": folder_name(label),
                "stem": stem,
            }

    rows, rejected, written = [], 0, 0
    writer = _ShardWriter(out / SHARDS, shard_size) if shards else None
    progress = Progress("dicom_to_images", len(records))
    pool = run_jobs(convert_file, jobs(), workers, crashed=_crashed, preload=_PRELOAD, name="dicom_to_images")
    for job, result in pool:
        progress.advance()
        row = records[job["position"]]
        if "error" in result:
            rejected += 1
            reject(str(row["file"]), result["error"])
            if max_rejected is not None and rejected > max_rejected:
                raise ClaimedError(f"max_rejected: more than {max_rejected} file(s) set aside (see the task log)")
            continue
        for name, index, array in result["images"]:
            rows.append({"image": name, **row, "label": job["label"], "frame": index})
            written += 1
            if writer is not None:
                writer.add(array, name, job["label"])
    if writer is not None:
        writer.flush()
    if not rows and shard_tables is not None:  # reported above; the merge checks the whole cohort
        (out / INDEX).write_text("")
        return {"images_written": 0, "files_rejected": rejected, "workers": workers}
    if not rows:
        raise ClaimedError(f"files: none of the {len(records)} DICOM files could be decoded")
    write_table(pd.DataFrame(rows), out / INDEX)
    return {"images_written": written, "files_rejected": rejected, "workers": workers}
