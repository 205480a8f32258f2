"""Sharding on Kubeflow: a data-parallel task expanded over an input's shards becomes ``dsl.ParallelFor`` (one
pod per shard), the merge of its outputs ``dsl.Collected``; the exported pipeline runs with ``kfp.local``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp.dsl")

from kfp import components, local  # noqa: E402

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
    loops = {}  # the mapped task of each loop: its loop and its one step's parameters
    for name, task in root.items():
        if "parameterIterator" in task:
            (mapped,) = spec["components"][task["componentRef"]["name"]]["dag"]["tasks"].values()
            parameters = mapped["inputs"]["parameters"]
            loops[parameters["claimed_task_id"]["runtimeValue"]["constant"]] = name, task, parameters
    assert set(loops) == {"dicom_input_shard[shard_index]", "dicom_to_images_shard[shard_index]"}
    assert {"dicom-input-listing", "dicom-input", "dicom-to-images"} <= set(root)
    for items, (task_id, fields, merge, output) in {
        "claimed-shard-items": ("dicom_input_shard", ("shard_index", "shard_tables"), "dicom-input", "metadata_parts"),
        "claimed-shard-items-2": (
            "dicom_to_images_shard",
            ("shard_index", "metadata", "files", "shard_tables"),
            "dicom-to-images",
            "parts",
        ),
    }.items():
        name, loop, parameters = loops[f"{task_id}[shard_index]"]
        assert loop["parameterIterator"]["items"]["inputParameter"].endswith(f"{items}-Output")
        # the loop takes no upstream output but its items (kfp.local replaces such inputs by the loop item)
        assert [p for p in loop["inputs"]["parameters"].values() if "taskOutputParameter" in p] == [
            {"taskOutputParameter": {"outputParameterKey": "Output", "producerTask": items}}
        ]
        for field in fields:  # fields of the loop item
            assert parameters[field]["parameterExpressionSelector"] == f'parseJson(string_value)["{field}"]'
        merged = root[merge]["inputs"]["parameters"][output]
        assert merged["taskOutputParameter"]["producerTask"] == name  # dsl.Collected of the loop's outputs


def test_the_exported_pipeline_runs_one_step_per_shard_with_kfp_local(tmp_path):
    from tests.synthetic_chestxray import write_cohort

    write_cohort(tmp_path / "cohort", count=5, seed=2, size=32)
    output_root = tmp_path / "kfp-out"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    pipeline = components.load_component_from_file(str(_export(tmp_path)))
    pipeline(output_root=str(output_root), source=str(tmp_path / "cohort" / "dicom"), shards=2)
    (run,) = (output_root / "claimed_test_sharding_pods").iterdir()
    assert sorted(p.name for p in run.glob("dicom_input_shard_*")) == ["dicom_input_shard_0", "dicom_input_shard_1"]
    shards = sorted(p.name for p in run.glob("dicom_to_images_shard_*"))
    assert shards == ["dicom_to_images_shard_0", "dicom_to_images_shard_1"]
    for index, name in enumerate(shards):
        manifest = json.loads((run / name / "manifest.json").read_text())
        assert manifest["parameters"]["shard_index"] == index
    merged = run / "dicom_to_images" / "merged"
    assert len(list(merged.rglob("*.png"))) == 5
    assert len((merged / "index.csv").read_text().splitlines()) == 1 + 5


def test_a_data_parallel_step_without_shard_index_runs_every_shard_with_kfp_local(tmp_path):
    """Not mapped (shard_tables, no shard_index): the step passes no shard_index (it used to pass the component's
    default 0, so the step ran shard 0 only) and runs every shard, writing the merged images of all 5 files."""
    from tests.synthetic_chestxray import write_cohort

    path = tmp_path / "every.yaml"
    assert cli(["export-kfp", str(DAG_FILE), "--dag-id", "claimed_test_sharding_every", "-o", str(path)]) == 0
    spec = next(yaml.safe_load_all(path.read_text()))
    assert "shard_index" not in json.dumps(spec["root"]["dag"]["tasks"]["dicom-to-images"])
    write_cohort(tmp_path / "cohort", count=5, seed=2, size=32)
    output_root = tmp_path / "kfp-out"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    pipeline = components.load_component_from_file(str(path))
    pipeline(output_root=str(output_root), source=str(tmp_path / "cohort" / "dicom"), shards=2)
    (run,) = (output_root / "claimed_test_sharding_every").iterdir()
    manifest = json.loads((run / "dicom_to_images" / "manifest.json").read_text())
    assert manifest["parameters"]["shard_index"] is None and manifest["values"]["shards"] == 2
    assert manifest["values"]["images_written"] == 5
    assert sorted(p.name for p in run.glob("dicom_to_images_shard_*")) == [
        "dicom_to_images_shard_0",
        "dicom_to_images_shard_1",
    ]


def test_the_shard_items_carry_the_index_and_the_upstream_outputs():
    from claimed_airflow.kfp.shards import claimed_shard_items

    assert claimed_shard_items({"shard_index": [0, 1]}, {"files": "f"}) == [
        {"shard_index": 0, "files": "f"},
        {"shard_index": 1, "files": "f"},
    ]
    with pytest.raises(SystemExit, match="^shard_index: the input step returned no shards"):
        claimed_shard_items({}, {})
