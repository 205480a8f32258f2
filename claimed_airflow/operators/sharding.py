"""Dynamic task mapping over the shards of an input (``input.dicom`` and the PACS inputs with ``shards``).

::

    dicom = DicomInputOperator(task_id="dicom_input", source=..., shards="{{ params.shards }}")
    parts = DicomToImagesTransformOperator.partial(
        task_id="dicom_to_images_shard", metadata=dicom.output["metadata"], files=dicom.output["files"],
        shard_tables=dicom.output["shard_tables"],
    ).expand(shard_index=shard_indexes(dicom))
    MergeShardsTransformOperator(task_id="dicom_to_images", parts=parts.output["images"])

Airflow expands over a task's return value only, so :func:`shard_indexes` adds a small task
``<input>_shards`` that returns the input's ``shard_index`` list (N numbers; the shard tables stay in
storage). Params are read when the run starts, so the number of shards may be a Param: the DAG's shape,
and its parse time, do not depend on it.
"""

from __future__ import annotations

from typing import Any

SUFFIX = "_shards"


def shard_indexes(input_task: Any) -> Any:
    """An XComArg of ``[0, ..., N-1]``, the shards of ``input_task``: what a data-parallel task expands over."""
    from airflow.providers.common.compat.sdk import task

    @task(task_id=f"{input_task.task_id}{SUFFIX}", multiple_outputs=False)
    def shards(result: dict) -> list[int]:
        """The input's shard indexes as a return value (Airflow maps over return values only)."""
        indexes = result.get("shard_index") if isinstance(result, dict) else None
        if not isinstance(indexes, list) or not indexes:
            raise ValueError(f"{input_task.task_id} returned no shard_index; it is not a sharding input")
        return [int(i) for i in indexes]

    indexes = shards(input_task.output)
    indexes.operator.claimed_shards_of = input_task.task_id  # the KFP export makes it a dsl.ParallelFor
    return indexes


def dicom_input_in_shards(
    task_id: str,
    source: str,
    *,
    shards: int | str = 1,
    shard_bytes: str | None = None,
    labels: str | None = None,
    label_key: str = "file",
    label_column: str = "label",
    duplicates: str = "reject",
    max_rejected: int | str | None = None,
    **task_kwargs: Any,
) -> Any:
    """``input.dicom`` of a folder too large for one task, as three steps (``components/input/dicom_listing.py``):
    ``<task_id>_listing`` lists the folder into shards, ``<task_id>_shard`` reads each shard in its own task
    (one pod each on Kubernetes), ``<task_id>`` merges them. Returns the merge: its outputs are those of
    ``DicomInputOperator`` (``metadata``, ``files``, ``shard_tables``), so ``shard_indexes(<it>)`` fans the next
    data-parallel step out over the same shards. ``task_kwargs`` (engine, kubernetes, retries, ...) go to all
    three steps."""
    from claimed_airflow.operators.input import (
        DicomListingInputOperator,
        DicomMergeInputOperator,
        DicomShardInputOperator,
    )

    listing = DicomListingInputOperator(
        task_id=f"{task_id}_listing", source=source, shards=shards, shard_bytes=shard_bytes, **task_kwargs
    )
    reads = DicomShardInputOperator.partial(
        task_id=f"{task_id}_shard",
        files=source,  # the listed folder: the shard tables' names are relative to it
        shard_tables=listing.output["shard_tables"],
        labels=labels,
        label_key=label_key,
        label_column=label_column,
        duplicates=duplicates,
        max_rejected=max_rejected,
        **task_kwargs,
    ).expand(shard_index=shard_indexes(listing))
    return DicomMergeInputOperator(
        task_id=task_id,
        metadata_parts=reads.output["metadata"],
        files_parts=reads.output["instances"],
        duplicates=duplicates,
        max_rejected=max_rejected,
        **task_kwargs,
    )
