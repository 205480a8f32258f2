"""Read the UCI Statlog German Credit file (``german.data``) with AIF360's conventions."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component
from claimed_airflow.core.errors import ClaimedError

#: Column names as given by german.doc, the same names AIF360's GermanDataset uses.
COLUMNS = [
    "status",
    "month",
    "credit_history",
    "purpose",
    "credit_amount",
    "savings",
    "employment",
    "investment_as_income_percentage",
    "personal_status",
    "other_debtors",
    "residence_since",
    "property",
    "age",
    "installment_plans",
    "housing",
    "number_of_credits",
    "skill_level",
    "people_liable_for",
    "telephone",
    "foreign_worker",
    "credit",
]
#: AIF360's German credit categorical features (one-hot encoded for training).
CATEGORICAL = [
    "status",
    "credit_history",
    "purpose",
    "savings",
    "employment",
    "other_debtors",
    "property",
    "installment_plans",
    "housing",
    "skill_level",
    "telephone",
    "foreign_worker",
]
#: personal_status codes to sex (AIF360 ``default_preprocessing``): A91/A93/A94 male, A92/A95 female.
SEX = {"A91": "male", "A93": "male", "A94": "male", "A92": "female", "A95": "female"}


def load(path: str):
    """german.data as a DataFrame: named columns, ``sex`` derived, ``credit`` 1 = good, 0 = bad."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=" ", header=None, names=COLUMNS)
    except (OSError, ValueError) as exc:
        raise ClaimedError(f"source: cannot read {path}: {exc}") from None
    if frame["credit"].isna().any() or not set(frame["credit"].unique()) <= {1, 2}:
        raise ClaimedError(f"source: {path} is not german.data (21 space-separated fields, last one 1 or 2)")
    unknown = sorted(set(frame["personal_status"]) - set(SEX))
    if unknown:
        raise ClaimedError(f"source: unknown personal_status code(s) {', '.join(map(str, unknown))}")
    frame.insert(frame.columns.get_loc("personal_status") + 1, "sex", frame["personal_status"].map(SEX))
    frame["credit"] = (frame["credit"] == 1).astype(int)
    return frame


@component("input")
def german_credit(source: InputPath, table: OutputPath = "german_credit.csv") -> dict:
    """Read ``german.data`` (UCI Statlog German Credit) into a table with AIF360's conventions.

    Columns are named as in ``german.doc``; ``sex`` is derived from ``personal_status`` (A91, A93, A94
    male; A92, A95 female) as AIF360's GermanDataset does; ``credit`` is 1 for good and 0 for bad
    credit (the favorable label is 1). ``age`` stays numeric so that any age threshold can be used.

    :param source: The ``german.data`` file (1000 rows, 21 space-separated fields).
    :param table: CSV with the named columns, ``sex`` and ``credit``.
    """
    from claimed_airflow.core.tables import write_table

    frame = load(source)
    write_table(frame, table)
    return {"rows": len(frame), "good": int(frame["credit"].sum())}
