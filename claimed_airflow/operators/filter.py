"""Filter operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.version_compat import SkipMixin


class RowsFilterOperator(ClaimedOperator):
    """Filter a table (CSV, Parquet or JSON lines) by a boolean expression over its columns.

    Same expression language as ``transform.apply``, e.g. ``PatientSex == 'F' and PatientAge >=
    18``.

    Runs the ``filter.rows`` component. Outputs (XCom keys): output.

    :param table: Input table.
    :type table: str
    :param condition: Boolean expression; rows where it is true are kept.
    :type condition: str
    """

    component = "filter.rows"
    component_fields = ("table", "condition")
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        condition: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.condition = condition


class SeriesFilterOperator(ClaimedOperator, SkipMixin):
    """Keep the instances of the series that match every rule; nothing matching ends the run without a result.

    Instances without pixel data (an SR, a presentation state, ... : not an image) are set aside
    with their SOP class named. An empty rule matches anything; values compare without case. When no
    series matches, the gate is false: the tasks after it are skipped (nothing predicted, nothing
    stored) and ``reason`` says in one line what the rules asked for and what the study holds.
    Truncated or unreadable instances were already set aside by ``input.dicom``.

    Runs the ``filter.series`` component. Outputs (XCom keys): selected.

    :param metadata: Metadata table of the study from ``input.dicom`` (Modality, BodyPartExamined,
        SOPClassUID, ...).
    :type metadata: str
    :param modalities: Modalities the model is for, e.g. ``["CR", "DX"]``; empty: any.
    :type modalities: list[str] | None
    :param body_parts: BodyPartExamined values, e.g. ``["CHEST"]``; empty: any (a series without one
        matches only when this is empty).
    :type body_parts: list[str] | None
    :param sop_classes: SOP Class UIDs, e.g. ``["1.2.840.10008.5.1.4.1.1.1"]`` (CR Image Storage);
        empty: any image.
    :type sop_classes: list[str] | None
    :param series_description: Shell pattern over SeriesDescription when the metadata has it, e.g.
        ``*PA*``.
    :type series_description: str
    :param study_instance_uid: Keep only this study (instances of other studies, e.g. in a landing
        folder, are set aside); empty: every study of ``metadata``.
    :type study_instance_uid: str
    """

    component = "filter.series"
    component_fields = (
        "metadata",
        "modalities",
        "body_parts",
        "sop_classes",
        "series_description",
        "study_instance_uid",
    )
    gate = True
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        metadata: str,
        modalities: list[str] | None = None,
        body_parts: list[str] | None = None,
        sop_classes: list[str] | None = None,
        series_description: str = "",
        study_instance_uid: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata
        self.modalities = modalities
        self.body_parts = body_parts
        self.sop_classes = sop_classes
        self.series_description = series_description
        self.study_instance_uid = study_instance_uid


class SparkCohortSplitFilterOperator(ClaimedOperator):
    """Select a cohort of rows with a Spark SQL condition and split it into train and test, seeded by a key.

    Keeps the rows where ``where`` holds and ``key`` is set (e.g. a DICOM metadata table from
    ``input.dicom``: ``label IS NOT NULL AND Modality IN ('CR', 'DX') AND PatientAge >= 18``) and
    adds the column ``split_column`` (``train`` or ``test``). A row goes to test when the first 32
    bits of ``sha256("<seed>:<key>")`` fall below ``test_fraction``: the split depends on the row's
    key alone, not on row order, partitioning, engine or backend, and a row keeps its side when rows
    are added. The query runs in Spark SQL, or in-process with DuckDB for small tables
    (``backend="auto"``, see ``claimed_airflow.core.spark.backend_for``); both give the same rows
    and split.

    Runs the ``filter.spark_cohort_split`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param where: Cohort condition in Spark SQL over the table's columns (``true``: every row): one
        condition of allowed functions and constructs (``claimed_airflow.core.sql``).
    :type where: str
    :param key: Column that identifies a row (the split is a hash of it), e.g. SOPInstanceUID or
        PatientID (all images of a patient on one side).
    :type key: str
    :param test_fraction: Expected share of the cohort in the test split, in [0, 1].
    :type test_fraction: float
    :param seed: Seed of the split: another seed, another split.
    :type seed: int
    :param split_column: Name of the added column.
    :type split_column: str
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` or ``local`` (DuckDB in this process).
    :type backend: str
    """

    component = "filter.spark_cohort_split"
    component_fields = ("table", "where", "key", "test_fraction", "seed", "split_column", "backend")
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        where: str = "true",
        key: str = "SOPInstanceUID",
        test_fraction: float = 0.2,
        seed: int = 42,
        split_column: str = "split",
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.where = where
        self.key = key
        self.test_fraction = test_fraction
        self.seed = seed
        self.split_column = split_column
        self.backend = backend


class SparkSampleFilterOperator(ClaimedOperator):
    """Keep a random fraction of the rows of a table (CSV, Parquet or JSON lines) with Spark.

    Each row is kept with probability ``fraction`` (Bernoulli sampling; Poisson with replacement),
    so the sample size is close to, not exactly, ``fraction`` times the rows. The same seed and
    input give the same sample on the same backend (for Spark: the same version and partitioning);
    the two backends draw different samples. ``backend="auto"`` samples small tables in-process
    (NumPy, no JVM to start) and large ones with Spark (see
    ``claimed_airflow.core.spark.backend_for``).

    Runs the ``filter.spark_sample`` component. Outputs (XCom keys): output.

    :param table: Input table: file or folder (CSV with a header, Parquet, JSON lines).
    :type table: str
    :param fraction: Expected share of rows to keep, in (0, 1]; with replacement, the expected times
        each row is drawn.
    :type fraction: float
    :param seed: Random seed.
    :type seed: int
    :param with_replacement: Sample with replacement (a row can appear more than once).
    :type with_replacement: bool
    :param backend: ``auto`` (local when small and no Spark master is configured, else spark),
        ``spark`` or ``local`` (NumPy's generator in this process).
    :type backend: str
    """

    component = "filter.spark_sample"
    component_fields = ("table", "fraction", "seed", "with_replacement", "backend")
    ui_color = "#f1f8e9"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        fraction: float,
        seed: int = 42,
        with_replacement: bool = False,
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.fraction = fraction
        self.seed = seed
        self.with_replacement = with_replacement
        self.backend = backend
