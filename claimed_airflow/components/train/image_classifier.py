"""The image classifiers ``train.mobilenet_v2`` writes, and the image folders they read (helpers, no component).

A model folder holds ``labels.json`` (classes, image size, framework) and one network file:

- ``model.keras``: Keras 3 (``framework="keras"``);
- ``model.onnx``: ONNX (``framework="torch"``), run with onnxruntime, so serving needs no PyTorch.

Both take a float32 batch ``(N, size, size, 3)`` with values in [-1, 1] (``core.imaging.network_input``) and
return class probabilities ``(N, classes)``, so prediction, serving, LIME and deployment treat them alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import UnreadableImage, image_pixels, network_input
from claimed_airflow.core.paths import inside

INDEX = "index.csv"
LABELS = "labels.json"
SPLIT = "split"  # the column filter.spark_cohort_split adds: train or test
NETWORK_FILES = {"model.keras": "keras", "model.onnx": "onnx"}


def load_gray_images(
    images: str,
    size: int,
    classes: list[str] | None = None,
    split: str = "",
    unlabelled: bool = False,
    files: set[str] | None = None,
):
    """Labelled images of ``<images>/index.csv`` as uint8 grayscale ``(N, size, size)`` (:func:`image_pixels`).

    ``split`` (e.g. ``test``) keeps the rows whose ``split`` column has that value; empty keeps all.
    ``unlabelled`` keeps the images without a label too (``_unlabelled``: a new study to predict).
    ``files`` (one shard, :mod:`claimed_airflow.core.sharding`) keeps the images of these DICOM files; none left
    is then no error.
    Returns (pixels, y, classes, index) where y holds class indices (-1 for a label not in ``classes``).
    """
    import numpy as np

    from claimed_airflow.core.tables import read_table

    index_path = Path(images) / INDEX
    if not index_path.exists():
        raise ClaimedError(f"images: {INDEX} missing in {images}; expected the output of transform.dicom_to_images")
    index = read_table(index_path, name="images index")
    if files is not None:
        index = index[index["file"].astype(str).isin(files)].reset_index(drop=True)
    if not unlabelled:
        index = index[~index["label"].astype(str).str.startswith("_")].reset_index(drop=True)
    if index.empty and files is None:
        raise ClaimedError(f"images: no {'' if unlabelled else 'labelled '}image in {images}")
    if split:
        if SPLIT not in index.columns:
            raise ClaimedError(f"split: {INDEX} in {images} has no {SPLIT} column; split needs a cohort split")
        index = index[index[SPLIT].astype(str) == split].reset_index(drop=True)
        if index.empty and files is None:
            raise ClaimedError(f"split: no labelled image in the {split!r} split of {images}")
    classes = classes or sorted(index["label"].astype(str).unique())
    lookup = {name: i for i, name in enumerate(classes)}
    pixels = np.empty((len(index), size, size), dtype=np.uint8)
    for i, name in enumerate(index["image"]):
        try:
            path = inside(images, str(name))
        except ClaimedError as exc:
            raise ClaimedError(f"images: {INDEX} names an image outside {images}: {exc}") from None
        try:
            pixels[i] = image_pixels(path, size)
        except UnreadableImage as exc:
            raise ClaimedError(f"images: {name} in {images} is {exc}") from None
    y = np.array([lookup.get(str(label), -1) for label in index["label"]], dtype=np.int64)
    return pixels, y, classes, index


def load_image_folder(
    images: str,
    size: int,
    classes: list[str] | None = None,
    split: str = "",
    unlabelled: bool = False,
    files: set[str] | None = None,
):
    """Like :func:`load_gray_images`, with the pixels as :func:`network_input`."""
    pixels, y, classes, index = load_gray_images(images, size, classes, split, unlabelled, files)
    return network_input(pixels), y, classes, index


def network_file(folder: str | Path) -> Path | None:
    """The network file of a model folder, or None."""
    for name in NETWORK_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


class ImageClassifier:
    """A trained image classifier: ``predict`` maps a float32 ``(N, S, S, 3)`` batch to probabilities."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        path = network_file(folder)
        if path is None:
            raise ClaimedError(
                f"model: no model.keras or model.onnx in {folder}; expected the output of a train component"
            )
        try:
            info = json.loads((folder / LABELS).read_text())
            self.classes = [str(c) for c in info["classes"]]
            self.image_size = int(info["image_size"])
        except FileNotFoundError:
            raise ClaimedError(
                f"model: {LABELS} missing in {folder}; expected the output of a train component"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ClaimedError(f"model: {LABELS} in {folder} is not valid: {exc}") from None
        self.path, self.platform = path, NETWORK_FILES[path.name]
        if self.platform == "keras":
            import keras

            self.network = keras.saving.load_model(path)
            shape = tuple(self.network.input_shape[1:])
        else:
            try:
                import onnxruntime
            except ImportError:
                raise ClaimedError("model: an ONNX model needs onnxruntime (pip install onnxruntime)") from None
            self.network = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self._input = self.network.get_inputs()[0].name
            shape = tuple(self.network.get_inputs()[0].shape[1:])
        if shape != (self.image_size, self.image_size, 3):
            raise ClaimedError(f"model: the network takes {shape}, {LABELS} says {self.image_size} pixels")

    def predict(self, batch):
        """Class probabilities ``(N, classes)`` of a float32 batch ``(N, S, S, 3)`` in [-1, 1]."""
        import numpy as np

        batch = np.asarray(batch, dtype=np.float32)
        if self.platform == "keras":
            return np.asarray(self.network.predict_on_batch(batch), dtype=np.float32)
        return self.network.run(None, {self._input: batch})[0]
