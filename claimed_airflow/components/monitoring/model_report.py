"""Watch a deployed model over a window of its prediction log: input and prediction drift, accuracy, fairness."""

from __future__ import annotations

import html
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from claimed_airflow.core import OutputPath, UiOutputs, component
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


def _moment(name: str, value: str | None) -> datetime:
    if value in (None, "", "None"):
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ClaimedError(f"{name}: {value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reference(reference: str | None, model_name: str, version: str | None, models_root: str | None) -> dict:
    from claimed_airflow.components.metric.reference_profile import PROFILE
    from claimed_airflow.components.predict.deployed import models_root as store
    from claimed_airflow.core import storage

    if not reference:
        if version is None:
            raise ClaimedError("reference: no prediction in the window names a model version; give reference")
        reference = storage.join(store(models_root), model_name, version, PROFILE)
    try:
        with storage.filesystem(reference).open(reference, "r") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ClaimedError(f"reference: cannot read the profile {storage.redact(reference)}: {exc}") from None
    if not isinstance(data, dict) or not {"image_stats", "header", "test"} <= set(data):
        raise ClaimedError(f"reference: {storage.redact(reference)} is not a metric.reference_profile JSON")
    return data


def drift_tests(window, reference: dict, alpha: float) -> list[dict[str, Any]]:
    """KS per image statistic, chi-square per header field and for the predictions; Benjamini-Hochberg over all."""
    from claimed_airflow.components.monitoring import _stats

    tests = []
    for name in _stats.IMAGE_STATS:
        values = window[name].dropna().to_numpy(dtype=float) if name in window else []
        if len(values) and reference["image_stats"].get(name):
            p = _stats.ks_test(values, reference["image_stats"][name])
            tests.append({"test": f"image {name}", "method": "Kolmogorov-Smirnov", "p": p})
    mixes = [(f"header {h}", window[h] if h in window else [None] * len(window), reference["header"].get(h, {}))
             for h in _stats.HEADER]  # fmt: skip
    mixes.append(("predictions", window["prediction"], reference["test"]["predictions"]))
    for name, values, expected in mixes:
        observed = _stats.counts(values)
        if set(observed) <= {_stats.UNKNOWN} or set(expected) <= {_stats.UNKNOWN}:
            continue  # not recorded on one side: nothing to compare
        tests.append({"test": name, "method": "chi-square", "p": _stats.chi_square_test(observed, expected),
                      "window": observed, "reference": expected})  # fmt: skip
    for test, adjusted in zip(tests, _stats.benjamini_hochberg([t["p"] for t in tests]), strict=True):
        test["p_adjusted"], test["drift"] = adjusted, adjusted < alpha
    return tests


def accuracy_of(frame) -> dict[str, Any]:
    correct = frame["label"].astype(str) == frame["prediction"].astype(str)
    per_class = {
        str(c): float(correct[frame["label"].astype(str) == c].mean()) for c in sorted(frame["label"].unique())
    }
    return {"n": len(frame), "accuracy": float(correct.mean()) if len(frame) else None, "per_class_recall": per_class}


def champion_challenger(labelled, champion: str | None) -> dict[str, Any] | None:
    """Accuracy of each model version on the labelled images that every version scored (the same window)."""
    versions = sorted(labelled["version"].astype(str).unique(), key=lambda v: (len(v), v))
    if len(versions) < 2:
        return None
    common = set.intersection(*(set(g["SOPInstanceUID"]) for _, g in labelled.groupby("version")))
    rows = labelled[labelled["SOPInstanceUID"].isin(common)]
    scores = {v: accuracy_of(rows[rows["version"] == v])["accuracy"] for v in versions}
    champion = champion if champion in versions else versions[0]
    challenger = next(v for v in reversed(versions) if v != champion)
    better = challenger if (scores[challenger] or 0) > (scores[champion] or 0) else champion
    return {"images": len(common), "accuracy": scores, "champion": champion, "challenger": challenger, "better": better}


def _plots(daily, reference: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    days = [d.strftime("%m-%d") for d in daily["day"]]
    charts = [
        ("image_mean.png", "Median image mean per day", [("window", daily["image_mean"])],
         float(np.median(reference["image_stats"]["image_mean"]))),
        ("accuracy.png", "Accuracy on labelled predictions per day", [("accuracy", daily["accuracy"])],
         reference["test"]["accuracy"]),
        ("error_rate_by_group.png", "Error rate per group per day",
         [(c.removeprefix("error_"), daily[c]) for c in daily.columns if c.startswith("error_")], None),
    ]  # fmt: skip
    names = []
    for name, title, series, line in charts:
        figure, axes = plt.subplots(figsize=(7, 3), dpi=80)
        for label, values in series:
            axes.plot(days, values.astype(float), marker="o", label=label)
        if line is not None:
            axes.axhline(line, color="grey", linestyle="--", label="reference")
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=60, labelsize=7)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(folder / name)
        plt.close(figure)
        names.append(name)
    return names


def _html(summary: dict, plots: list[str], folder_name: str) -> str:
    def cell(value: Any) -> str:
        return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))

    title = f"Model monitoring: {summary['model']} ({summary['window']['start']} to {summary['window']['end']})"
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"]
    parts.append(f"<p><b>{html.escape(summary['verdict'])}</b></p><ul>")
    parts += [f"<li>{html.escape(f)}</li>" for f in summary["findings"]] + ["</ul><h2>Drift</h2><table>"]
    parts.append("<tr><th>test</th><th>method</th><th>p</th><th>p (BH)</th><th>drift</th><th>window</th></tr>")
    for t in summary["drift"]:
        cells = [cell(t[k]) for k in ("test", "method", "p", "p_adjusted", "drift")]
        cells.append(cell(", ".join(f"{k}: {v}" for k, v in t.get("window", {}).items())))
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table><h2>Performance and fairness</h2><pre>")
    parts.append(html.escape(json.dumps({k: summary[k] for k in ("performance", "fairness", "versions")}, indent=2)))
    parts.append("</pre>")
    parts += [f'<img src="{html.escape(folder_name)}/{html.escape(p)}" alt="{html.escape(p)}">' for p in plots]
    return "\n".join(parts)


