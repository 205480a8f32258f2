"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""

from claimed_airflow.operators.analyze import SparkTimeSeriesTrendsAnalyzeOperator
from claimed_airflow.operators.approval import ModelApprovalOperator
from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.deploy import (
    ConditionBlessingDeployOperator,
    KServeDeployOperator,
    LocalDeployOperator,
    WatsonMLDeployOperator,
)
from claimed_airflow.operators.filter import (
    RowsFilterOperator,
    SeriesFilterOperator,
    SparkCohortSplitFilterOperator,
    SparkSampleFilterOperator,
)
from claimed_airflow.operators.input import (
    ClimateCopernicusInputOperator,
    CovidChestXrayInputOperator,
    DicomInputOperator,
    DicomListingInputOperator,
    DicomMergeInputOperator,
    DicomNetworkInputOperator,
    DicomShardInputOperator,
    DicomwebInputOperator,
    GermanCreditInputOperator,
    ImagesToDicomInputOperator,
    LabelsInputOperator,
)
from claimed_airflow.operators.metric import (
    ConfusionMatrixMetricOperator,
    FairnessMetricOperator,
    LimeMetricOperator,
    ReferenceProfileMetricOperator,
    RobustnessMetricOperator,
)
from claimed_airflow.operators.monitoring import (
    FeedbackMonitoringOperator,
    ModelReportMonitoringOperator,
    NotificationEmailMonitoringOperator,
)
from claimed_airflow.operators.output import (
    DicomNetworkOutputOperator,
    DicomOutputOperator,
    DicomwebOutputOperator,
    LabelStudioTasksOutputOperator,
    PredictionLogOutputOperator,
)
from claimed_airflow.operators.predict import (
    DeployedPredictOperator,
    ImagesPredictOperator,
    ResolveModelPredictOperator,
    StudyPredictOperator,
)
from claimed_airflow.operators.train import (
    FairnessMitigationTrainOperator,
    MobileNetV2TrainOperator,
    TfjobTrainOperator,
)
from claimed_airflow.operators.transform import (
    ApplyTransformOperator,
    DeidentifyTransformOperator,
    DicomToImagesTransformOperator,
    MergeShardsTransformOperator,
    SparkCsvToParquetTransformOperator,
    SparkParquetToCsvTransformOperator,
    SparkSqlTransformOperator,
)
from claimed_airflow.operators.tune import HyperparametersTuneOperator
from claimed_airflow.operators.visualize import MapFromCoordinatesVisualizeOperator

__all__ = [
    "ApplyTransformOperator",
    "ClaimedOperator",
    "ClimateCopernicusInputOperator",
    "ConditionBlessingDeployOperator",
    "ConfusionMatrixMetricOperator",
    "CovidChestXrayInputOperator",
    "DeidentifyTransformOperator",
    "DeployedPredictOperator",
    "DicomInputOperator",
    "DicomListingInputOperator",
    "DicomMergeInputOperator",
    "DicomNetworkInputOperator",
    "DicomNetworkOutputOperator",
    "DicomOutputOperator",
    "DicomShardInputOperator",
    "DicomToImagesTransformOperator",
    "DicomwebInputOperator",
    "DicomwebOutputOperator",
    "FairnessMetricOperator",
    "FairnessMitigationTrainOperator",
    "FeedbackMonitoringOperator",
    "GermanCreditInputOperator",
    "HyperparametersTuneOperator",
    "ImagesPredictOperator",
    "ImagesToDicomInputOperator",
    "KServeDeployOperator",
    "LabelStudioTasksOutputOperator",
    "LabelsInputOperator",
    "LimeMetricOperator",
    "LocalDeployOperator",
    "MapFromCoordinatesVisualizeOperator",
    "MergeShardsTransformOperator",
    "MobileNetV2TrainOperator",
    "ModelApprovalOperator",
    "ModelReportMonitoringOperator",
    "NotificationEmailMonitoringOperator",
    "PredictionLogOutputOperator",
    "ReferenceProfileMetricOperator",
    "ResolveModelPredictOperator",
    "RobustnessMetricOperator",
    "RowsFilterOperator",
    "SeriesFilterOperator",
    "SparkCohortSplitFilterOperator",
    "SparkCsvToParquetTransformOperator",
    "SparkParquetToCsvTransformOperator",
    "SparkSampleFilterOperator",
    "SparkSqlTransformOperator",
    "SparkTimeSeriesTrendsAnalyzeOperator",
    "StudyPredictOperator",
    "TfjobTrainOperator",
    "WatsonMLDeployOperator",
]
