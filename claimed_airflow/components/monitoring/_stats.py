"""Statistics shared by the reference profile (training time) and model monitoring (production).

The same per-image statistics as ``predict.deployed`` writes to the prediction log, the DICOM header mix,
age groups and per-group error rates, and the drift tests with their correction for many tests.
"""

from __future__ import annotations

import math
from typing import Any

IMAGE_STATS = ("image_mean", "image_std", "image_min", "image_max")
HEADER = ("Manufacturer", "Modality", "BodyPartExamined", "PixelSpacing", "PhotometricInterpretation")
PROTECTED = ("PatientSex", "age_group")
UNKNOWN = "unknown"
AGE_GROUPS = ((40, "<40"), (65, "40-64"), (math.inf, "65+"))


def image_stats(pixels) -> dict[str, Any]:
    """Mean, std, min, max of each image of ``pixels`` (N, H, W), as predict.deployed computes them."""
    import numpy as np

    flat = pixels.reshape(len(pixels), -1).astype(np.float64)
    return {"image_mean": flat.mean(axis=1), "image_std": flat.std(axis=1), "image_min": flat.min(axis=1),
            "image_max": flat.max(axis=1)}  # fmt: skip


def age_group(age: Any) -> str:
    """``<40``, ``40-64``, ``65+`` or ``unknown`` of an age in years."""
    try:
        years = float(age)
    except (TypeError, ValueError):
        return UNKNOWN
    if math.isnan(years):
        return UNKNOWN
    return next(name for limit, name in AGE_GROUPS if years < limit)


def categories(values) -> list[str]:
    """Values as category texts: missing ones ``unknown``."""
    import pandas as pd

    return [UNKNOWN if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) or v == "" else str(v)
            for v in values]  # fmt: skip


def counts(values) -> dict[str, int]:
    """Category -> count (missing values counted as ``unknown``)."""
    from collections import Counter

    return dict(sorted(Counter(categories(values)).items()))


def with_groups(frame):
    """``frame`` with the ``age_group`` column (from PatientAge) and PatientSex as categories."""
    frame = frame.copy()
    frame["age_group"] = [age_group(a) for a in frame.get("PatientAge", [None] * len(frame))]
    frame["PatientSex"] = categories(frame.get("PatientSex", [None] * len(frame)))
    return frame


def group_rates(frame, favorable: str | None = None, min_count: int = 1) -> dict[str, dict[str, dict]]:
    """Per protected attribute and group: n, error rate, rate of ``favorable`` predictions (labelled rows).

    ``frame`` needs columns label and prediction; groups with fewer than ``min_count`` rows are left out.
    ``gap`` per attribute: the largest minus the smallest error rate of its groups.
    """
    frame = with_groups(frame)
    result: dict[str, dict] = {}
    for attribute in PROTECTED:
        groups = {}
        for group, rows in frame.groupby(attribute, sort=True):
            if group == UNKNOWN or len(rows) < min_count:
                continue
            wrong = (rows["label"].astype(str) != rows["prediction"].astype(str)).mean()
            entry = {"n": len(rows), "error_rate": float(wrong)}
            if favorable:
                entry["favorable_rate"] = float((rows["prediction"].astype(str) == favorable).mean())
            groups[str(group)] = entry
        rates = [g["error_rate"] for g in groups.values()]
        result[attribute] = {"groups": groups, "gap": float(max(rates) - min(rates)) if len(rates) > 1 else 0.0}
    return result


def ks_test(sample, reference) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test (continuous features)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(sample, reference).pvalue)


def chi_square_test(observed: dict[str, int], reference: dict[str, int]) -> float:
    """p-value of the chi-square test of homogeneity of two category counts (1.0 with one category)."""
    import numpy as np
    from scipy.stats import chi2_contingency

    names = sorted(set(observed) | set(reference))
    table = np.array([[reference.get(n, 0) for n in names], [observed.get(n, 0) for n in names]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table).pvalue)


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate over many tests)."""
    from scipy.stats import false_discovery_control

    return [float(p) for p in false_discovery_control(p_values, method="bh")] if p_values else []
