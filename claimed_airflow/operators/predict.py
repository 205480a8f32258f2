"""Predict operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


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
    :param shard_index: The shard of ``shard_tables`` to score (0-based).
    :type shard_index: int
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
        shard_index: int = 0,
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