@component("monitoring", ui=UiOutputs(image_folder="plots"))
def model_report(
    model_name: str,
    window_end: str | None = None,
    window_days: int = 1,
    history_days: int = 30,
    reference: str | None = None,
    champion: str | None = None,
    alpha: float = 0.01,
    min_images: int = 30,
    min_labelled: int = 20,
    max_accuracy_drop: float = 0.1,
    max_gap_increase: float = 0.15,
    min_group: int = 10,
    log_root: str | None = None,
    models_root: str | None = None,
    report: OutputPath = "report.html",
    summary: OutputPath = "summary.json",
    plots: OutputPath = "plots",
) -> dict:
    """Compare a window of the prediction log with the model's reference profile; ``alert`` when a threshold is crossed.

    Drift: a two-sample Kolmogorov-Smirnov test per image statistic (against the training images'
    sample), a chi-square test per DICOM header field and for the predicted classes (against the test
    split); the p-values are adjusted with Benjamini-Hochberg (false discovery rate ``alpha``) and a test
    whose adjusted p-value is below ``alpha`` is drift. Performance: accuracy and per-class recall on the
    window's predictions that have a radiologist's label (``monitoring.feedback``); an alert when it is
    ``max_accuracy_drop`` below the test split's. Fairness: error rate per group of PatientSex and age
    group; an alert when the gap between groups grows by more than ``max_gap_increase`` over the
    reference's. With two model versions in the window: champion/challenger on the images both scored.
    Plots per day over ``history_days``, an HTML report and a JSON summary.

    :param model_name: The model (as in the prediction log and the model store).
    :param window_end: End of the window (ISO 8601; the run's data interval end); default now.
    :param window_days: Length of the window in days.
    :param history_days: Days of the plots over time (ending at ``window_end``).
    :param reference: Reference profile JSON; default the ``reference_profile.json`` in the model store of
        the version judged: ``champion``, else the window's newest.
    :param champion: The deployed version: judged against its reference, and against a challenger (another
        version scored on the same images); default the window's newest is judged, the oldest is champion.
    :param alpha: False discovery rate of the drift tests (Benjamini-Hochberg).
    :param min_images: Fewer images in the window: no drift test.
    :param min_labelled: Fewer labelled predictions: no accuracy alert.
    :param max_accuracy_drop: Alert when the accuracy falls this far below the reference's.
    :param max_gap_increase: Alert when a protected attribute's error-rate gap grows this much over the reference's.
    :param min_group: Groups with fewer labelled predictions are left out of the fairness metrics.
    :param log_root: Root of the prediction log and its feedback; default the output root.
    :param models_root: Model store (for the default reference); default ``<output root>/models``.
    :param report: HTML report (values escaped), with the plots.
    :param summary: JSON: alert, verdict, findings, window, drift tests, performance, fairness, versions.
    :param plots: Folder of PNG plots over time.
    """
    import pandas as pd

    from claimed_airflow.components.monitoring import _stats
    from claimed_airflow.core import prediction_log as plog
    from claimed_airflow.core.context import current

    for name, value in (("window_days", window_days), ("history_days", history_days), ("min_group", min_group)):
        if value < 1:
            raise ClaimedError(f"{name}: must be at least 1, got {value}")
    if not 0 < alpha < 1:
        raise ClaimedError(f"alpha: must be between 0 and 1, got {alpha}")
    root = log_root or current().root or None
    end = _moment("window_end", window_end)
    start = end - timedelta(days=window_days)
    first = end - timedelta(days=max(window_days, history_days))
    logged = plog.read(root, model_name, ended_after=first, ended_until=end)
    when = pd.to_datetime(logged["ended_at"], utc=True)
    window = logged[(when > start) & (when <= end)]
    versions = sorted(window["version"].astype(str).unique(), key=lambda v: (len(v), v))
    main = champion if champion in versions else (versions[-1] if versions else None)  # the one judged
    profile = _reference(reference, model_name, main, models_root)
    findings: list[str] = []
    scored = window[window["version"].astype(str) == main]  # the images once, as the judged version read them
    tests = drift_tests(scored, profile, alpha) if len(scored) >= min_images else []
    findings += [f"drift: {t['test']} (p adjusted {t['p_adjusted']:.2g})" for t in tests if t["drift"]]
    feedback = plog.read_feedback(root, model_name)[["SOPInstanceUID", "label"]]
    labelled = window.drop(columns=["label"], errors="ignore").merge(feedback, on="SOPInstanceUID", how="inner")
    judged = labelled[labelled["version"].astype(str) == main] if versions else labelled
    performance = accuracy_of(judged)
    reference_accuracy = profile["test"]["accuracy"]
    performance["reference_accuracy"] = reference_accuracy
    if performance["n"] >= min_labelled and performance["accuracy"] < reference_accuracy - max_accuracy_drop:
        findings.append(
            f"accuracy {performance['accuracy']:.3f} on {performance['n']} labelled"
            f" (reference {reference_accuracy:.3f})"
        )
    fairness = _stats.group_rates(judged, profile.get("favorable_label") or None, min_group) if len(judged) else {}
    for attribute, rates in fairness.items():
        before = profile["test"]["groups"].get(attribute, {}).get("gap", 0.0)
        rates["reference_gap"] = before
        rates["reference_groups"] = profile["test"]["groups"].get(attribute, {}).get("groups", {})
        if len(rates["groups"]) > 1 and rates["gap"] - before > max_gap_increase:
            worst = max(rates["groups"], key=lambda g: rates["groups"][g]["error_rate"])
            findings.append(
                f"fairness: {attribute} error-rate gap {rates['gap']:.3f} (reference {before:.3f}; worst {worst})"
            )
    # per day over the history: image mean, accuracy and error rate per group
    days = pd.date_range(end=end.replace(hour=0, minute=0, second=0, microsecond=0), periods=history_days, freq="D")
    history = logged[(when > end - timedelta(days=history_days)) & (when <= end)].copy()
    history["day"] = pd.to_datetime(history["ended_at"], utc=True).dt.floor("D")
    history = _stats.with_groups(
        history.drop(columns=["label"], errors="ignore").merge(feedback, on="SOPInstanceUID", how="left")
    )
    rows = []
    for day in days:
        today = history[history["day"] == day]
        known = today[today["label"].notna()]
        row = {"day": day, "images": len(today), "image_mean": today["image_mean"].median() if len(today) else None}
        row["accuracy"] = accuracy_of(known)["accuracy"] if len(known) else None
        for attribute in _stats.PROTECTED:
            for group, rows_of in known.groupby(attribute):
                if group != _stats.UNKNOWN:
                    row[f"error_{attribute}={group}"] = 1 - accuracy_of(rows_of)["accuracy"]
        rows.append(row)
    daily = pd.DataFrame(rows)
    names = _plots(daily, profile, Path(plots))
    alert = bool(findings)
    verdict = f"{len(findings)} monitoring finding(s)" if alert else "no monitoring finding"
    result = {
        "model": model_name,
        "version": main,
        "alert": alert,
        "verdict": verdict,
        "findings": findings,
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "images": len(window),
            "labelled": len(labelled),
        },
        "drift_tests": len(tests),
        "drifted": sum(t["drift"] for t in tests),
        "drift": tests,
        "performance": performance,
        "fairness": fairness,
        "versions": champion_challenger(labelled, champion),
        "daily": json.loads(daily.assign(day=daily["day"].dt.strftime("%Y-%m-%d")).to_json(orient="records")),
    }
    Path(summary).write_text(json.dumps(result, indent=2))
    Path(report).write_text(_html(result, names, Path(plots).name))
    log.info("%s: %s (%d image(s), %d labelled)", model_name, verdict, len(window), len(labelled))
    values = {
        "alert": alert,
        "verdict": verdict,
        "findings": len(findings),
        "images": len(window),
        "labelled": len(labelled),
    }
    if result["versions"]:
        values["better_version"] = result["versions"]["better"]
    return values
