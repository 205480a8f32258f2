"""Decode DICOM pixel data into normalised 8-bit PNG images, one folder per label."""

from __future__ import annotations

from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError

UNLABELLED = "_unlabelled"
INDEX = "index.csv"


def to_uint8(ds, frame: int = 0):
    """Pixel data of ``ds`` (one frame) as 8-bit grayscale: modality LUT, VOI LUT, MONOCHROME1 inverted."""
    import numpy as np
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        pixels = pixels[frame]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3:  # colour: RGB or YBR already converted to RGB by pydicom
        pixels = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    else:
        pixels = apply_modality_lut(pixels, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            pixels = apply_voi_lut(pixels, ds)
    pixels = pixels.astype(np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return (scaled * 255.0 + 0.5).astype(np.uint8)


@component("transform")
def dicom_to_images(
    metadata: InputPath,
    files: InputPath,
    size: int = 64,
    label_column: str = "label",
    images: OutputPath = "images",
) -> dict:
    """Decode DICOM files into square 8-bit PNGs in one sub-folder per label, plus an ``index.csv``.

    Applies the Modality LUT (rescale slope/intercept) and VOI LUT/window, inverts MONOCHROME1 and
    scales each image to 0-255. Multi-frame files contribute their first frame. Files that cannot be
    decoded are reported and left out.

    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex, PatientAge, ...).
    :param files: Folder with the DICOM files named in the ``file`` column.
    :param size: Width and height of the written images in pixels.
    :param label_column: Column with the class label; rows without one go to ``_unlabelled``.
    :param images: Folder ``<label>/<name>.png`` plus ``index.csv`` (image, label and the metadata columns).
    """
    import pandas as pd
    import pydicom
    from PIL import Image

    from claimed_airflow.core.tables import read_table, write_table

    if size < 8:
        raise ClaimedError(f"size: must be at least 8 pixels, got {size}")
    table = read_table(metadata, name="metadata")
    if "file" not in table.columns:
        raise ClaimedError("metadata: column 'file' missing; expected the output of input.dicom")
    out = Path(images)
    out.mkdir(parents=True)
    rows = []
    progress = Progress("dicom_to_images", len(table))
    for row in table.to_dict("records"):
        progress.advance()
        label = row.get(label_column)
        label = UNLABELLED if label is None or pd.isna(label) else str(label)
        try:
            pixels = to_uint8(pydicom.dcmread(Path(files) / row["file"]))
        except Exception as exc:  # noqa: BLE001 - any decoder failure sets this file aside
            reject(row["file"], f"pixel data not decodable ({type(exc).__name__}: {exc})")
            continue
        image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
        name = f"{label}/{Path(row['file']).with_suffix('').as_posix().replace('/', '__')}.png"
        (out / label).mkdir(exist_ok=True)
        image.save(out / name)
        rows.append({"image": name, **row, "label": label})
    if not rows:
        raise ClaimedError(f"files: none of the {len(table)} DICOM files could be decoded")
    write_table(pd.DataFrame(rows), out / INDEX)
    return {"images_written": len(rows)}
