"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import ConditionBlessingOperator, LocalDeployOperator
from claimed_airflow.operators.filter import FilterOperator
from claimed_airflow.operators.input import DicomInputOperator, GermanCreditInputOperator, ImagesToDicomOperator
from claimed_airflow.operators.metric import (
    ConfusionMatrixMetricOperator,
    FairnessMetricOperator,
    LimeMetricOperator,
    RobustnessMetricOperator,
)
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import FairnessMitigationTrainOperator, MobileNetV2TrainOperator
from claimed_airflow.operators.transform import ApplyTransformOperator, DicomToImagesTransformOperator

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "DicomInputOperator",
    "DicomToImagesTransformOperator",
    "FairnessMetricOperator",
    "FairnessMitigationTrainOperator",
    "FilterOperator",
    "GermanCreditInputOperator",
    "ImagesToDicomOperator",
    "LimeMetricOperator",
    "LocalDeployOperator",
    "MobileNetV2TrainOperator",
    "PredictImagesOperator",
    "RobustnessMetricOperator",
]
