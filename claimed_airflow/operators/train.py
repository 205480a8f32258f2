"""Train operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class MobileNetV2TrainOperator(ClaimedOperator):
    """Train MobileNetV2 (Keras 3, ``weights=None``) to classify the labels of an image folder.

    Seeded and with deterministic TensorFlow ops, so the same data and parameters give the same
    model.

    Runs the ``train.mobilenet_v2`` component. Outputs (XCom keys): model.

    :param images: Output of ``transform.dicom_to_images`` (``<label>/*.png`` and ``index.csv``).
    :type images: str
    :param epochs: Number of passes over the training images.
    :type epochs: int
    :param batch_size: Images per gradient step.
    :type batch_size: int
    :param image_size: Input width and height of the network in pixels (at least 32).
    :type image_size: int
    :param alpha: Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, ...).
    :type alpha: float
    :param learning_rate: Adam learning rate.
    :type learning_rate: float
    :param seed: Random seed for weights initialisation and shuffling.
    :type seed: int
    """

    component = "train.mobilenet_v2"
    component_fields = ("images", "epochs", "batch_size", "image_size", "alpha", "learning_rate", "seed")
    ui_color = "#fff3e0"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        images: str,
        epochs: int = 3,
        batch_size: int = 16,
        image_size: int = 64,
        alpha: float = 0.35,
        learning_rate: float = 0.001,
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.epochs = epochs
        self.batch_size = batch_size
        self.image_size = image_size
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.seed = seed
