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
    With a ``destination`` PACS the written instances are also stored there (as output.dicomweb or
    output.dicom_network do); storing them again replaces, never duplicates them.

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
    :param destination: Also store the written instances in this PACS: dicomweb://<connection>,
        dicomweb+https://host/dicom-web or dicom://<connection> (DIMSE); empty: only the folder.
    :type destination: str | None
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
        "destination",
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
        destination: str | None = None,
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
        self.destination = destination


class DicomNetworkOutputOperator(ClaimedOperator):
    """Store a folder of DICOM files in a PACS without DICOMweb (C-STORE over one association).

    The DIMSE twin of output.dicomweb. Each SOP class is proposed in the files' own transfer
    syntaxes and in the uncompressed ones; a file goes as it is where the PACS accepted its syntax,
    else decompressed (pydicom's JPEG, JPEG-LS, JPEG 2000 and RLE decoders) to an uncompressed one.
    A file the PACS takes neither way, or refuses, gets its reason in ``stored`` and the rest goes
    on. The instances keep their SOP Instance UIDs, so a second store does not duplicate them. The
    peer comes from an Airflow connection of type ``dicom`` or from ``address`` (``AET@host:port``).

    Runs the ``output.dicom_network`` component. Outputs (XCom keys): stored.

    :param dicom: Folder of DICOM files (``dicom`` of output.dicom, ``output`` of
        transform.deidentify, ...).
    :type dicom: str
    :param conn_id: Airflow connection of type dicom.
    :type conn_id: str | None
    :param address: The PACS as AET@host:port instead of a connection.
    :type address: str | None
    :param calling_ae_title: Our AE title; default the connection's, else CLAIMED.
    :type calling_ae_title: str | None
    :param max_rejected: Fail the task when more files than this are not stored (default: never,
        unless all).
    :type max_rejected: int | None
    """

    component = "output.dicom_network"
    component_fields = ("dicom", "conn_id", "address", "calling_ae_title", "max_rejected")
    ui_color = "#efebe9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        dicom: str,
        conn_id: str | None = "dicom_default",
        address: str | None = None,
        calling_ae_title: str | None = None,
        max_rejected: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dicom = dicom
        self.conn_id = conn_id
        self.address = address
        self.calling_ae_title = calling_ae_title
        self.max_rejected = max_rejected


class DicomwebOutputOperator(ClaimedOperator):
    """Store a folder of DICOM files in a PACS over DICOMweb (STOW-RS), e.g. the SR or SC of output.dicom.

    Every DICOM file under ``dicom`` (``index.csv`` and other files are skipped) is sent in batches
    of ``batch_size``. The instances keep their SOP Instance UIDs (output.dicom derives them from
    the source and the model), so storing the same results again does not duplicate them: the PACS
    replaces or keeps the one it has. A file the PACS refuses is reported and the rest goes on. The
    server and its credentials come from an Airflow connection of type ``dicomweb``; without one,
    from ``url`` and the ``DICOMWEB_*`` environment variables (see input.dicomweb).

    Runs the ``output.dicomweb`` component. Outputs (XCom keys): stored.

    :param dicom: Folder of DICOM files (``dicom`` of output.dicom, ``output`` of
        transform.deidentify, ...).
    :type dicom: str
    :param conn_id: Airflow connection of type dicomweb; empty: url and DICOMWEB_* environment
        variables.
    :type conn_id: str | None
    :param url: Base URL of the DICOMweb service; overrides the connection's.
    :type url: str | None
    :param verify: TLS certificate verification; default the connection's.
    :type verify: bool | None
    :param batch_size: Instances per STOW-RS request.
    :type batch_size: int
    :param max_rejected: Fail the task when more files than this are not stored (default: never,
        unless all).
    :type max_rejected: int | None
    """

    component = "output.dicomweb"
    component_fields = ("dicom", "conn_id", "url", "verify", "batch_size", "max_rejected")
    ui_color = "#efebe9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        dicom: str,
        conn_id: str | None = "dicomweb_default",
        url: str | None = None,
        verify: bool | None = None,
        batch_size: int = 20,
        max_rejected: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dicom = dicom
        self.conn_id = conn_id
        self.url = url
        self.verify = verify
        self.batch_size = batch_size
        self.max_rejected = max_rejected


