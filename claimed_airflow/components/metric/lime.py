"""LIME explanations of a classifier's predictions: image superpixels or tabular features."""

from __future__ import annotations

import json
import re
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, Progress, UiOutputs, component
from claimed_airflow.core.errors import ClaimedError


@component("metric", ui=UiOutputs(image_folder="explanations"))
def lime(
    model: InputPath,
    data: InputPath,
    samples: list[str] | None = None,
    num_explained: int = 3,
    num_samples: int = 200,
    num_features: int = 5,
    num_segments: int = 30,
    label_column: str = "label",
    split: str = "",
    seed: int = 42,
    explanations: OutputPath = "lime",
) -> dict:
    """Explain single predictions with LIME (local surrogate models on perturbed inputs).

    For an image model (``train.mobilenet_v2``, Keras or ONNX) the image is cut into SLIC superpixels and LIME
    weighs each superpixel's contribution to the predicted class; the overlay PNG shows the superpixels
    in favour (green) and against (red). For a scikit-learn classifier (``.joblib``) on a table LIME
    weighs the (discretised) feature values. Seeded: the same inputs give the same explanations.

    :param model: Image model folder from ``train.mobilenet_v2`` or a scikit-learn model file.
    :param data: Image folder (``transform.dicom_to_images``) for an image model, else a table.
    :param samples: Image names (``index.csv`` column ``image``) or row numbers to explain; by default
        the first ``num_explained``.
    :param num_explained: How many samples to explain when ``samples`` is not given.
    :param num_samples: Perturbed inputs LIME scores per explanation (more is steadier and slower).
    :param num_features: Superpixels or features reported (and shown) per explanation.
    :param num_segments: Approximate number of SLIC superpixels per image.
    :param label_column: Label column of a table (tabular models only).
    :param split: Use only the samples of this split (column ``split`` of the image folder's ``index.csv`` or
        of the table, e.g. ``test``: the held-out samples); empty: all.
    :param seed: Random seed of the perturbations.
    :param explanations: Folder: ``explanations.json`` (per sample: true and predicted class, the top
        superpixels or features with their weights) and one PNG per sample.
    """
    from claimed_airflow.components.metric.models import load, select

    if num_samples < 10:
        raise ClaimedError(f"num_samples: LIME needs at least 10 perturbed samples, got {num_samples}")
    if num_features < 1:
        raise ClaimedError(f"num_features: must be at least 1, got {num_features}")
    loaded = load(model, data, label_column=label_column, split=split)
    rows = select(loaded, samples, num_explained)
    out = Path(explanations)
    out.mkdir(parents=True)
    progress = Progress("explanations", len(rows))
    results = []
    for position in rows:
        if loaded.kind == "image":
            result = _explain_image(loaded, position, out, num_samples, num_features, num_segments, seed)
        else:
            result = _explain_row(loaded, position, out, num_samples, num_features, seed)
        results.append(result)
        progress.advance()
    (out / "explanations.json").write_text(json.dumps({"kind": loaded.kind, "explanations": results}, indent=2))
    return {"explained": len(results)}


def _file_name(index: int, name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem)
    return f"{index:03d}_{stem}.png"


def _explain_image(loaded, position, out, num_samples, num_features, num_segments, seed) -> dict:
    import numpy as np
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    from skimage.segmentation import mark_boundaries

    from claimed_airflow.core.imaging import input_to_unit, unit_to_input

    image = input_to_unit(loaded.x[position].astype(np.float64))
    segmenter = SegmentationAlgorithm("slic", n_segments=num_segments, compactness=10, sigma=1, start_label=0)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    explanation = explainer.explain_instance(
        image,
        lambda batch: loaded.predict_proba(unit_to_input(np.asarray(batch, np.float32))),
        top_labels=1,
        hide_color=0.5,
        num_samples=num_samples,
        batch_size=50,
        segmentation_fn=segmenter,
        random_seed=seed,
    )
    target = int(explanation.top_labels[0])
    weights = sorted(explanation.local_exp[target], key=lambda item: -abs(item[1]))[:num_features]
    mask = np.zeros(explanation.segments.shape, dtype=np.int8)
    for segment, weight in weights:
        if weight:
            mask[explanation.segments == segment] = 1 if weight > 0 else -1
    overlay = image.copy()
    overlay[mask == 1] = 0.6 * overlay[mask == 1] + 0.4 * np.array([0.0, 1.0, 0.0])
    overlay[mask == -1] = 0.6 * overlay[mask == -1] + 0.4 * np.array([1.0, 0.0, 0.0])
    overlay = mark_boundaries(overlay, np.where(mask != 0, explanation.segments, -1), color=(1.0, 1.0, 0.0))
    name = loaded.names[position]
    png = _file_name(position, name)
    _save_pair(image, overlay, out / png, title=f"{name}: {loaded.classes[target]}")
    return {
        "sample": name,
        "label": _label(loaded, position),
        "explained_class": loaded.classes[target],
        "probability": float(loaded.predict_proba(loaded.x[position : position + 1])[0][target]),
        "segments": int(explanation.segments.max() + 1),
        "intercept": float(explanation.intercept[target]),
        "score": float(explanation.score[target]) if isinstance(explanation.score, dict) else float(explanation.score),
        "top": [{"superpixel": int(s), "weight": float(w)} for s, w in weights],
        "png": png,
    }


def _explain_row(loaded, position, out, num_samples, num_features, seed) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from lime.lime_tabular import LimeTabularExplainer

    explainer = LimeTabularExplainer(
        loaded.x,
        feature_names=loaded.feature_names,
        class_names=loaded.classes,
        mode="classification",
        discretize_continuous=True,
        random_state=seed,
    )
    probabilities = loaded.predict_proba(loaded.x[position : position + 1])[0]
    target = int(np.argmax(probabilities))
    explanation = explainer.explain_instance(
        loaded.x[position], loaded.predict_proba, labels=(target,), num_features=num_features, num_samples=num_samples
    )
    pairs = explanation.as_list(label=target)
    name = loaded.names[position]
    png = _file_name(position, f"row_{name}")
    figure = explanation.as_pyplot_figure(label=target)
    figure.set_size_inches(6, 0.5 * len(pairs) + 1.5)
    figure.tight_layout()
    figure.savefig(out / png, dpi=90)
    plt.close(figure)
    return {
        "sample": name,
        "label": _label(loaded, position),
        "explained_class": loaded.classes[target],
        "probability": float(probabilities[target]),
        "intercept": float(explanation.intercept[target]),
        "score": float(explanation.score),
        "top": [{"feature": rule, "weight": float(weight)} for rule, weight in pairs],
        "png": png,
    }


def _label(loaded, position) -> str | None:
    index = int(loaded.y[position])
    return loaded.classes[index] if index >= 0 else None


def _save_pair(image, overlay, path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(5, 2.8))
    for axis, picture, caption in zip(axes, (image, overlay), ("input", "LIME"), strict=True):
        axis.imshow(picture.clip(0, 1))
        axis.set_title(caption, fontsize=9)
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
