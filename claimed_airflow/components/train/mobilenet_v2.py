"""Train a MobileNetV2 image classifier (Keras 3, no pretrained weights) on a folder of labelled images."""

from __future__ import annotations

import json
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, Progress, component
from claimed_airflow.core.errors import ClaimedError

INDEX = "index.csv"


def load_image_folder(images: str, size: int, classes: list[str] | None = None):
    """Images listed in ``<images>/index.csv`` as a float array in [-1, 1] (N, size, size, 3).

    Returns (x, y, classes, index) where y holds class indices (-1 for a label not in ``classes``).
    """
    import numpy as np
    from PIL import Image

    from claimed_airflow.core.tables import read_table

    index_path = Path(images) / INDEX
    if not index_path.exists():
        raise ClaimedError(f"images: {INDEX} missing in {images}; expected the output of transform.dicom_to_images")
    index = read_table(index_path, name="images index")
    index = index[~index["label"].astype(str).str.startswith("_")].reset_index(drop=True)
    if index.empty:
        raise ClaimedError(f"images: no labelled image in {images}")
    classes = classes or sorted(index["label"].astype(str).unique())
    lookup = {name: i for i, name in enumerate(classes)}
    x = np.empty((len(index), size, size, 3), dtype=np.float32)
    for i, name in enumerate(index["image"]):
        with Image.open(Path(images) / name) as image:
            gray = np.asarray(image.convert("L").resize((size, size)), dtype=np.float32)
        x[i] = (gray / 127.5 - 1.0)[..., None]
    y = np.array([lookup.get(str(label), -1) for label in index["label"]], dtype=np.int64)
    return x, y, classes, index


@component("train", gpus=1, cpu="4", memory="8Gi", operator="MobileNetV2TrainOperator")
def mobilenet_v2(
    images: InputPath,
    epochs: int = 3,
    batch_size: int = 16,
    image_size: int = 64,
    alpha: float = 0.35,
    learning_rate: float = 0.001,
    seed: int = 42,
    model: OutputPath = "model",
) -> dict:
    """Train MobileNetV2 (Keras 3, ``weights=None``) to classify the labels of an image folder.

    Seeded and with deterministic TensorFlow ops, so the same data and parameters give the same model.

    :param images: Output of ``transform.dicom_to_images`` (``<label>/*.png`` and ``index.csv``).
    :param epochs: Number of passes over the training images.
    :param batch_size: Images per gradient step.
    :param image_size: Input width and height of the network in pixels (at least 32).
    :param alpha: Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, ...).
    :param learning_rate: Adam learning rate.
    :param seed: Random seed for weights initialisation and shuffling.
    :param model: Folder with ``model.keras``, ``labels.json`` and ``history.json``.
    """
    if image_size < 32:
        raise ClaimedError(f"image_size: MobileNetV2 needs at least 32 pixels, got {image_size}")
    if epochs < 1:
        raise ClaimedError(f"epochs: must be at least 1, got {epochs}")
    import keras

    keras.utils.set_random_seed(seed)
    _deterministic_ops()
    x, y, classes, _ = load_image_folder(images, image_size)
    if len(classes) < 2:
        raise ClaimedError(f"images: need at least two labels to train a classifier, found {classes}")
    network = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), alpha=alpha, weights=None, classes=len(classes)
    )
    network.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    progress = Progress("train.mobilenet_v2 epochs", epochs, interval=0)

    class LogProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            progress.advance()

    history = network.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[LogProgress()]
    )
    out = Path(model)
    out.mkdir(parents=True)
    network.save(out / "model.keras")
    (out / "labels.json").write_text(json.dumps({"classes": classes, "image_size": image_size}))
    metrics = {k: [float(v) for v in values] for k, values in history.history.items()}
    (out / "history.json").write_text(json.dumps(metrics))
    return {"train_accuracy": metrics["accuracy"][-1], "train_loss": metrics["loss"][-1]}


def _deterministic_ops() -> None:
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except ImportError:
        pass
