"""Bias mitigation with AIF360: reweighing (pre-processing) and adversarial debiasing (in-processing)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns

log = logging.getLogger("claimed_airflow")

#: mitigation -> (model before, model after)
PAIRS = {
    "reweighing": ("logistic_regression", "reweighing"),
    "adversarial_debiasing": ("neural_network", "adversarial_debiasing"),
}


def features(table, *, label_column: str, protected_masks: dict, categorical: list[str], drop: list[str]):
    """Model inputs: one-hot categorical columns, numeric columns, protected columns as 0/1 privileged."""
    import pandas as pd

    frame = table.drop(columns=[label_column, *drop])
    for column, mask in protected_masks.items():
        frame[column] = mask.astype(float).to_numpy()
    categorical = [c for c in categorical if c in frame.columns and c not in protected_masks]
    frame = pd.get_dummies(frame, columns=categorical, dtype=float)
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ClaimedError(
            f"categorical_columns: non-numeric column(s) {', '.join(non_numeric)} must be listed as categorical "
            "or dropped"
        )
    return frame.astype(float)


def _neural_network(train_ds, test_ds, *, attribute: str, debias: bool, epochs: int, seed: int, adversary_loss_weight):
    """AIF360 AdversarialDebiasing in its own TF1 graph and session (eager mode stays on elsewhere)."""
    import tensorflow as tf
    from aif360.algorithms.inprocessing import AdversarialDebiasing

    graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    with graph.as_default(), tf.compat.v1.Session(graph=graph, config=config) as session:
        tf.compat.v1.set_random_seed(seed)
        model = AdversarialDebiasing(
            privileged_groups=[{attribute: 1.0}],
            unprivileged_groups=[{attribute: 0.0}],
            scope_name="debiased" if debias else "plain",
            debias=debias,
            sess=session,
            seed=seed,
            num_epochs=epochs,
            adversary_loss_weight=adversary_loss_weight,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # aif360 prints every 200 batches
            model.fit(train_ds)
            predicted = model.predict(test_ds)
    return predicted.labels.ravel()


@component("train")
def fairness_mitigation(
    table: InputPath,
    protected: dict,
    label_column: str = "label",
    favorable_label: str = "1",
    mitigate_for: str | None = None,
    categorical_columns: list[str] | None = None,
    drop_columns: list[str] | None = None,
    methods: list[str] | None = None,
    test_fraction: float = 0.3,
    epochs: int = 50,
    adversary_loss_weight: float = 0.1,
    seed: int = 42,
    report: OutputPath = "mitigation.json",
    models: OutputPath = "models.csv",
    plot: OutputPath = "mitigation.png",
    summary: OutputPath = "before_after.md",
    predictions: OutputPath = "predictions.csv",
) -> dict:
    """Train classifiers with and without AIF360 bias mitigation; report accuracy and fairness before/after.

    The table is split (seeded, stratified by label) into train and test rows. Reweighing: logistic
    regression without (before) and with (after) AIF360 Reweighing instance weights. Adversarial
    debiasing: AIF360's AdversarialDebiasing network without (before) and with (after) its adversary.
    Every model is measured on the test rows: accuracy and, for every protected column, the five
    metrics of ``metric.fairness`` with verdicts. Same data and seed give the same numbers.

    :param table: Training table with the label, the protected columns and the features.
    :param protected: Privileged group per protected column: a list of values (``{"sex": ["male"]}``)
        or an expression (``{"age": "age > 25"}``). Protected columns enter the models as 0/1.
    :param label_column: Column with the true label.
    :param favorable_label: Label value of the favorable outcome (e.g. ``1`` for good credit).
    :param mitigate_for: Protected column the mitigation targets; default the first of ``protected``.
    :param categorical_columns: Columns to one-hot encode; default every non-numeric column.
    :param drop_columns: Columns not used as features (e.g. ``personal_status``, which encodes sex).
    :param methods: Mitigations to run: ``reweighing`` and/or ``adversarial_debiasing`` (default both).
    :param test_fraction: Share of rows held out for measuring (0 to 1).
    :param epochs: Training epochs of the adversarial debiasing networks.
    :param adversary_loss_weight: Weight of the adversary's loss in adversarial debiasing.
    :param seed: Random seed of the split and the models.
    :param report: JSON: per model accuracy and per protected column the five metrics; the before/after
        pairs of each mitigation.
    :param models: CSV: one row per model with accuracy, each metric value and the biased counts.
    :param plot: PNG bar chart of the metrics of every model for the mitigated column.
    :param summary: Markdown before/after table: accuracy and biased metrics (of 5) per protected column.
    :param predictions: CSV of the test rows: the table's columns (the label as 1 = favorable, 0) plus
        ``prediction_<model>`` (1/0) per model, ready for ``metric.fairness`` with ``favorable_label=1``.
    """
    import numpy as np
    import pandas as pd
    from aif360.algorithms.preprocessing import Reweighing
    from aif360.datasets import BinaryLabelDataset
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from claimed_airflow.components.metric.fairness import (
        METRICS,
        binary,
        fairness_metrics,
        group_mask,
        plot_metrics,
    )
    from claimed_airflow.core.tables import read_table, write_table

    if not protected:
        raise ClaimedError("protected: give at least one protected column and its privileged group")
    if not 0 < test_fraction < 1:
        raise ClaimedError(f"test_fraction: must be between 0 and 1, got {test_fraction}")
    if epochs < 1:
        raise ClaimedError(f"epochs: must be at least 1, got {epochs}")
    methods = list(PAIRS) if methods is None else methods
    unknown = sorted(set(methods) - set(PAIRS))
    if unknown or not methods:
        raise ClaimedError(f"methods: expected some of {', '.join(PAIRS)}, got {', '.join(methods) or 'none'}")
    mitigate_for = mitigate_for or next(iter(protected))
    if mitigate_for not in protected:
        raise ClaimedError(f"mitigate_for: {mitigate_for!r} is not a protected column ({', '.join(protected)})")
    frame = read_table(table, name="table")
    require_columns(frame, [label_column], param="table")
    require_columns(frame, list(protected), param="protected")
    require_columns(frame, list(drop_columns or []), param="drop_columns")
    frame = frame.dropna(subset=list(protected)).reset_index(drop=True)
    masks = {c: group_mask(frame, c, spec, param=f"protected[{c}]") for c, spec in protected.items()}
    if categorical_columns is None:
        categorical_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    require_columns(frame, categorical_columns, param="categorical_columns")
    x = features(
        frame,
        label_column=label_column,
        protected_masks=masks,
        categorical=categorical_columns,
        drop=list(drop_columns or []),
    )
    y = binary(frame[label_column], favorable_label)
    if len(set(y)) < 2:
        raise ClaimedError(f"favorable_label: {favorable_label!r} gives a single class in {label_column!r}")
    train_idx, test_idx = train_test_split(
        np.arange(len(frame)), test_size=test_fraction, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(x.iloc[train_idx])
    scaled = pd.DataFrame(scaler.transform(x), columns=x.columns)

    def dataset(rows):
        part = scaled.iloc[rows].copy()
        part[mitigate_for] = x[mitigate_for].iloc[rows].to_numpy()  # keep the 0/1 protected value
        part["__label__"] = y[rows]
        return BinaryLabelDataset(
            df=part.reset_index(drop=True),
            label_names=["__label__"],
            protected_attribute_names=[mitigate_for],
            favorable_label=1.0,
            unfavorable_label=0.0,
        )

    train_ds, test_ds = dataset(train_idx), dataset(test_idx)
    truth = y[test_idx]
    predicted_by: dict[str, np.ndarray] = {}
    if "reweighing" in methods:
        plain = LogisticRegression(max_iter=1000, random_state=seed).fit(train_ds.features, y[train_idx])
        predicted_by["logistic_regression"] = plain.predict(test_ds.features)
        weights = (
            Reweighing(unprivileged_groups=[{mitigate_for: 0.0}], privileged_groups=[{mitigate_for: 1.0}])
            .fit_transform(train_ds)
            .instance_weights
        )
        weighted = LogisticRegression(max_iter=1000, random_state=seed).fit(
            train_ds.features, y[train_idx], sample_weight=weights
        )
        predicted_by["reweighing"] = weighted.predict(test_ds.features)
    if "adversarial_debiasing" in methods:
        for name, debias in (("neural_network", False), ("adversarial_debiasing", True)):
            log.info("training %s (%d epochs)", name, epochs)
            predicted_by[name] = _neural_network(
                train_ds,
                test_ds,
                attribute=mitigate_for,
                debias=debias,
                epochs=epochs,
                seed=seed,
                adversary_loss_weight=adversary_loss_weight,
            )
    results = {}
    rows = []
    for name, predicted in predicted_by.items():
        predicted = np.asarray(predicted, float)
        entry = {"accuracy": float(np.mean(predicted == truth)), "attributes": {}}
        row = {"model": name, "accuracy": entry["accuracy"]}
        for column, mask in masks.items():
            result = fairness_metrics(truth, predicted, mask.to_numpy()[test_idx].astype(float))
            entry["attributes"][column] = result
            row[f"{column}_biased"] = result["biased"]
            for metric in METRICS:
                row[f"{column}_{metric}"] = result[metric]["value"]
        results[name] = entry
        rows.append(row)
    pairs = {m: {"before": PAIRS[m][0], "after": PAIRS[m][1]} for m in PAIRS if m in methods}
    record = {
        "mitigate_for": mitigate_for,
        "train_rows": len(train_idx),
        "test_rows": len(test_idx),
        "seed": seed,
        "models": results,
        "mitigations": pairs,
    }
    with open(report, "w") as handle:
        json.dump(record, handle, indent=2)
    write_table(pd.DataFrame(rows), models)
    Path(summary).write_text(before_after(results, pairs, list(masks)))
    test_rows = frame.iloc[test_idx].copy()
    for name, predicted in predicted_by.items():
        test_rows[f"prediction_{name}"] = np.where(np.asarray(predicted) == 1.0, 1, 0)
    test_rows[label_column] = y[test_idx].astype(int)
    write_table(test_rows, predictions)
    plot_metrics(
        {name: results[name]["attributes"][mitigate_for] for name in results}, plot, title=f"{mitigate_for}: models"
    )
    values = {}
    for method, pair in pairs.items():
        before, after = results[pair["before"]], results[pair["after"]]
        values[f"{method}_accuracy_before"] = before["accuracy"]
        values[f"{method}_accuracy_after"] = after["accuracy"]
        values[f"{method}_biased_before"] = before["attributes"][mitigate_for]["biased"]
        values[f"{method}_biased_after"] = after["attributes"][mitigate_for]["biased"]
    return values


def before_after(models: dict, pairs: dict, attributes: list[str]) -> str:
    """Markdown table: one row per mitigation, accuracy and biased metrics (of 5) before -> after."""
    head = ["mitigation", "model before -> after", "accuracy"] + [f"{a}: biased of 5" for a in attributes]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for method, pair in pairs.items():
        before, after = models[pair["before"]], models[pair["after"]]
        cells = [
            method.replace("_", " "),
            f"{pair['before'].replace('_', ' ')} -> {pair['after'].replace('_', ' ')}",
            f"{before['accuracy']:.1%} -> {after['accuracy']:.1%}",
        ]
        cells += [f"{before['attributes'][a]['biased']} -> {after['attributes'][a]['biased']}" for a in attributes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
