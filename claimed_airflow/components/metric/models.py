"""Loading the models that the trusted-AI metrics explain and attack (helpers, no component here).

Two kinds are understood:

- an image model: the folder written by ``train.mobilenet_v2`` (``model.keras`` or ``model.onnx`` +
  ``labels.json``), scored on an image folder from ``transform.dicom_to_images``;
- a scikit-learn classifier: a ``.joblib`` / ``.pkl`` file (or a folder with ``model.joblib``) of a
  fitted estimator with ``predict_proba``, scored on a table. Its feature columns are the estimator's
  ``feature_names_in_`` when it was fitted on a DataFrame, else every numeric column but the label.
  Loading a pickle runs code from the file: use only models you trust.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claimed_airflow.components.train.image_classifier import network_file
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

SKLEARN_FILES = ("model.joblib", "model.pkl")


@dataclass
class Loaded:
    kind: str  # "image" or "tabular"
    model: Any
    x: Any  # numpy array of inputs
    y: Any  # class indices (-1 for an unknown label)
    classes: list[str]
    names: list[str]  # image file names or row numbers
    feature_names: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def predict_proba(self, x):
        if self.kind == "image":
            import numpy as np

            return np.concatenate([self.model.predict(x[i : i + 64]) for i in range(0, len(x), 64)])
        import pandas as pd

        frame = pd.DataFrame(x, columns=self.feature_names) if self.extra.get("frame") else x
        return self.model.predict_proba(frame)


def _sklearn_file(model: str) -> Path | None:
    path = Path(model)
    if path.is_file() and path.suffix in (".joblib", ".pkl", ".pickle"):
        return path
    for name in SKLEARN_FILES:
        if (path / name).is_file():
            return path / name
    return None


def load(model: str, data: str, *, label_column: str = "label", split: str = "") -> Loaded:
    """The model and its evaluation data (inputs, true class indices) from a model and a data path.

    ``split``: only the rows whose ``split`` column (``index.csv`` of an image folder, or the table) has that value.
    """
    import numpy as np

    if network_file(model) is not None:
        from claimed_airflow.components.train.image_classifier import ImageClassifier, load_image_folder

        if not Path(data).is_dir():
            raise ClaimedError(f"data: an image model needs an image folder, got {Path(data).name}")
        network = ImageClassifier(model)
        x, y, classes, index = load_image_folder(data, network.image_size, network.classes, split)
        return Loaded("image", network, x, y, list(classes), [str(n) for n in index["image"]])
    path = _sklearn_file(model)
    if path is None:
        raise ClaimedError(
            f"model: {Path(model).name} is neither an image model folder (model.keras or model.onnx) "
            "nor a scikit-learn model file (.joblib/.pkl)"
        )
    import joblib

    from claimed_airflow.core.tables import read_table

    estimator = joblib.load(path)
    if not hasattr(estimator, "predict_proba"):
        raise ClaimedError(f"model: {type(estimator).__name__} has no predict_proba")
    table = read_table(data, name="data")
    require_columns(table, [label_column], param="data")
    if split:
        require_columns(table, ["split"], param="data")
        table = table[table["split"].astype(str) == split].reset_index(drop=True)
        if table.empty:
            raise ClaimedError(f"split: no row in the {split!r} split of data")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        names = [str(n) for n in names]
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise ClaimedError(f"data: feature column(s) {', '.join(missing)} of the model missing")
    else:
        names = [c for c in table.columns if c != label_column and np.issubdtype(table[c].dtype, np.number)]
    non_numeric = [n for n in names if not np.issubdtype(table[n].dtype, np.number)]
    if non_numeric:
        raise ClaimedError(f"data: feature column(s) {', '.join(non_numeric)} are not numeric; encode them first")
    classes = [str(c) for c in estimator.classes_]
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup.get(_text(v), -1) for v in table[label_column]], dtype=np.int64)
    x = table[names].to_numpy(dtype=np.float64)
    extra = {"frame": hasattr(estimator, "feature_names_in_")}
    return Loaded("tabular", estimator, x, y, classes, [str(i) for i in range(len(table))], names, extra)


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def select(loaded: Loaded, samples: list[str] | None, count: int) -> list[int]:
    """Row positions of the chosen samples: by image name / row number, else the first ``count``."""
    if samples:
        lookup = {name: i for i, name in enumerate(loaded.names)}
        unknown = [s for s in samples if s not in lookup]
        if unknown:
            raise ClaimedError(
                f"samples: unknown sample(s) {', '.join(unknown)} (first known: {', '.join(loaded.names[:5])})"
            )
        return [lookup[s] for s in samples]
    if count < 1:
        raise ClaimedError(f"num_explained: must be at least 1, got {count}")
    return list(range(min(count, len(loaded.names))))
