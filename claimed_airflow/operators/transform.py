"""Transform operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ApplyTransformOperator(ClaimedOperator):
    """Compute ``column = expression`` on a table (CSV, Parquet or JSON lines) and write it as Parquet.

    The expression uses column names, numbers, strings, arithmetic, comparisons,
    ``and``/``or``/``not``, ``x if cond else y``, ``in [...]`` and abs/min/max/round/log. Nothing
    else is evaluated: no attribute access, no calls of arbitrary functions.

    Runs the ``transform.apply`` component. Outputs (XCom keys): output.

    :param table: Input table.
    :type table: str
    :param column: Name of the column to add or replace.
    :type column: str
    :param expression: Expression over the columns, e.g. ``age >= 25`` or ``amount / duration``.
    :type expression: str
    """

    component = "transform.apply"
    component_fields = ("table", "column", "expression")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        table: str,
        column: str,
        expression: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.column = column
        self.expression = expression


class DicomToImagesTransformOperator(ClaimedOperator):
    """Decode DICOM files into square 8-bit PNGs in one sub-folder per label, plus an ``index.csv``.

    Applies the Modality LUT (rescale slope/intercept) and VOI LUT/window, inverts MONOCHROME1 and
    scales each image to 0-255. Multi-frame files contribute their first frame. Files that cannot be
    decoded are reported and left out.

    Runs the ``transform.dicom_to_images`` component. Outputs (XCom keys): images.

    :param metadata: Metadata table from ``input.dicom`` (columns file, label, PatientSex,
        PatientAge, ...).
    :type metadata: str
    :param files: Folder with the DICOM files named in the ``file`` column.
    :type files: str
    :param size: Width and height of the written images in pixels.
    :type size: int
    :param label_column: Column with the class label; rows without one go to ``_unlabelled``.
    :type label_column: str
    """

    component = "transform.dicom_to_images"
    component_fields = ("metadata", "files", "size", "label_column")
    ui_color = "#e8f5e9"
    template_fields = (*component_fields, "engine", "output_root")

    def __init__(
        self,
        *,
        metadata: str,
        files: str,
        size: int = 64,
        label_column: str = "label",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata
        self.files = files
        self.size = size
        self.label_column = label_column
