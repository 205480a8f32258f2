"""Predict the labels of an image folder with a trained image classifier."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, Progress, component
from claimed_airflow.core.errors import ClaimedError


@component("predict", data_parallel=True)
def images(
    model: InputPath,
    images: InputPath,
    batch_size: int = 32,
    split: str = "",
    unlabelled: bool = False,
    shard_tables: InputPath | None = None,
    shard_index: int | None = None,
    predictions: OutputPath = "predictions.csv",
) -> dict:
    """Score the images of an image folder; one row per image with true (if known) and predicted label.

    :param model: Model folder from ``train.mobilenet_v2`` (``model.keras`` or ``model.onnx`` + ``labels.json``).
    :param images: Image folder from ``transform.dicom_to_images``.
    :param batch_size: Images per prediction batch.
    :param split: Score only the images of this split (``index.csv`` column ``split``, e.g. ``test``, the
        held-out images of ``filter.spark_cohort_split``); empty: every labelled image.
    :param unlabelled: Also score the images without a label (a new study: its ``label`` is left empty).
    :param shard_tables: Shard tables of input.dicom: score only the images of the files of shard ``shard_index``
        (none: an empty output; transform.merge_shards joins the shards' predictions).
    :param shard_index: The shard of ``shard_tables`` to score (0-based); none: every shard, merged.
    :param predictions: CSV: image, label, prediction, score, one probability column per class and the
        metadata columns of the image index (PatientSex, PatientAge, ...).
    """
    from claimed_airflow.components.train.image_classifier import ImageClassifier, load_image_folder
    from claimed_airflow.core.tables import write_table

    if batch_size < 1:
        raise ClaimedError(f"batch_size: must be at least 1, got {batch_size}")
    files = None
    if shard_tables is not None:
        from pathlib import Path

        from claimed_airflow.core import sharding

        files = set(sharding.files_of(shard_tables, shard_index))
    network = ImageClassifier(model)
    x, _, classes, index = load_image_folder(images, network.image_size, network.classes, split, unlabelled, files)
    if files is not None:
        sharding.announce("predict.images", shard_index, len(x))
        if not len(x):
            Path(predictions).write_text("")
            return {"predicted": 0, "split": split or "all"}
    table, _ = score_images(network.predict, x, index, classes, batch_size, "predict.images")
    write_table(table, predictions)
    return {"predicted": len(table), "split": split or "all"}


def score_images(predict, pixels, index, classes: list[str], batch_size: int, name: str):
    """``predict`` over ``pixels`` in batches: (the index with prediction, score and one ``p_<class>`` column per
    class; a label starting with ``_``, an unlabelled image's, left empty), the probabilities)."""
    import numpy as np

    progress = Progress(name, len(pixels))
    batches = []
    for start in range(0, len(pixels), batch_size):
        batches.append(predict(pixels[start : start + batch_size]))
        progress.advance(len(batches[-1]))
    probabilities = np.concatenate(batches)
    best = probabilities.argmax(axis=1)
    table = index.copy()
    table["label"] = table["label"].mask(table["label"].astype(str).str.startswith("_"))  # no label: empty
    table["prediction"] = [classes[i] for i in best]
    table["score"] = probabilities[np.arange(len(best)), best]
    for i, name_ in enumerate(classes):
        table[f"p_{name_}"] = probabilities[:, i]
    return table, probabilities
