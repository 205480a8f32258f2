"""Sharding on Kubeflow: a data-parallel task expanded over an input's shards becomes ``dsl.ParallelFor`` (one
pod per shard), the merge of its outputs ``dsl.Collected``.

Checked on the compiled YAML: kfp.local 2.17.3 cannot run it (for each loop iteration it replaces every input
the loop takes from an upstream task's output by the loop item, task_spec_utils.
create_parameter_loop_iteration_task_spec, so the step gets ``metadata=0``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp.dsl")

from claimed_airflow.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "tests" / "dags" / "claimed_test_sharding.py"


def _export(tmp_path: Path) -> Path:
    path = tmp_path / "pods.yaml"
    assert cli(["export-kfp", str(DAG_FILE), "--dag-id", "claimed_test_sharding_pods", "-o", str(path)]) == 0
    return path


def test_mapped_task_becomes_parallel_for_over_the_input_shards(tmp_path):
    spec = next(yaml.safe_load_all(_export(tmp_path).read_text()))  # then the platform (pod) spec
    root = spec["root"]["dag"]["tasks"]
    name, loop = next((n, t) for n, t in root.items() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith(
        "pipelinechannel--claimed-shard-indexes-Output"
    )
    assert {"dicom-input", "claimed-shard-indexes", "dicom-to-images"} <= set(root)
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    (mapped,) = inner.values()
    parameters = mapped["inputs"]["parameters"]
    assert parameters["claimed_task_id"]["runtimeValue"]["constant"] == "dicom_to_images_shard[shard_index]"
    assert "componentInputParameter" in parameters["shard_index"]  # the loop item
    merge = root["dicom-to-images"]["inputs"]["parameters"]["parts"]
    assert merge["taskOutputParameter"]["producerTask"] == name  # dsl.Collected of the loop's outputs


def test_a_shard_step_writes_where_airflow_s_mapped_task_instance_does(tmp_path):
    """What each ParallelFor iteration runs: the shard list from the input step's values, then the step with
    the loop item; its outputs go under <task_id>_<shard> (Airflow's map_index layout)."""
    from claimed_airflow.core.runner import run
    from claimed_airflow.kfp.shards import claimed_shard_indexes
    from claimed_airflow.kfp.step import run_step
    from tests.synthetic_chestxray import write_cohort

    write_cohort(tmp_path / "cohort", count=4, seed=2, size=32)
    found = run("input.dicom", {"source": str(tmp_path / "cohort" / "dicom"), "shards": 2}, root=str(tmp_path))
    assert claimed_shard_indexes({"shard_index": found["shard_index"]}) == [0, 1]
    scope = {"claimed_output_root": str(tmp_path / "out"), "claimed_dag_id": "d", "claimed_run_id": "r"}
    arguments = {"metadata": found["metadata"], "files": found["files"], "shard_tables": found["shard_tables"]}
    outputs = run_step(
        "transform.dicom_to_images",
        {**arguments, **scope, "shard_index": 1, "claimed_task_id": "decode[shard_index]", "workers": 1},
    )
    assert outputs[0] == str(tmp_path / "out" / "d" / "r" / "decode_1" / "images")
    assert len(list(Path(outputs[0]).rglob("*.png"))) == 2
    with pytest.raises(SystemExit, match="^shard_index: the input step returned no shards"):
        claimed_shard_indexes({})
