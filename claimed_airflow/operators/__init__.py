"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import (
    ConditionBlessingOperator,
    KServeDeployOperator,
    LocalDeployOperator,
    WatsonMLDeployOperator,
)
from claimed_airflow.operators.filter import FilterOperator
from claimed_airflow.operators.input import DicomInputOperator, ImagesToDicomOperator
from claimed_airflow.operators.metric import ConfusionMatrixMetricOperator
from claimed_airflow.operators.monitoring import NotificationEmailOperator
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import MobileNetV2TrainOperator
from claimed_airflow.operators.transform import ApplyTransformOperator, DicomToImagesTransformOperator

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "DicomInputOperator",
    "DicomToImagesTransformOperator",
    "FilterOperator",
    "ImagesToDicomOperator",
    "KServeDeployOperator",
    "LocalDeployOperator",
    "MobileNetV2TrainOperator",
    "NotificationEmailOperator",
    "PredictImagesOperator",
    "WatsonMLDeployOperator",
]
