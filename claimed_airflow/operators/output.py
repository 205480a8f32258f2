"""Output operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class DicomOutputOperator(ClaimedOperator):
    """Write predictions back as DICOM that a PACS or viewer accepts, linked to the source study and images.

    ``sr``: one Comprehensive SR per prediction (TID 1500 measurement report built with highdicom):
    the predicted class as a qualitative evaluation, the score as a measurement, the model as the
    observer device, the source image as evidence (same StudyInstanceUID, the source SOP instance
    referenced). ``sc``: one Secondary Capture per prediction with the 8-bit image the model saw,
    the prediction in ImageComments and the source in SourceImageSequence. UIDs are derived from the
    source UIDs and the model name, so a retried task writes the same instances. Rows whose source
    file is missing or unreadable are reported and left out. Needs the ``dicom`` extra (highdicom).

    Runs the ``output.dicom`` component. Outputs (XCom keys): dicom.

    :param predictions: Prediction table (e.g. from ``predict.images``) with the source file and the
        prediction.
    :type predictions: str
    :param files: Folder of the source DICOM files (``files`` of input.dicom or ``output`` of
        transform.deidentify).
    :type files: str
    :param kind: ``sr`` (Comprehensive Structured Report) or ``sc`` (Secondary Capture image).
    :type kind: str
    :param model_name: Name of the model, recorded as the observer device / in the series
        description.
    :type model_name: str
    :param file_column: Column of ``predictions`` with the source file name relative to ``files``.
    :type file_column: str
    :param prediction_column: Column with the predicted class.
    :type prediction_column: str
    :param score_column: Column with the prediction score (optional; left out when the column is
        absent).
    :type score_column: str
    """

    component = "output.dicom"
    component_fields = (
        "predictions",
        "files",
        "kind",
        "model_name",
        "file_column",
        "prediction_column",
        "score_column",
    )
    ui_color = "#efebe9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        predictions: str,
        files: str,
        kind: str = "sr",
        model_name: str = "claimed-airflow classifier",
        file_column: str = "file",
        prediction_column: str = "prediction",
        score_column: str = "score",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.files = files
        self.kind = kind
        self.model_name = model_name
        self.file_column = file_column
        self.prediction_column = prediction_column
        self.score_column = score_column
