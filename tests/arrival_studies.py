"""Tiny made-up studies for the arrival tests: one 8x8 CR image per instance, UIDs under a test prefix."""

from __future__ import annotations

import secrets
from pathlib import Path

ROOT = "1.2.826.0.1.3680043.8.498.91"  # a test prefix: UIDs below it are made up here


def make_studies(folder: Path, count: int, first: int = 1, instances: int = 1) -> dict[str, list[Path]]:
    """``count`` studies numbered from ``first`` with ``instances`` instances each: StudyInstanceUID -> files.

    Each call's UIDs are new (a random part): tests that share an Airflow database (one pytest worker) never
    make the same study, whose run id (``study__<key>``) Airflow would refuse as already there.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    studies, call = {}, secrets.randbelow(10**9) + 1
    for number in range(first, first + count):
        study = f"{ROOT}.{call}.{number}"
        files = []
        for i in range(1, instances + 1):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR
            meta.MediaStorageSOPInstanceUID = f"{study}.1.{i}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
            ds.PatientID, ds.PatientName, ds.Modality = f"P{number}", f"Test^{number}", "CR"
            ds.StudyDate, ds.InstanceNumber = "20261206", i
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PixelData = (np.arange(64, dtype=np.uint8) * (number % 4 + 1)).tobytes()
            path = folder / f"s{number}_{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
        studies[study] = files
    return studies
