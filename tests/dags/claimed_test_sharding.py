"""Test DAGs: a cohort cut into ``shards`` (a run-time Param), read (the first two), de-identified and decoded
once per shard (dynamic task mapping), the shards merged (tests/test_sharding.py compares them with unsharded runs)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from claimed_airflow.operators import (
    DeidentifyTransformOperator,
    DicomInputOperator,
    DicomToImagesTransformOperator,
    MergeShardsTransformOperator,
)
from claimed_airflow.operators.sharding import dicom_input_in_shards, shard_indexes

PARAMS = {
    "source": Param("", type="string"),
    "labels": Param("", type="string"),
    "shards": Param(1, type="integer", minimum=1),
}
SALT_ENV = "CLAIMED_TEST_SHARDING_SALT"

with DAG(dag_id="claimed_test_sharding", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS):
    # the input read in shards too: listed, one read per shard, merged into what DicomInputOperator writes
    dicom = dicom_input_in_shards(
        "dicom_input", "{{ params.source }}", labels="{{ params.labels }}", shards="{{ params.shards }}"
    )
    indexes = shard_indexes(dicom)
    common = {"files": dicom.output["files"]}  # each shard's metadata rows: in its shard table
    decode = {"size": 32, "workers": 1}
    deid = {"salt_env": SALT_ENV, "keep_patient_sex": True}
    images = DicomToImagesTransformOperator.partial(
        task_id="dicom_to_images_shard", shard_tables=dicom.output["shard_tables"], **common, **decode
    ).expand(shard_index=indexes)
    MergeShardsTransformOperator(task_id="dicom_to_images", parts=images.output["images"])
    private = DeidentifyTransformOperator.partial(
        task_id="deidentify_shard", shard_tables=dicom.output["shard_tables"], **common, **deid
    ).expand(shard_index=indexes)
    for output in ("output", "table", "report"):
        MergeShardsTransformOperator(task_id=f"deidentify_{output}", parts=private.output[output])

with DAG(dag_id="claimed_test_sharding_pods", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS):
    dicom = dicom_input_in_shards(
        "dicom_input", "{{ params.source }}", shards="{{ params.shards }}", engine="kubernetes"
    )
    images = DicomToImagesTransformOperator.partial(
        task_id="dicom_to_images_shard",
        metadata=dicom.output["metadata"],
        files=dicom.output["files"],
        shard_tables=dicom.output["shard_tables"],
        size=32,
        workers=1,
        engine="kubernetes",
    ).expand(shard_index=shard_indexes(dicom))
    MergeShardsTransformOperator(task_id="dicom_to_images", parts=images.output["images"])

with DAG(dag_id="claimed_test_sharding_every", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS):
    dicom = DicomInputOperator(task_id="dicom_input", source="{{ params.source }}", shards="{{ params.shards }}")
    DicomToImagesTransformOperator(  # not mapped: no shard_index, so one task (one KFP step) runs every shard
        task_id="dicom_to_images",
        files=dicom.output["files"],
        shard_tables=dicom.output["shard_tables"],
        size=32,
        workers=1,
    )
