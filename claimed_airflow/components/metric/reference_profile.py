"""What a model was trained on, stored next to it: the reference that model monitoring compares production with."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
PROFILE = "reference_profile.json"


@component("metric")
def reference_profile(
    model: InputPath,
    images: InputPath,
    predictions: InputPath,
    favorable_label: str = "",
    sample_size: int = 2000,
    seed: int = 0,
    profiled_model: OutputPath = "model",
    profile: OutputPath = PROFILE,
) -> dict:
    """Profile the training data and the test-split predictions; a copy of the model folder carries it.

    The profile (JSON): image statistics of the training images (a seeded sample of up to ``sample_size``
    values of image_mean/std/min/max, the statistics ``predict.deployed`` logs per image), the DICOM header
    mix (Manufacturer, Modality, BodyPartExamined, PixelSpacing, PhotometricInterpretation counts), the
    prediction and label counts on the test split, its accuracy and the error rate per group of PatientSex
    and age group (<40, 40-64, 65+). Deploy ``profiled_model`` so that the model store keeps the profile
    beside the model (``model_monitoring`` reads it from there).

    :param model: Model folder from ``train.*`` (``labels.json`` names its classes and image size).
    :param images: Image folder from ``transform.dicom_to_images`` (its ``train`` split, else every labelled image).
    :param predictions: Predictions on the test split (``predict.images``: label, prediction, PatientSex, PatientAge).
    :param favorable_label: A class whose prediction rate per group is recorded too (e.g. ``COVID-19``).
    :param sample_size: At most this many values per image statistic are kept (a seeded random sample).
    :param seed: Seed of the sample.
    :param profiled_model: The model folder with ``reference_profile.json`` added.
    :param profile: The profile alone (JSON).
    """
    import numpy as np

    from claimed_airflow.components.monitoring import _stats
    from claimed_airflow.components.train.image_classifier import INDEX, SPLIT, load_gray_images
    from claimed_airflow.core.tables import read_table, require_columns

    if sample_size < 10:
        raise ClaimedError(f"sample_size: at least 10 values are needed for a drift test, got {sample_size}")
    info_path = Path(model) / "labels.json"
    try:
        info = json.loads(info_path.read_text())
        classes, size = [str(c) for c in info["classes"]], int(info["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ClaimedError(f"model: {model} has no readable labels.json (classes, image_size)") from None
    index = read_table(Path(images) / INDEX, name="images index") if (Path(images) / INDEX).exists() else None
    split = "train" if index is not None and SPLIT in index.columns else ""
    pixels, _, _, rows = load_gray_images(images, size, classes, split=split)
    stats = _stats.image_stats(pixels)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(pixels), size=min(sample_size, len(pixels)), replace=False)
    scored = read_table(predictions, name="predictions")
    require_columns(scored, ["label", "prediction"], param="predictions")
    scored = scored[scored["label"].notna()]
    if scored.empty:
        raise ClaimedError("predictions: no labelled prediction; the profile needs the test split's labels")
    correct = scored["label"].astype(str) == scored["prediction"].astype(str)
    values = {
        "classes": classes,
        "image_size": size,
        "training_images": len(pixels),
        "split": split or "all",
        "image_stats": {name: [round(float(v), 4) for v in stats[name][keep]] for name in _stats.IMAGE_STATS},
        "header": {name: _stats.counts(rows[name] if name in rows else [None] * len(rows)) for name in _stats.HEADER},
        "test": {
            "n": len(scored),
            "accuracy": float(correct.mean()),
            "per_class_recall": {
                str(c): float(correct[scored["label"].astype(str) == c].mean())
                for c in sorted(scored["label"].astype(str).unique())
            },
            "predictions": _stats.counts(scored["prediction"]),
            "labels": _stats.counts(scored["label"]),
            "groups": _stats.group_rates(scored, favorable_label or None),
        },
        "favorable_label": favorable_label,
    }
    Path(profile).write_text(json.dumps(values, indent=2))
    shutil.copytree(model, profiled_model, dirs_exist_ok=True)
    shutil.copy(profile, Path(profiled_model) / PROFILE)
    log.info("reference profile: %d training image(s), test accuracy %.3f", len(pixels), values["test"]["accuracy"])
    return {"training_images": len(pixels), "test_accuracy": values["test"]["accuracy"]}