class LabelStudioTasksOutputOperator(ClaimedOperator):
    """Write a Label Studio import file (JSON tasks) of the least confident predictions, for radiologists to label.

    Reads predict.images' table (image, prediction, score, one ``p_<class>`` probability column per
    class, SOPInstanceUID, file, PatientSex, ...). The margin between the two highest class
    probabilities (the score alone with fewer than two ``p_`` columns) orders the images, smallest
    first; one task per SOPInstanceUID (else file, else image), at most ``limit``. With ``group_by``
    (e.g. PatientSex) the groups take turns, each giving its least confident image, so that every
    group is reviewed. Each task has ``data.image`` (``base_url`` + the image's path, URL-escaped),
    SOPInstanceUID and file (the keys input.labels reads the answers back by) and the group, and the
    model's prediction as a Label Studio ``predictions`` entry (a pre-annotation with its score).
    Rows without probabilities or with an image path that is absolute or climbs (``..``) are set
    aside. The tasks expect a labelling config with an Image control ``to_name``
    (``value="$image"``) and a single-choice Choices control ``from_name`` on it, one Choice per
    model class (the module's docstring and the Labels guide show it). Export the answers as Label
    Studio's JSON and read them back with input.labels.

    Runs the ``output.label_studio_tasks`` component. Outputs (XCom keys): tasks.

    :param predictions: Predictions table from predict.images (CSV or Parquet).
    :type predictions: str
    :param base_url: Where Label Studio finds the images folder of transform.dicom_to_images: an
        http(s), s3 or gs URL, or a path such as ``/data/local-files/?d=images/``; the image's
        relative path is appended.
    :type base_url: str
    :param limit: Most tasks written.
    :type limit: int
    :param group_by: Column whose groups take turns (e.g. PatientSex); empty: least confident first
        overall.
    :type group_by: str
    :param image_column: Column with the image's path relative to the images folder.
    :type image_column: str
    :param model_version: Shown in Label Studio with each prediction (e.g. the model's version).
    :type model_version: str
    :param from_name: Name of the labelling config's Choices control.
    :type from_name: str
    :param to_name: Name of the labelling config's Image control.
    :type to_name: str
    """

    component = "output.label_studio_tasks"
    component_fields = (
        "predictions",
        "base_url",
        "limit",
        "group_by",
        "image_column",
        "model_version",
        "from_name",
        "to_name",
    )
    ui_color = "#efebe9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        predictions: str,
        base_url: str,
        limit: int = 100,
        group_by: str = "",
        image_column: str = "image",
        model_version: str = "",
        from_name: str = "label",
        to_name: str = "image",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.base_url = base_url
        self.limit = limit
        self.group_by = group_by
        self.image_column = image_column
        self.model_version = model_version
        self.from_name = from_name
        self.to_name = to_name


class PredictionLogOutputOperator(ClaimedOperator):
    """Write one row per scored image to ``<log_root>/prediction_log/model=<name>/version=<version>/``.

    One Parquet file per (model, version, study), written in one step, so a retried or repeated run
    of a study replaces its rows instead of adding them twice (see
    :mod:`claimed_airflow.core.prediction_log`; ``core.prediction_log.read`` reads the dataset
    back). Each row: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, frame, Modality,
    BodyPartExamined, PatientSex, PatientAge, prediction, score, probabilities (class ->
    probability), image_mean/std/min/max, arrived_at, started_at, ended_at (now) and run_id.

    Runs the ``output.prediction_log`` component. Outputs (XCom keys): none.

    :param predictions: Predictions of ``predict.deployed`` (model_name, model_version, p_<class>,
        image stats).
    :type predictions: str
    :param arrived_at: When the study arrived (ISO 8601), e.g. from the run's conf; empty: unknown.
    :type arrived_at: str | None
    :param started_at: When the run started (ISO 8601), e.g. ``{{ dag_run.start_date }}``.
    :type started_at: str | None
    :param run_id: The run, recorded in each row.
    :type run_id: str
    :param log_root: Root of the log (folder or URI, local or object storage); default the output
        root.
    :type log_root: str | None
    """

    component = "output.prediction_log"
    component_fields = ("predictions", "arrived_at", "started_at", "run_id", "log_root")
    ui_color = "#efebe9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        predictions: str,
        arrived_at: str | None = None,
        started_at: str | None = None,
        run_id: str = "",
        log_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.arrived_at = arrived_at
        self.started_at = started_at
        self.run_id = run_id
        self.log_root = log_root
