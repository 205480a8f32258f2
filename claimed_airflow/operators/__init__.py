"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import ConditionBlessingOperator, LocalDeployOperator
from claimed_airflow.operators.filter import FilterOperator
from claimed_airflow.operators.input import (
    ClimateCopernicusInputOperator,
    CovidChestXrayInputOperator,
    DicomInputOperator,
    ImagesToDicomOperator,
)
from claimed_airflow.operators.metric import ConfusionMatrixMetricOperator
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import MobileNetV2TrainOperator, TfjobTrainOperator
from claimed_airflow.operators.transform import ApplyTransformOperator, DicomToImagesTransformOperator
from claimed_airflow.operators.tune import HyperparametersTuneOperator
from claimed_airflow.operators.visualize import MapFromCoordinatesOperator

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ClimateCopernicusInputOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "CovidChestXrayInputOperator",
    "DicomInputOperator",
    "DicomToImagesTransformOperator",
    "FilterOperator",
    "HyperparametersTuneOperator",
    "ImagesToDicomOperator",
    "LocalDeployOperator",
    "MapFromCoordinatesOperator",
    "MobileNetV2TrainOperator",
    "PredictImagesOperator",
    "TfjobTrainOperator",
]
