"""Decode DICOM pixel data into normalised 8-bit PNG images, one folder per label."""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import inside

log = logging.getLogger("claimed_airflow")
UNLABELLED = "_unlabelled"
INDEX = "index.csv"
SHARDS = "_shards"  # labels starting with "_" are not classes (see train.mobilenet_v2)
DEFAULT_MAX_PIXELS = 100_000_000
WINDOW_PER_WORKER = 8  # jobs in flight per worker: results are small, so a deep window costs little
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
# imported once by the forkserver, so that each worker starts warm (missing decoders are skipped)
_PRELOAD = ["numpy", "pydicom", "pydicom.pixels", "PIL.Image", "PIL.PngImagePlugin", "openjpeg", "libjpeg", "rle"]
_PRELOAD.append(__name__)


class FrameTooLarge(ValueError):
    """A frame larger than ``max_pixels``: not decoded (the decompression guard)."""


def frame_size(ds) -> tuple[int, int, int]:
    """(Rows, Columns, SamplesPerPixel) of a dataset's frames, read from its header; ValueError if absent or absurd."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        raise ValueError("Rows/Columns missing or not numbers") from None
    if rows < 1 or columns < 1:
        raise ValueError(f"absurd dimensions {rows}x{columns}")
    return rows, columns, samples


def check_frame_size(rows: int, columns: int, samples: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The decompression guard, checked before decoding: FrameTooLarge if rows x columns x samples > max_pixels."""
    if rows * columns * samples > max_pixels:
        raise FrameTooLarge(
            f"frame of {rows}x{columns}x{samples} exceeds max_pixels={max_pixels} (decompression guard)"
        )


def frame_count(ds) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _first(value, index: int = 0) -> float:
    """A number from a DS/IS element that may be multi-valued."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[min(index, len(value) - 1)]
    return float(value)


def window_unit(values, center: float, width: float, function: str = "LINEAR"):
    """Values windowed to [0, 1] after PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID)."""
    import numpy as np

    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:  # LINEAR needs width >= 1; width 1 is a threshold at center - 0.5
        return (values > center - 0.5).astype(np.float32)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _voi_unit(values, ds):
    """Apply the file's VOI LUT or window to modality values; None if the file has no usable one."""
    import numpy as np

    sequence = ds.get("VOILUTSequence")
    if sequence:
        from pydicom.pixels import apply_voi

        bits = int(sequence[0].LUTDescriptor[2])
        return apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float32) / float(2**bits - 1)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except (TypeError, ValueError, IndexError):
            return None
        function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
        if width > 0 and np.isfinite(center) and np.isfinite(width):
            return window_unit(values, center, width, function)
    return None


def to_uint8(ds, frame: int = 0, *, windowing: str = "dicom", pixels=None):
    """Pixel data of ``ds`` (one frame) as 8-bit grayscale: modality LUT, VOI LUT/window, MONOCHROME1 inverted.

    Grayscale: the Modality LUT (rescale slope/intercept or LUT sequence) gives modality values; the
    VOI LUT sequence or window (center/width, LINEAR/LINEAR_EXACT/SIGMOID) maps them to the display
    range when ``windowing="dicom"`` and the file has one, otherwise the frame's own min..max range
    is used. MONOCHROME1 is inverted so that high values are bright. Colour (RGB, YBR_* converted by
    pydicom, PALETTE COLOR) becomes its luminance (ITU-R BT.601 weights).
    """
    import numpy as np
    from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

    if pixels is None:
        pixels = pixel_array(ds, index=frame) if frame_count(ds) > 1 else ds.pixel_array
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _unit_to_uint8(_luma(rgb, depth))
    if pixels.ndim == 3:  # RGB, or YBR already converted to RGB by pydicom
        depth = int(ds.get("BitsStored") or 8)
        return _unit_to_uint8(_luma(pixels, depth))
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    unit = _voi_unit(values, ds) if windowing == "dicom" else None
    if unit is None:
        low, high = float(values.min()), float(values.max())
        unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return _unit_to_uint8(unit)


