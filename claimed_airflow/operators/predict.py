"""Predict operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.version_compat import SkipMixin


class DeployedPredictOperator(ClaimedOperator):
    """Score every image of an image folder (labelled or not) with the deployed model ``model`` names.

    ``model`` is ``<name>`` (the newest version in ``deploy.local``'s model store),
    ``<name>@<version>``, ``kserve://<conn_id>/<model name>`` (an Open Inference Protocol V2
    endpoint; http connection) or ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]``
    (classes and image size from that store version). Each image's row gets the prediction, its
    score, one probability per class and the statistics of the 8-bit image the model read (mean,
    std, min, max, for drift monitoring).

    Runs the ``predict.deployed`` component. Outputs (XCom keys): predictions, summary.

    :param images: Image folder from ``transform.dicom_to_images`` (unlabelled images are scored
        too).
    :type images: str
    :param model: The deployed model (see above); ``predict.resolve_model`` gives the version it is
        now.
    :type model: str
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    :type models_root: str | None
    :param batch_size: Images per prediction request.
    :type batch_size: int
    :param finding: A class whose probability is a finding (e.g. ``COVID-19``); empty: none.
    :type finding: str
    :param threshold: A probability of ``finding`` at least this counts as a finding.
    :type threshold: float
    """

    component = "predict.deployed"
    component_fields = ("images", "model", "models_root", "batch_size", "finding", "threshold")
    ui_color = "#fce4ec"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        images: str,
        model: str,
        models_root: str | None = None,
        batch_size: int = 32,
        finding: str = "",
        threshold: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.model = model
        self.models_root = models_root
        self.batch_size = batch_size
        self.finding = finding
        self.threshold = threshold


class ImagesPredictOperator(ClaimedOperator):
    """Score the images of an image folder; one row per image with true (if known) and predicted label.

    Runs the ``predict.images`` component. Outputs (XCom keys): predictions.

    :param model: Model folder from ``train.mobilenet_v2`` (``model.keras`` or ``model.onnx`` +
        ``labels.json``).
    :type model: str
    :param images: Image folder from ``transform.dicom_to_images``.
    :type images: str
    :param batch_size: Images per prediction batch.
    :type batch_size: int
    :param split: Score only the images of this split (``index.csv`` column ``split``, e.g.
        ``test``, the held-out images of ``filter.spark_cohort_split``); empty: every labelled
        image.
    :type split: str
    :param unlabelled: Also score the images without a label (a new study: its ``label`` is left
        empty).
    :type unlabelled: bool
    :param shard_tables: Shard tables of input.dicom: score only the images of the files of shard
        ``shard_index`` (none: an empty output; transform.merge_shards joins the shards'
        predictions).
    :type shard_tables: str | None
    :param shard_index: The shard of ``shard_tables`` to score (0-based); none: every shard, merged.
    :type shard_index: int | None
    """

    component = "predict.images"
    component_fields = ("model", "images", "batch_size", "split", "unlabelled", "shard_tables", "shard_index")
    ui_color = "#fce4ec"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        images: str,
        batch_size: int = 32,
        split: str = "",
        unlabelled: bool = False,
        shard_tables: str | None = None,
        shard_index: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.images = images
        self.batch_size = batch_size
        self.split = split
        self.unlabelled = unlabelled
        self.shard_tables = shard_tables
        self.shard_index = shard_index


class ResolveModelPredictOperator(ClaimedOperator):
    """Resolve ``model`` once per run, so every task of the run uses the same version and records it.

    ``<name>`` becomes ``<name>@<newest version>`` of ``deploy.local``'s model store;
    ``<name>@<version>``, ``kserve://<conn_id>/<model name>`` (asks the endpoint's V2 metadata) and
    ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]`` are checked and pinned the
    same way (see ``predict.deployed``). Returns model (the pinned text), model_name, model_version,
    model_uri, image_size and classes.

    Runs the ``predict.resolve_model`` component. Outputs (XCom keys): none.

    :param model: ``<name>``, ``<name>@<version>``, ``kserve://<conn_id>/<model name>`` or
        ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]``.
    :type model: str
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    :type models_root: str | None
    """

    component = "predict.resolve_model"
    component_fields = ("model", "models_root")
    ui_color = "#fce4ec"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        models_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.models_root = models_root


class StudyPredictOperator(ClaimedOperator, SkipMixin):
    """Read one study with the deployed model and store the result: every step of production inference in one task.

    The steps run in this process in order, each one the library component of the same job with its
    own folder and manifest under this task's (``<task>/<step>/manifest.json``): ``resolve_model``
    (predict.resolve_model: the model version for the whole run), ``retrieve`` (input.dicom:
    truncated or unreadable instances set aside), ``select_series`` (filter.series: when no series
    matches, the run ends here with a one-line ``reason``, nothing stored, the gate false),
    ``dicom_to_images``, ``predict`` (predict.deployed), ``dicom_results`` (output.dicom: one
    Comprehensive SR per image, UIDs derived from the source and the model version, stored in
    ``destination``), ``prediction_log`` (output.prediction_log, after the SRs are stored) and, when
    ``notify_to`` is given and ``finding`` reaches ``threshold`` for an image, ``notify``
    (monitoring.notification_email). One task instead of one per step saves a process start and the
    imports per step. The XCom has the outcome and ``seconds`` (each step's).

    Runs the ``predict.study`` component. Outputs (XCom keys): none.

    :param source: The study for input.dicom: a PACS query
        (``dicomweb://<conn>?level=study&StudyInstanceUID=...``, ``dicom://...``) or the folder/URI
        it landed in.
    :type source: str
    :param model: The deployed model, as for predict.deployed: ``<name>``, ``<name>@<version>``,
        ``kserve://<conn_id>/<model name>`` or ``watsonml://<conn_id>/<deployment
        id>?labels=<name>[@<version>]``.
    :type model: str
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    :type models_root: str | None
    :param study_instance_uid: Keep only this study's instances (filter.series); empty: every study
        of the source.
    :type study_instance_uid: str
    :param modalities: Series rule: modalities, e.g. ``["CR", "DX"]``; empty: any.
    :type modalities: list[str] | None
    :param body_parts: Series rule: BodyPartExamined values; empty: any.
    :type body_parts: list[str] | None
    :param sop_classes: Series rule: SOP Class UIDs; empty: any image.
    :type sop_classes: list[str] | None
    :param series_description: Series rule: shell pattern over SeriesDescription; empty: any.
    :type series_description: str
    :param destination: Store the SRs in this PACS (dicomweb://<conn>, dicom://<conn>, ...); empty:
        not stored.
    :type destination: str | None
    :param finding: A class whose probability is a finding (e.g. ``COVID-19``); empty: none.
    :type finding: str
    :param threshold: A probability of ``finding`` at least this counts as a finding.
    :type threshold: float
    :param arrived_at: When the study arrived (ISO 8601), logged.
    :type arrived_at: str | None
    :param started_at: When the run started (ISO 8601), logged.
    :type started_at: str | None
    :param run_id: The run, logged with each row.
    :type run_id: str
    :param log_root: Root of the prediction log; default the output root.
    :type log_root: str | None
    :param notify_to: E-mail these addresses when the study has a finding; empty: none.
    :type notify_to: list[str] | None
    :param notify_conn_id: Airflow connection (type smtp) of the e-mail.
    :type notify_conn_id: str
    :param notify_title: What the e-mail is about, e.g. ``dicom_inference {{ run_id }}``.
    :type notify_title: str
    """

    component = "predict.study"
    component_fields = (
        "source",
        "model",
        "models_root",
        "study_instance_uid",
        "modalities",
        "body_parts",
        "sop_classes",
        "series_description",
        "destination",
        "finding",
        "threshold",
        "arrived_at",
        "started_at",
        "run_id",
        "log_root",
        "notify_to",
        "notify_conn_id",
        "notify_title",
    )
    gate = True
    ui_color = "#fce4ec"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        source: str,
        model: str,
        models_root: str | None = None,
        study_instance_uid: str = "",
        modalities: list[str] | None = None,
        body_parts: list[str] | None = None,
        sop_classes: list[str] | None = None,
        series_description: str = "",
        destination: str | None = None,
        finding: str = "",
        threshold: float = 0.5,
        arrived_at: str | None = None,
        started_at: str | None = None,
        run_id: str = "",
        log_root: str | None = None,
        notify_to: list[str] | None = None,
        notify_conn_id: str = "smtp_default",
        notify_title: str = "predict.study",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.model = model
        self.models_root = models_root
        self.study_instance_uid = study_instance_uid
        self.modalities = modalities
        self.body_parts = body_parts
        self.sop_classes = sop_classes
        self.series_description = series_description
        self.destination = destination
        self.finding = finding
        self.threshold = threshold
        self.arrived_at = arrived_at
        self.started_at = started_at
        self.run_id = run_id
        self.log_root = log_root
        self.notify_to = notify_to
        self.notify_conn_id = notify_conn_id
        self.notify_title = notify_title
