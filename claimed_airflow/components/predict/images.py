"""Predict the labels of an image folder with a trained image classifier."""

from __future__ import annotations

import json
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, Progress, component
from claimed_airflow.core.errors import ClaimedError


@component("predict", operator="PredictImagesOperator")
def images(
    model: InputPath,
    images: InputPath,
    batch_size: int = 32,
    predictions: OutputPath = "predictions.csv",
) -> dict:
    """Score every labelled image of an image folder; one row per image with true and predicted label.

    :param model: Model folder from ``train.mobilenet_v2`` (``model.keras`` + ``labels.json``).
    :param images: Image folder from ``transform.dicom_to_images``.
    :param batch_size: Images per prediction batch.
    :param predictions: CSV: image, label, prediction, score, one probability column per class and the
        metadata columns of the image index (PatientSex, PatientAge, ...).
    """
    import keras
    import numpy as np

    from claimed_airflow.components.train.mobilenet_v2 import load_image_folder
    from claimed_airflow.core.tables import write_table

    labels_file = Path(model) / "labels.json"
    if not labels_file.exists():
        raise ClaimedError(f"model: labels.json missing in {model}; expected the output of a train component")
    info = json.loads(labels_file.read_text())
    network = keras.saving.load_model(Path(model) / "model.keras")
    x, _, classes, index = load_image_folder(images, info["image_size"], info["classes"])
    progress = Progress("predict.images", len(x))
    batches = []
    for start in range(0, len(x), batch_size):
        batches.append(network.predict_on_batch(x[start : start + batch_size]))
        progress.advance(len(batches[-1]))
    probabilities = np.concatenate(batches)
    best = probabilities.argmax(axis=1)
    table = index.copy()
    table["prediction"] = [classes[i] for i in best]
    table["score"] = probabilities[np.arange(len(best)), best]
    for i, name in enumerate(classes):
        table[f"p_{name}"] = probabilities[:, i]
    write_table(table, predictions)
    return {"predicted": len(table)}
