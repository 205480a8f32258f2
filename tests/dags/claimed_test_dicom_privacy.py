"""Test DAG: DICOM in, de-identified with a salt from an Airflow connection, decoded in parallel, DICOM SR out."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from claimed_airflow.operators import (
    DeidentifyTransformOperator,
    DicomInputOperator,
    DicomOutputOperator,
    DicomToImagesTransformOperator,
)

with DAG(
    dag_id="claimed_test_dicom_privacy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"source": Param("", type="string"), "predictions": Param("", type="string")},
) as dag:
    dicom = DicomInputOperator(task_id="dicom_input", source="{{ params.source }}", duplicates="keep")
    deid = DeidentifyTransformOperator(
        task_id="deidentify",
        files=dicom.output["files"],
        metadata=dicom.output["metadata"],
        salt_connection="claimed_test_salt",
        keep_patient_sex=True,
    )
    images = DicomToImagesTransformOperator(
        task_id="dicom_to_images", metadata=deid.output["table"], files=deid.output["output"], size=32, workers=2
    )
    DicomOutputOperator(
        task_id="dicom_output",
        predictions=deid.output["table"],
        files=deid.output["output"],
        prediction_column="Modality",
    )
