"""Input operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class DicomInputOperator(ClaimedOperator):
    """Read DICOM files into a metadata table (one row per SOP instance) plus a folder of the readable files.

    Sources: a local folder (searched recursively), a glob, an ``s3://`` (or other fsspec) prefix
    staged by the runner, a DICOMDIR (its referenced files) or a single file. Files are recognised
    by the ``DICM`` magic after the 128-byte preamble, not by their suffix. Each row carries file,
    StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality, BodyPartExamined,
    PatientSex, PatientAge (years), Rows, Columns, PhotometricInterpretation, TransferSyntaxUID,
    NumberOfFrames, HasPixelData, BurnedInAnnotation and, with a labels table, ``label``. Files that
    are not readable DICOM and repeated SOPInstanceUIDs (the first file is kept) are reported by
    name, listed in the run manifest and left out; the rest of the batch goes on.

    Runs the ``input.dicom`` component. Outputs (XCom keys): metadata, files.

    :param source: Folder (searched recursively), glob pattern, URI prefix, DICOMDIR or single DICOM
        file.
    :type source: str
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. file,
        SOPInstanceUID).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    :param duplicates: A file whose SOPInstanceUID was already seen: ``reject`` sets it aside (the
        first file is kept), ``keep`` keeps it with a warning (e.g. one instance in several transfer
        syntaxes).
    :type duplicates: str
    :param max_rejected: Fail the task when more files than this are set aside (default: never,
        unless all).
    :type max_rejected: int | None
    """

    component = "input.dicom"
    component_fields = ("source", "labels", "label_key", "label_column", "duplicates", "max_rejected")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        source: str,
        labels: str | None = None,
        label_key: str = "file",
        label_column: str = "label",
        duplicates: str = "reject",
        max_rejected: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column
        self.duplicates = duplicates
        self.max_rejected = max_rejected


class ImagesToDicomOperator(ClaimedOperator):
    """Convert PNG/JPEG images listed in a labels table into DICOM Secondary Capture files.

    Each image becomes an 8-bit MONOCHROME2 file with PatientSex, PatientAge and deterministic UIDs
    (derived from the image content, so the same input gives the same dataset). Rows whose image is
    missing or unreadable are reported and left out.

    Runs the ``input.images_to_dicom`` component. Outputs (XCom keys): dicom, index.

    :param images: Folder with the image files.
    :type images: str
    :param labels: CSV table with one row per image.
    :type labels: str
    :param filename_column: Column of ``labels`` with the image file name.
    :type filename_column: str
    :param label_column: Column of ``labels`` with the class label (written to the index as
        ``label``).
    :type label_column: str
    :param sex_column: Column with the patient sex (M/F/O); empty values are left out.
    :type sex_column: str
    :param age_column: Column with the patient age in years; empty values are left out.
    :type age_column: str
    :param modality: DICOM Modality of the created files (OT, CR, DX, ...).
    :type modality: str
    :param max_size: Longest side in pixels; larger images are scaled down keeping the aspect ratio.
    :type max_size: int
    """

    component = "input.images_to_dicom"
    component_fields = (
        "images",
        "labels",
        "filename_column",
        "label_column",
        "sex_column",
        "age_column",
        "modality",
        "max_size",
    )
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        images: str,
        labels: str,
        filename_column: str = "filename",
        label_column: str = "finding",
        sex_column: str = "sex",
        age_column: str = "age",
        modality: str = "OT",
        max_size: int = 512,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.labels = labels
        self.filename_column = filename_column
        self.label_column = label_column
        self.sex_column = sex_column
        self.age_column = age_column
        self.modality = modality
        self.max_size = max_size
