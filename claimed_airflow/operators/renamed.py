"""Operator classes renamed when one naming rule (``{Name}{Category}Operator``) replaced per-component names."""

# Former name -> current name; the former names still import from claimed_airflow.operators, with a warning.
RENAMED = {
    "ConditionBlessingOperator": "ConditionBlessingDeployOperator",
    "FilterOperator": "RowsFilterOperator",
    "ImagesToDicomOperator": "ImagesToDicomInputOperator",
    "MapFromCoordinatesOperator": "MapFromCoordinatesVisualizeOperator",
    "NotificationEmailOperator": "NotificationEmailMonitoringOperator",
    "PredictImagesOperator": "ImagesPredictOperator",
    "SparkCohortSplitOperator": "SparkCohortSplitFilterOperator",
    "SparkCsvToParquetOperator": "SparkCsvToParquetTransformOperator",
    "SparkParquetToCsvOperator": "SparkParquetToCsvTransformOperator",
    "SparkSampleOperator": "SparkSampleFilterOperator",
    "SparkSqlOperator": "SparkSqlTransformOperator",
    "SparkTimeSeriesTrendsOperator": "SparkTimeSeriesTrendsAnalyzeOperator",
}


def __getattr__(name: str):
    """``claimed_airflow.operators``' module ``__getattr__``: a former class name gives the class it is now,
    with a DeprecationWarning naming it."""
    if name not in RENAMED:
        raise AttributeError(f"module 'claimed_airflow.operators' has no attribute {name!r}")
    import warnings

    import claimed_airflow.operators as operators

    warnings.warn(
        f"claimed_airflow.operators.{name} is now {RENAMED[name]}; the former name goes away in 1.0",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(operators, RENAMED[name])
