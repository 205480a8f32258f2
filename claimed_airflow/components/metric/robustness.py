"""Adversarial robustness with ART: accuracy under FGSM and PGD attacks at given perturbation sizes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, UiOutputs, component
from claimed_airflow.core.errors import ClaimedError

ATTACKS = ("fgsm", "pgd")


def _classifier(loaded):
    """An ART classifier with loss gradients for the loaded model."""
    import numpy as np

    if loaded.kind == "image" and loaded.model.platform == "onnx":
        return _torch_classifier(loaded)
    if loaded.kind == "image":
        import tensorflow as tf
        from art.estimators.classification import TensorFlowV2Classifier

        return TensorFlowV2Classifier(
            model=loaded.model.network,
            nb_classes=len(loaded.classes),
            input_shape=tuple(loaded.x.shape[1:]),
            loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=False),
            clip_values=(-1.0, 1.0),
        )
    from art.estimators.classification import SklearnClassifier

    low, high = float(np.min(loaded.x)), float(np.max(loaded.x))
    classifier = SklearnClassifier(model=loaded.model, clip_values=(low, high))
    if not hasattr(classifier, "loss_gradient") or type(classifier).__name__ == "ScikitlearnClassifier":
        raise ClaimedError(
            f"model: ART has no loss gradients for {type(loaded.model).__name__}; FGSM and PGD need e.g. "
            "LogisticRegression, SVC or LinearSVC"
        )
    return classifier


def _torch_classifier(loaded):
    """ART's PyTorch classifier on ``model.pt``, the differentiable twin of a ``model.onnx``."""
    weights = loaded.model.path.with_name("model.pt")
    if not weights.is_file():
        raise ClaimedError(
            f"model: ART needs loss gradients; an ONNX model has none and {weights.name} is missing next to it "
            "(train.mobilenet_v2 framework=torch writes both)"
        )
    from claimed_airflow.components.train.mobilenet_v2 import load_torch_network

    network = load_torch_network(weights.parent)  # imports torch safely next to TensorFlow
    import torch
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=network,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(loaded.x.shape[1:]),
        nb_classes=len(loaded.classes),
        clip_values=(-1.0, 1.0),
        channels_first=False,
        device_type="cpu",
    )


