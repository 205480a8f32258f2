"""Predict operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ImagesPredictOperator(ClaimedOperator):
    """Score the labelled images of an image folder; one row per image with true and predicted label.

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
    """

    component = "predict.images"
    component_fields = ("model", "images", "batch_size", "split")
    ui_color = "#fce4ec"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        images: str,
        batch_size: int = 32,
        split: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.images = images
        self.batch_size = batch_size
        self.split = split
