"""A notebook turned into a component exports to KFP next to library components and runs on kfp.local."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("kfp.dsl")
pytest.importorskip("papermill", reason="extra notebooks")

from kfp import components, local  # noqa: E402

from claimed_airflow.cli import main as cli  # noqa: E402
from claimed_airflow.create import create_component  # noqa: E402

OWN = Path(__file__).resolve().parents[1] / "data" / "own"

DAG = """
from datetime import datetime

from airflow.sdk import DAG, Param
from scale_table_operator import ScaleTableTransformOperator

from claimed_airflow.operators import RowsFilterOperator

with DAG(dag_id="own_notebook", schedule=None, start_date=datetime(2026, 1, 1),
         params={"table": Param("", type="string", description="labels CSV")}):
    scaled = ScaleTableTransformOperator(task_id="scale", table="{{ params.table }}", factor=10.0)
    RowsFilterOperator(task_id="old", table=scaled.output["result"], condition="age > 500")
"""


def test_notebook_component_exports_and_runs_on_kfp_local(tmp_path, monkeypatch, shared_data):
    work = tmp_path / "own"
    made = create_component(str(OWN / "scale_table.ipynb"), category="transform", output_dir=str(work))
    assert made["reference"] == "scale_table_component:scale_table"
    (work / "own_dag.py").write_text(textwrap.dedent(DAG))
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(work)  # the component finds its notebook next to its module
    pipeline_yaml = tmp_path / "own.yaml"
    assert (
        cli(
            [
                "export-kfp",
                str(work / "own_dag.py"),
                "--dag-id",
                "own_notebook",
                "-o",
                str(pipeline_yaml),
            ]
        )
        == 0
    )
    assert "scale_table_component:scale_table" in pipeline_yaml.read_text()

    labels = shared_data / "chestxray" / "labels.csv"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    components.load_component_from_file(str(pipeline_yaml))(output_root=str(tmp_path / "out"), table=str(labels))
    (kept,) = (tmp_path / "out" / "own_notebook").glob("*/old/table.parquet")
    ages = pd.read_csv(labels)["age"].dropna() * 10
    assert len(pd.read_parquet(kept)) == int((ages > 500).sum()) > 0
