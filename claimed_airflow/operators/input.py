"""Input operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class DicomInputOperator(ClaimedOperator):
    """Read DICOM files into a metadata table (one row per file) plus a folder of the readable files.

    Files that are not readable DICOM are reported by name, listed in the run manifest and left out;
    the rest of the batch goes on.

    Runs the ``input.dicom`` component. Outputs (XCom keys): metadata, files.

    :param source: Folder (searched recursively), glob pattern or single file of DICOM data.
    :type source: str
    :param labels: Optional CSV/Parquet table with labels, joined to the metadata on ``label_key``.
    :type labels: str | None
    :param label_key: Column present in both the metadata and the labels table (e.g. file,
        SOPInstanceUID).
    :type label_key: str
    :param label_column: Column of the labels table copied into the metadata as ``label``.
    :type label_column: str
    """

    component = "input.dicom"
    component_fields = ("source", "labels", "label_key", "label_column")
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        source: str,
        labels: str | None = None,
        label_key: str = "file",
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.labels = labels
        self.label_key = label_key
        self.label_column = label_column


class GermanCreditInputOperator(ClaimedOperator):
    """Read ``german.data`` (UCI Statlog German Credit) into a table with AIF360's conventions.

    Columns are named as in ``german.doc``; ``sex`` is derived from ``personal_status`` (A91, A93,
    A94 male; A92, A95 female) as AIF360's GermanDataset does; ``credit`` is 1 for good and 0 for
    bad credit (the favorable label is 1). ``age`` stays numeric so that any age threshold can be
    used.

    Runs the ``input.german_credit`` component. Outputs (XCom keys): table.

    :param source: The ``german.data`` file (1000 rows, 21 space-separated fields).
    :type source: str
    """

    component = "input.german_credit"
    component_fields = ("source",)
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        source: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source


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