@component("metric", ui=UiOutputs(image_folder="examples"))
def robustness(
    model: InputPath,
    data: InputPath,
    attacks: list[str] | None = None,
    epsilons: list[float] | None = None,
    max_samples: int = 32,
    pgd_steps: int = 10,
    num_examples: int = 3,
    label_column: str = "label",
    split: str = "",
    seed: int = 42,
    metrics: OutputPath = "robustness.json",
    examples: OutputPath = "adversarial",
) -> dict:
    """Measure accuracy under FGSM and PGD evasion attacks (Adversarial Robustness Toolbox).

    The attacks perturb each input by at most ``epsilon`` (L-infinity) in the model's input scale:
    images from ``transform.dicom_to_images`` are in [-1, 1], so 0.05 is 2.5 % of the range; table
    features are attacked in their own units, clipped to the data's minimum and maximum. Models: an
    image model from ``train.mobilenet_v2`` (Keras, or PyTorch through its ``model.pt``) or a
    scikit-learn classifier with gradients in ART (logistic regression, SVM). Seeded: the same inputs
    give the same numbers.

    :param model: Image model folder from ``train.mobilenet_v2`` or a scikit-learn model file.
    :param data: Image folder for an image model, else a table with the label column.
    :param attacks: Attacks to run: ``fgsm`` (one gradient step) and/or ``pgd`` (iterated, stronger);
        default both.
    :param epsilons: Perturbation sizes (L-infinity) to attack with; default 0.01, 0.05 and 0.1.
    :param max_samples: Labelled samples attacked (the first ones), to bound the run time.
    :param pgd_steps: Iterations of PGD (step size ``epsilon / 4``).
    :param num_examples: Adversarial examples saved as PNG (images only; at the largest epsilon).
    :param label_column: Label column of a table (tabular models only).
    :param split: Use only the samples of this split (column ``split`` of the image folder's ``index.csv`` or
        of the table, e.g. ``test``: the held-out samples); empty: all.
    :param seed: Random seed (PGD's random start).
    :param metrics: JSON: clean accuracy, accuracy per attack and epsilon, ``min_accuracy`` over all
        attacks, ``fgsm_accuracy`` / ``pgd_accuracy`` at the largest epsilon.
    :param examples: Folder: ``accuracy.png`` (accuracy against epsilon) and adversarial example PNGs.
    """
    import numpy as np
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    from claimed_airflow.components.metric.models import load

    attacks = list(ATTACKS) if attacks is None else attacks
    epsilons = [0.01, 0.05, 0.1] if epsilons is None else epsilons
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown or not attacks:
        raise ClaimedError(f"attacks: expected some of {', '.join(ATTACKS)}, got {', '.join(attacks) or 'none'}")
    if not epsilons or any(e <= 0 for e in epsilons):
        raise ClaimedError(f"epsilons: give positive perturbation sizes, got {epsilons}")
    if max_samples < 1:
        raise ClaimedError(f"max_samples: must be at least 1, got {max_samples}")
    if pgd_steps < 1:
        raise ClaimedError(f"pgd_steps: must be at least 1, got {pgd_steps}")
    np.random.seed(seed)
    loaded = load(model, data, label_column=label_column, split=split)
    labelled = np.flatnonzero(loaded.y >= 0)[:max_samples]
    if labelled.size == 0:
        raise ClaimedError("data: no sample with a label the model knows")
    x, y = loaded.x[labelled].astype(np.float32), loaded.y[labelled]
    classifier = _classifier(loaded)
    results, adversarial = [], {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")  # ART passes arrays
        clean = classifier.predict(x).argmax(axis=1)
        clean_accuracy = float(np.mean(clean == y))
        for attack in attacks:
            for eps in sorted(epsilons):
                if attack == "fgsm":
                    method = FastGradientMethod(classifier, eps=eps, batch_size=32)
                else:
                    method = ProjectedGradientDescent(
                        classifier, eps=eps, eps_step=eps / 4, max_iter=pgd_steps, batch_size=32, verbose=False
                    )
                x_adv = method.generate(x=x, y=y)
                predicted = classifier.predict(x_adv).argmax(axis=1)
                accuracy = float(np.mean(predicted == y))
                results.append({"attack": attack, "epsilon": eps, "accuracy": accuracy})
                adversarial[attack] = (eps, x_adv, predicted)
    largest = max(epsilons)
    summary = {
        "kind": loaded.kind,
        "samples": int(len(y)),
        "clean_accuracy": clean_accuracy,
        "min_accuracy": min(r["accuracy"] for r in results),
        "results": results,
    }
    for attack in attacks:
        summary[f"{attack}_accuracy"] = next(
            r["accuracy"] for r in results if r["attack"] == attack and r["epsilon"] == largest
        )
    with open(metrics, "w") as handle:
        json.dump(summary, handle, indent=2)
    out = Path(examples)
    out.mkdir(parents=True)
    _plot_accuracy(results, clean_accuracy, out / "accuracy.png")
    if loaded.kind == "image":
        attack = attacks[-1]
        eps, x_adv, predicted = adversarial[attack]
        for i in range(min(num_examples, len(y))):
            name = loaded.names[labelled[i]]
            _save_example(
                x[i],
                x_adv[i],
                out / f"{i:03d}_{attack}_{Path(name).stem}.png",
                title=f"{attack} eps={eps}: {loaded.classes[clean[i]]} -> {loaded.classes[predicted[i]]}",
            )
    values = {"clean_accuracy": clean_accuracy, "min_accuracy": summary["min_accuracy"]}
    values.update({f"{a}_accuracy": summary[f"{a}_accuracy"] for a in attacks})
    return values


def _plot_accuracy(results: list[dict], clean: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    for attack in dict.fromkeys(r["attack"] for r in results):
        points = [(r["epsilon"], r["accuracy"]) for r in results if r["attack"] == attack]
        axis.plot([0.0] + [p[0] for p in points], [clean] + [p[1] for p in points], marker="o", label=attack)
    axis.set_xlabel("epsilon (L-inf)")
    axis.set_ylabel("accuracy")
    axis.set_ylim(-0.05, 1.05)
    axis.legend()
    axis.set_title("accuracy under attack", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _save_example(original, adversarial, path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    delta = adversarial - original
    scale = float(np.abs(delta).max()) or 1.0
    from claimed_airflow.core.imaging import input_to_unit

    pictures = [input_to_unit(original), input_to_unit(adversarial), delta / (2 * scale) + 0.5]
    figure, axes = plt.subplots(1, 3, figsize=(6.5, 2.6))
    for axis, picture, caption in zip(axes, pictures, ("input", "adversarial", "perturbation"), strict=True):
        axis.imshow(np.clip(picture, 0, 1))
        axis.set_title(caption, fontsize=9)
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