def _unit_to_uint8(unit):
    import numpy as np

    return np.clip(np.rint(np.asarray(unit, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _luma(rgb, depth: int):
    """Luminance (ITU-R BT.601 weights) of RGB values of ``depth`` bits, in [0, 1]."""
    import numpy as np

    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb[..., :3].astype(np.float32) @ weights / float(2**depth - 1)


def fit(pixels, size: int, aspect: str = "stretch"):
    """A PIL image of ``pixels`` (an array or a PIL image) resized to ``size`` x ``size`` (0 keeps the original size).

    ``stretch`` ignores the aspect ratio, ``pad`` fits the image inside and pads with black, ``crop``
    cuts the centre square (of the longer side) before resizing.
    """
    from PIL import Image, ImageOps

    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if size <= 0:
        return image
    method = Image.Resampling.BILINEAR
    if aspect == "pad":
        return ImageOps.pad(image, (size, size), method=method, color=0)
    if aspect == "crop":
        return ImageOps.fit(image, (size, size), method=method)
    return image.resize((size, size), method, reducing_gap=3.0)


def folder_name(label: str) -> str:
    """A label as a safe folder name (no path separators, no '.'/'..')."""
    name = label.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return name if name.strip(".") else "_" + name


_J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def reduced_pixels(ds, size: int, windowing: str = "dicom"):
    """The first frame decoded at the smallest resolution whose sides are still at least ``size``, or None.

    JPEG 2000 keeps lower resolutions as wavelet levels and 8-bit JPEG can scale while it decodes
    (DCT scaling), so a thumbnail needs only part of the work of a full decode. Covers single-frame
    unsigned colour, and grayscale with a VOI LUT or window, JPEG 2000 and JPEG baseline; None
    (decode in full) for anything else (a min..max range from a reduced image would shift the grey
    levels), for files that need no reduction, and for codestreams Pillow cannot reduce.
    """
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if size <= 0 or frame_count(ds) != 1 or syntax not in _J2K_SYNTAXES | {_JPEG_BASELINE}:
        return None
    colour = int(ds.get("SamplesPerPixel") or 1) > 1
    windowed = windowing == "dicom" and ("VOILUTSequence" in ds or "WindowWidth" in ds)
    if not (colour or windowed):
        return None
    if int(ds.get("PixelRepresentation") or 0) != 0 or min(int(ds.Rows), int(ds.Columns)) < 2 * size:
        return None
    import io

    import numpy as np
    from PIL import Image
    from pydicom.encaps import generate_frames

    try:
        stream = next(generate_frames(ds.PixelData, number_of_frames=1))
        if syntax == _JPEG_BASELINE:
            if colour:  # YBR handling stays with pydicom
                return None
            image = Image.open(io.BytesIO(stream))
            image.draft("L", (size, size))
            return np.asarray(image) if image.mode == "L" else None
        return _reduced_j2k(stream, int(ds.Rows), int(ds.Columns), size)
    except Exception:  # noqa: BLE001 - any doubt: decode in full with pydicom
        return None


def _reduced_j2k(stream: bytes, rows: int, columns: int, size: int):
    import io

    import numpy as np
    from PIL import Image

    header = _j2k_header(stream)
    if header is None or header["signed"] or header["offset"]:
        return None
    reduce = 0
    while reduce < header["levels"] and min(rows, columns) >> (reduce + 1) >= size:
        reduce += 1
    if reduce == 0:
        return None
    image = Image.open(io.BytesIO(stream))
    power = 1 << reduce
    # OpenJPEG rounds a reduced side up, Pillow (13) to nearest: give Pillow sides that round alike
    image._size = (-(-columns // power) * power, -(-rows // power) * power)
    image.reduce = reduce
    image.load()
    if image.mode not in ("L", "I;16", "RGB"):
        return None
    pixels = np.asarray(image)
    if image.mode == "I;16":  # Pillow widens the codestream's precision to 16 bits
        pixels = pixels >> (16 - header["precision"])
    return pixels


def _j2k_header(stream: bytes) -> dict | None:
    """Precision, sign, image offset (SIZ) and wavelet levels (COD, the smallest of any COC) of a codestream."""
    if stream[:4] != b"\xff\x4f\xff\x51":
        return None
    read = int.from_bytes
    components = read(stream[40:42], "big")
    signs = [stream[42 + 3 * i] for i in range(components)]
    header = {
        "precision": (signs[0] & 0x7F) + 1,
        "signed": any(s & 0x80 for s in signs),
        "offset": read(stream[16:20], "big") or read(stream[20:24], "big"),
        "levels": None,
    }
    position = 4 + read(stream[4:6], "big")
    while position + 4 <= len(stream):
        marker, length = read(stream[position : position + 2], "big"), read(stream[position + 2 : position + 4], "big")
        if marker == 0xFF90:  # first tile: the main header ends
            break
        if marker == 0xFF52:
            levels = stream[position + 9]
            header["levels"] = levels if header["levels"] is None else min(levels, header["levels"])
        elif marker == 0xFF53:  # COC: component index is 1 or 2 bytes, then Scoc, then the levels
            levels = stream[position + 4 + (1 if components < 257 else 2) + 1]
            header["levels"] = levels if header["levels"] is None else min(levels, header["levels"])
        position += 2 + length
    return header if header["levels"] else None


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


class _Reject(Exception):
    pass


def _convert(job: dict) -> list:
    import pydicom
    from pydicom.pixels import iter_pixels, pixel_array

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
    if job["all_frames"]:
        selected = list(range(frames))
        stream = iter_pixels(ds) if frames > 1 else iter([ds.pixel_array])
    else:
        index = job["frame"] if job["frame"] >= 0 else frames + job["frame"]
        if not 0 <= index < frames:
            raise _Reject(f"frame {job['frame']} out of range (the file has {frames} frame(s))")
        selected = [index]
        reduced = reduced_pixels(ds, job["size"], job["windowing"]) if job["fast_decode"] else None
        if reduced is not None:
            stream = iter([reduced])
        else:
            stream = iter([pixel_array(ds, index=index) if frames > 1 else ds.pixel_array])
    out, stem, label_dir = Path(job["out"]), job["stem"], job["folder"]
    (out / label_dir).mkdir(exist_ok=True)
    written = []
    for index, pixels in zip(selected, stream, strict=False):
        image = fit(to_uint8(ds, index, windowing=job["windowing"], pixels=pixels), job["size"], job["aspect"])
        name = f"{label_dir}/{stem}_f{index:04d}.png" if job["all_frames"] and frames > 1 else f"{label_dir}/{stem}.png"
        image.save(out / name, compress_level=job["compress_level"])
        if job["shards"]:
            import numpy as np

            written.append((name, index, np.asarray(image)))
        else:
            written.append((name, index, None))
    return written


def default_workers() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def start_method() -> str:
    """``fork`` from a single-threaded process (fast: workers start with everything imported); else
    ``forkserver`` (a multi-threaded parent such as an Airflow task must not fork), else ``spawn``.

    forkserver and spawn import the main module in each worker, so scripts need the usual
    ``if __name__ == "__main__":`` guard there.
    """
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def run_jobs(jobs, workers: int):
    """Yield ``(job, result)`` of :func:`convert_file` in job order, ``workers`` processes in parallel.

    At most ``WINDOW_PER_WORKER x workers`` jobs are in flight, so memory stays flat however many files there are.
    ``workers == 1`` runs in this process.
    """
    import multiprocessing

    if workers > 1 and multiprocessing.current_process().daemon:
        log.warning("dicom_to_images: running in a daemonic process, which cannot start workers; using 1")
        workers = 1
    if workers <= 1:
        for job in jobs:
            yield job, convert_file(job)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from claimed_airflow.core.context import cancelled

    context = multiprocessing.get_context(start_method())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(_PRELOAD)
    remaining = iter(jobs)
    while True:
        window: deque = deque()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for job in remaining:
                    window.append([job, None])
                    window[-1][1] = pool.submit(convert_file, job)
                    if len(window) >= WINDOW_PER_WORKER * workers:
                        result = window[0][1].result()
                        yield window.popleft()[0], result
                while window:
                    result = window[0][1].result()
                    yield window.popleft()[0], result
            return
        except BrokenProcessPool:
            if cancelled():  # the task is being killed (its on_kill ended the workers): start no others
                raise ClaimedError("workers: the task was killed; its worker processes were ended") from None
            # a worker died (decoder crash, out of memory): retry the files in flight one by one,
            # each in its own process, so that only the file that kills its worker is set aside
            log.warning("dicom_to_images: a worker process died; retrying %d file(s) one by one", len(window))
            for job, _ in window:
                yield job, _isolated(job, context)


def _isolated(job: dict, context) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(convert_file, job).result()
    except BrokenProcessPool:
        return {"error": "the decoder crashed or ran out of memory (its worker process died)"}


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


@component("transform")
def dicom_to_images(
    metadata: InputPath,
    files: InputPath,
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

    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex, PatientAge, ...).
    :param files: Folder with the DICOM files named in the ``file`` column.
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
    for job, result in run_jobs(jobs(), workers):
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
    if not rows:
        raise ClaimedError(f"files: none of the {len(records)} DICOM files could be decoded")
    write_table(pd.DataFrame(rows), out / INDEX)
    return {"images_written": written, "files_rejected": rejected, "workers": workers}
