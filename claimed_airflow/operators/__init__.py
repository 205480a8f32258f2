"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.analyze import SparkTimeSeriesTrendsOperator
from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import ConditionBlessingOperator, LocalDeployOperator
from claimed_airflow.operators.filter import FilterOperator, SparkSampleOperator
from claimed_airflow.operators.input import DicomInputOperator, ImagesToDicomOperator
from claimed_airflow.operators.metric import ConfusionMatrixMetricOperator
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import MobileNetV2TrainOperator
from claimed_airflow.operators.transform import (
    ApplyTransformOperator,
    DicomToImagesTransformOperator,
    SparkCsvToParquetOperator,
    SparkParquetToCsvOperator,
    SparkSqlOperator,
)

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "DicomInputOperator",
    "DicomToImagesTransformOperator",
    "FilterOperator",
    "ImagesToDicomOperator",
    "LocalDeployOperator",
    "MobileNetV2TrainOperator",
    "PredictImagesOperator",
    "SparkCsvToParquetOperator",
    "SparkParquetToCsvOperator",
    "SparkSampleOperator",
    "SparkSqlOperator",
    "SparkTimeSeriesTrendsOperator",
]
