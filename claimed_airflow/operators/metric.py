"""Metric operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class ConfusionMatrixMetricOperator(ClaimedOperator):
    """Compute the confusion matrix of true vs. predicted labels, with accuracy and per-class scores.

    Runs the ``metric.confusion_matrix`` component. Outputs (XCom keys): metrics, plot.

    :param predictions: Table with a true-label and a predicted-label column.
    :type predictions: str
    :param label_column: Column with the true label.
    :type label_column: str
    :param prediction_column: Column with the predicted label.
    :type prediction_column: str
    """

    component = "metric.confusion_matrix"
    component_fields = ("predictions", "label_column", "prediction_column")
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        predictions: str,
        label_column: str = "label",
        prediction_column: str = "prediction",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.label_column = label_column
        self.prediction_column = prediction_column


class FairnessMetricOperator(ClaimedOperator):
    """Measure group fairness of predictions with AIF360 for one or more protected attributes.

    For each protected column: statistical parity difference, disparate impact, equal opportunity
    difference, average odds difference and Theil index, each with its fair range and a verdict
    (``fair``, ``biased``, or ``n/a`` when a group is empty). Rows without a value in the protected
    column are left out of that attribute's metrics (and counted as ``missing``).

    Runs the ``metric.fairness`` component. Outputs (XCom keys): metrics, plot.

    :param predictions: Table with the true label, the predicted label and the protected columns.
    :type predictions: str
    :param protected: Privileged group per protected column: a list of values, e.g. ``{"PatientSex":
        ["M"]}``, or an expression over the columns, e.g. ``{"age": "age > 25"}``.
    :type protected: dict
    :param favorable_label: The label value that is the favorable outcome (e.g. ``1`` or ``No
        Finding``).
    :type favorable_label: str
    :param label_column: Column with the true label.
    :type label_column: str
    :param prediction_column: Column with the predicted label.
    :type prediction_column: str
    :param unprivileged: Optional unprivileged group per column (same forms as ``protected``); by
        default every other row with a value.
    :type unprivileged: dict | None
    :param fair_ranges: Optional ``{"metric": [low, high]}`` overriding the default fair ranges
        (differences +-0.1, disparate impact 0.8 to 1.25, Theil index up to 0.25).
    :type fair_ranges: dict | None
    """

    component = "metric.fairness"
    component_fields = (
        "predictions",
        "protected",
        "favorable_label",
        "label_column",
        "prediction_column",
        "unprivileged",
        "fair_ranges",
    )
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        predictions: str,
        protected: dict,
        favorable_label: str,
        label_column: str = "label",
        prediction_column: str = "prediction",
        unprivileged: dict | None = None,
        fair_ranges: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions = predictions
        self.protected = protected
        self.favorable_label = favorable_label
        self.label_column = label_column
        self.prediction_column = prediction_column
        self.unprivileged = unprivileged
        self.fair_ranges = fair_ranges


class LimeMetricOperator(ClaimedOperator):
    """Explain single predictions with LIME (local surrogate models on perturbed inputs).

    For an image model (``train.mobilenet_v2``, Keras or ONNX) the image is cut into SLIC
    superpixels and LIME weighs each superpixel's contribution to the predicted class; the overlay
    PNG shows the superpixels in favour (green) and against (red). For a scikit-learn classifier
    (``.joblib``) on a table LIME weighs the (discretised) feature values. Seeded: the same inputs
    give the same explanations.

    Runs the ``metric.lime`` component. Outputs (XCom keys): explanations.

    :param model: Image model folder from ``train.mobilenet_v2`` or a scikit-learn model file.
    :type model: str
    :param data: Image folder (``transform.dicom_to_images``) for an image model, else a table.
    :type data: str
    :param samples: Image names (``index.csv`` column ``image``) or row numbers to explain; by
        default the first ``num_explained``.
    :type samples: list[str] | None
    :param num_explained: How many samples to explain when ``samples`` is not given.
    :type num_explained: int
    :param num_samples: Perturbed inputs LIME scores per explanation (more is steadier and slower).
    :type num_samples: int
    :param num_features: Superpixels or features reported (and shown) per explanation.
    :type num_features: int
    :param num_segments: Approximate number of SLIC superpixels per image.
    :type num_segments: int
    :param label_column: Label column of a table (tabular models only).
    :type label_column: str
    :param split: Use only the samples of this split (column ``split`` of the image folder's
        ``index.csv`` or of the table, e.g. ``test``: the held-out samples); empty: all.
    :type split: str
    :param seed: Random seed of the perturbations.
    :type seed: int
    """

    component = "metric.lime"
    component_fields = (
        "model",
        "data",
        "samples",
        "num_explained",
        "num_samples",
        "num_features",
        "num_segments",
        "label_column",
        "split",
        "seed",
    )
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        data: str,
        samples: list[str] | None = None,
        num_explained: int = 3,
        num_samples: int = 200,
        num_features: int = 5,
        num_segments: int = 30,
        label_column: str = "label",
        split: str = "",
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.data = data
        self.samples = samples
        self.num_explained = num_explained
        self.num_samples = num_samples
        self.num_features = num_features
        self.num_segments = num_segments
        self.label_column = label_column
        self.split = split
        self.seed = seed


class ReferenceProfileMetricOperator(ClaimedOperator):
    """Profile the training data and the test-split predictions; a copy of the model folder carries it.

    The profile (JSON): image statistics of the training images (a seeded sample of up to
    ``sample_size`` values of image_mean/std/min/max, the statistics ``predict.deployed`` logs per
    image), the DICOM header mix (Manufacturer, Modality, BodyPartExamined, PixelSpacing,
    PhotometricInterpretation counts), the prediction and label counts on the test split, its
    accuracy and the error rate per group of PatientSex and age group (<40, 40-64, 65+). Deploy
    ``profiled_model`` so that the model store keeps the profile beside the model
    (``model_monitoring`` reads it from there).

    Runs the ``metric.reference_profile`` component. Outputs (XCom keys): profiled_model, profile.

    :param model: Model folder from ``train.*`` (``labels.json`` names its classes and image size).
    :type model: str
    :param images: Image folder from ``transform.dicom_to_images`` (its ``train`` split, else every
        labelled image).
    :type images: str
    :param predictions: Predictions on the test split (``predict.images``: label, prediction,
        PatientSex, PatientAge).
    :type predictions: str
    :param favorable_label: A class whose prediction rate per group is recorded too (e.g.
        ``COVID-19``).
    :type favorable_label: str
    :param sample_size: At most this many values per image statistic are kept (a seeded random
        sample).
    :type sample_size: int
    :param seed: Seed of the sample.
    :type seed: int
    """

    component = "metric.reference_profile"
    component_fields = ("model", "images", "predictions", "favorable_label", "sample_size", "seed")
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        images: str,
        predictions: str,
        favorable_label: str = "",
        sample_size: int = 2000,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.images = images
        self.predictions = predictions
        self.favorable_label = favorable_label
        self.sample_size = sample_size
        self.seed = seed


class RobustnessMetricOperator(ClaimedOperator):
    """Measure accuracy under FGSM and PGD evasion attacks (Adversarial Robustness Toolbox).

    The attacks perturb each input by at most ``epsilon`` (L-infinity) in the model's input scale:
    images from ``transform.dicom_to_images`` are in [-1, 1], so 0.05 is 2.5 % of the range; table
    features are attacked in their own units, clipped to the data's minimum and maximum. Models: an
    image model from ``train.mobilenet_v2`` (Keras, or PyTorch through its ``model.pt``) or a
    scikit-learn classifier with gradients in ART (logistic regression, SVM). Seeded: the same
    inputs give the same numbers.

    Runs the ``metric.robustness`` component. Outputs (XCom keys): metrics, examples.

    :param model: Image model folder from ``train.mobilenet_v2`` or a scikit-learn model file.
    :type model: str
    :param data: Image folder for an image model, else a table with the label column.
    :type data: str
    :param attacks: Attacks to run: ``fgsm`` (one gradient step) and/or ``pgd`` (iterated,
        stronger); default both.
    :type attacks: list[str] | None
    :param epsilons: Perturbation sizes (L-infinity) to attack with; default 0.01, 0.05 and 0.1.
    :type epsilons: list[float] | None
    :param max_samples: Labelled samples attacked (the first ones), to bound the run time.
    :type max_samples: int
    :param pgd_steps: Iterations of PGD (step size ``epsilon / 4``).
    :type pgd_steps: int
    :param num_examples: Adversarial examples saved as PNG (images only; at the largest epsilon).
    :type num_examples: int
    :param label_column: Label column of a table (tabular models only).
    :type label_column: str
    :param split: Use only the samples of this split (column ``split`` of the image folder's
        ``index.csv`` or of the table, e.g. ``test``: the held-out samples); empty: all.
    :type split: str
    :param seed: Random seed (PGD's random start).
    :type seed: int
    """

    component = "metric.robustness"
    component_fields = (
        "model",
        "data",
        "attacks",
        "epsilons",
        "max_samples",
        "pgd_steps",
        "num_examples",
        "label_column",
        "split",
        "seed",
    )
    ui_color = "#f3e5f5"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        data: str,
        attacks: list[str] | None = None,
        epsilons: list[float] | None = None,
        max_samples: int = 32,
        pgd_steps: int = 10,
        num_examples: int = 3,
        label_column: str = "label",
        split: str = "",
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.data = data
        self.attacks = attacks
        self.epsilons = epsilons
        self.max_samples = max_samples
        self.pgd_steps = pgd_steps
        self.num_examples = num_examples
        self.label_column = label_column
        self.split = split
        self.seed = seed
