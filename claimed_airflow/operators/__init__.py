"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import ConditionBlessingOperator, LocalDeployOperator
from claimed_airflow.operators.filter import FilterOperator
from claimed_airflow.operators.input import DicomInputOperator, ImagesToDicomOperator
from claimed_airflow.operators.metric import ConfusionMatrixMetricOperator
from claimed_airflow.operators.output import DicomOutputOperator
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import MobileNetV2TrainOperator
from claimed_airflow.operators.transform import (
    ApplyTransformOperator,
    DeidentifyTransformOperator,
    DicomToImagesTransformOperator,
)

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "DeidentifyTransformOperator",
    "DicomInputOperator",
    "DicomOutputOperator",
    "DicomToImagesTransformOperator",
    "FilterOperator",
    "ImagesToDicomOperator",
    "LocalDeployOperator",
    "MobileNetV2TrainOperator",
    "PredictImagesOperator",
]
