"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.analyze import SparkTimeSeriesTrendsOperator
from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import (
    ConditionBlessingOperator,
    KServeDeployOperator,
    LocalDeployOperator,
    WatsonMLDeployOperator,
)
from claimed_airflow.operators.filter import FilterOperator, SparkCohortSplitOperator, SparkSampleOperator
from claimed_airflow.operators.input import (
    ClimateCopernicusInputOperator,
    CovidChestXrayInputOperator,
    DicomInputOperator,
    DicomNetworkInputOperator,
    DicomwebInputOperator,
    GermanCreditInputOperator,
    ImagesToDicomOperator,
)
from claimed_airflow.operators.metric import (
    ConfusionMatrixMetricOperator,
    FairnessMetricOperator,
    LimeMetricOperator,
    RobustnessMetricOperator,
)
from claimed_airflow.operators.monitoring import NotificationEmailOperator
from claimed_airflow.operators.output import DicomNetworkOutputOperator, DicomOutputOperator, DicomwebOutputOperator
from claimed_airflow.operators.predict import PredictImagesOperator
from claimed_airflow.operators.train import (
    FairnessMitigationTrainOperator,
    MobileNetV2TrainOperator,
    TfjobTrainOperator,
)
from claimed_airflow.operators.transform import (
    ApplyTransformOperator,
    DeidentifyTransformOperator,
    DicomToImagesTransformOperator,
    SparkCsvToParquetOperator,
    SparkParquetToCsvOperator,
    SparkSqlOperator,
)
from claimed_airflow.operators.tune import HyperparametersTuneOperator
from claimed_airflow.operators.visualize import MapFromCoordinatesOperator

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ClimateCopernicusInputOperator",
    "ConditionBlessingOperator",
    "ConfusionMatrixMetricOperator",
    "CovidChestXrayInputOperator",
    "DeidentifyTransformOperator",
    "DicomInputOperator",
    "DicomNetworkInputOperator",
    "DicomNetworkOutputOperator",
    "DicomOutputOperator",
    "DicomToImagesTransformOperator",
    "DicomwebInputOperator",
    "DicomwebOutputOperator",
    "FairnessMetricOperator",
    "FairnessMitigationTrainOperator",
    "FilterOperator",
    "GermanCreditInputOperator",
    "HyperparametersTuneOperator",
    "ImagesToDicomOperator",
    "KServeDeployOperator",
    "LimeMetricOperator",
    "LocalDeployOperator",
    "MapFromCoordinatesOperator",
    "MobileNetV2TrainOperator",
    "NotificationEmailOperator",
    "PredictImagesOperator",
    "RobustnessMetricOperator",
    "SparkCohortSplitOperator",
    "SparkCsvToParquetOperator",
    "SparkParquetToCsvOperator",
    "SparkSampleOperator",
    "SparkSqlOperator",
    "SparkTimeSeriesTrendsOperator",
    "TfjobTrainOperator",
    "WatsonMLDeployOperator",
]
