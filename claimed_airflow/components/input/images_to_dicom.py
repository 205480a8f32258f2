"""Build a DICOM dataset (Secondary Capture) from ordinary images and a labels table."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import inside
from claimed_airflow.core.tables import require_columns

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's prefix for generated UIDs


@component("input")
def images_to_dicom(
    images: InputPath,
    labels: InputPath,
    filename_column: str = "filename",
    label_column: str = "finding",
    sex_column: str = "sex",
    age_column: str = "age",
    modality: str = "OT",
    max_size: int = 512,
    burned_in_annotation: Literal["NO", "YES"] = "NO",
    dicom: OutputPath = "dicom",
    index: OutputPath = "labels.csv",
) -> dict:
    """Convert PNG/JPEG images listed in a labels table into DICOM Secondary Capture files.

    Each image becomes an 8-bit MONOCHROME2 file with PatientSex, PatientAge and deterministic UIDs
    (derived from the image content, so the same input gives the same dataset). Rows whose image is
    missing or unreadable, or whose file name leads out of ``images`` (``..``, an absolute path, a
    symbolic link), are reported and left out, as is a second row giving an already written name.

    :param images: Folder with the image files.
    :param labels: CSV table with one row per image.
    :param filename_column: Column of ``labels`` with the image file name.
    :param label_column: Column of ``labels`` with the class label (written to the index as ``label``).
    :param sex_column: Column with the patient sex (M/F/O); empty values are left out.
    :param age_column: Column with the patient age in years; empty values are left out.
    :param modality: DICOM Modality of the created files (OT, CR, DX, ...).
    :param max_size: Longest side in pixels; larger images are scaled down keeping the aspect ratio.
    :param burned_in_annotation: BurnedInAnnotation of the files: NO (this conversion adds no text; the
        default) or YES when the images themselves may show identifying text (``transform.deidentify``
        then sets them aside unless told to keep them).
    :param dicom: Folder of the created ``.dcm`` files.
    :param index: CSV with file, label, PatientSex, PatientAge and the source image name.
    """
    import numpy as np
    import pandas as pd
    from PIL import Image, UnidentifiedImageError

    from claimed_airflow.core.tables import read_table, write_table

    table = read_table(labels, name="labels")
    require_columns(table, (filename_column, label_column), param="labels")
    out = Path(dicom)
    out.mkdir(parents=True)
    written = []
    for row in table.to_dict("records"):
        name = str(row[filename_column])
        try:
            path = inside(images, name)
        except ClaimedError as exc:
            reject(name, f"not under images: {exc}")
            continue
        file = Path(name).stem + ".dcm"
        if (out / file).exists():
            reject(name, f"another row already gave {file}")
            continue
        try:
            with Image.open(path) as image:
                image = image.convert("L")
                image.thumbnail((max_size, max_size))
                pixels = np.asarray(image, dtype=np.uint8)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            reject(name, f"image not readable ({type(exc).__name__}: {exc})")
            continue
        sex = _clean(row.get(sex_column))
        age = _clean(row.get(age_column))
        _write_secondary_capture(out / file, pixels, name, sex, age, modality, burned_in_annotation)
        written.append({"file": file, "label": row[label_column], "PatientSex": sex, "PatientAge": age, "source": name})
    if not written:
        raise ClaimedError(f"images: none of the {len(table)} listed images could be read from {images}")
    write_table(pd.DataFrame(written), index)
    return {"images_converted": len(written), "images_rejected": len(table) - len(written)}


def _clean(value):
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return None
    return value


def _uid(*parts: str) -> str:
    digest = int(hashlib.sha256("/".join(parts).encode()).hexdigest(), 16)
    return (UID_PREFIX + str(digest))[:64]


def _write_secondary_capture(path: Path, pixels, source: str, sex, age, modality: str, burned_in: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    key = hashlib.sha256(pixels.tobytes()).hexdigest()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = _uid(key, "sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(key, "study")
    ds.SeriesInstanceUID = _uid(key, "series")
    ds.PatientID = "ANON-" + key[:12]
    ds.PatientName = "Anonymous"
    if sex:
        ds.PatientSex = str(sex)[:1].upper()
    if age is not None:
        ds.PatientAge = f"{int(float(age)):03d}Y"
    ds.Modality = modality
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = burned_in
    ds.ImageComments = f"converted from {source}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
