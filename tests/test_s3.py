"""Artifacts on a real S3 API: a moto server on 127.0.0.1, reached through s3fs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from claimed_airflow.core import storage
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_component_reads_and_writes_s3(s3_endpoint, tmp_path):
    fs = s3_endpoint
    fs.pipe("claimed/in/table.csv", b"label,prediction\na,a\nb,a\nb,b\n")
    scope = Scope(dag_id="dag", run_id="run:1", task_id="filter")
    result = run(
        "filter.rows",
        {"table": "s3://claimed/in/table.csv", "condition": "label == prediction"},
        root="s3://claimed/artifacts",
        scope=scope,
    )
    assert result["output"] == "s3://claimed/artifacts/dag/run_1/filter/table.parquet"
    assert result["rows_out"] == 2
    local = tmp_path / "t.parquet"
    fs.get(result["output"], str(local))
    import pandas as pd

    assert pd.read_parquet(local)["label"].tolist() == ["a", "b"]
    manifest = json.loads(fs.cat(result["manifest"]))
    assert manifest["inputs"]["table"]["uri"] == "s3://claimed/in/table.csv"
    assert manifest["outputs"]["output"]["hash"] == storage.content_hash(local)


def test_folder_input_from_s3_and_missing_prefix(s3_endpoint):
    fs = s3_endpoint
    fs.pipe({"claimed/model/a.txt": b"1", "claimed/model/sub/b.txt": b"2"})
    result = run("deploy.local", {"model": "s3://claimed/model", "models_root": "s3://claimed/registry"})
    assert result["model_uri"] == "s3://claimed/registry/model/1"
    assert sorted(fs.find("claimed/registry/model/1")) == [
        "claimed/registry/model/1/.claimed-version",  # claimed the version exclusively
        "claimed/registry/model/1/a.txt",
        "claimed/registry/model/1/sub/b.txt",
    ]
    second = run("deploy.local", {"model": "s3://claimed/model", "models_root": "s3://claimed/registry"})
    assert second["model_version"] == 2
    with pytest.raises(Exception, match="model: input path does not exist: s3://claimed/nothing"):
        run("deploy.local", {"model": "s3://claimed/nothing"})


def test_staged_input_keeps_the_file_name_and_suffix(s3_endpoint, tmp_path):
    """A component that tells a table's format by its suffix (DuckDB, Spark) reads a staged remote file."""
    import pandas as pd

    fs = s3_endpoint
    table = tmp_path / "metadata.parquet"
    pd.DataFrame({"SOPInstanceUID": ["1", "2", "3"], "label": ["a", None, "b"]}).to_parquet(table)
    fs.put(str(table), "claimed/meta/metadata.parquet")
    staged = Path(storage.stage_input("table", "s3://claimed/meta/metadata.parquet", tmp_path / "work"))
    assert staged == tmp_path / "work" / "inputs" / "table" / "metadata.parquet"  # one folder per input
    assert staged.read_bytes() == table.read_bytes()
    # the name comes from the object's last segment only, made safe: no '..', no hidden file, no query
    fs.pipe("claimed/meta/.hidden.csv", b"a\n1\n")
    hidden = Path(storage.stage_input("table", "s3://claimed/meta/.hidden.csv", tmp_path / "odd"))
    assert hidden == tmp_path / "odd" / "inputs" / "table" / "hidden.csv"
    # a folder (a Parquet dataset as Spark and the cohort step write it) keeps its name too
    fs.put(str(table), "claimed/meta/cohort.parquet/part-0.parquet")
    folder = Path(storage.stage_input("metadata", "s3://claimed/meta/cohort.parquet", tmp_path / "dir"))
    assert folder == tmp_path / "dir" / "inputs" / "metadata" / "cohort.parquet"
    assert (folder / "part-0.parquet").read_bytes() == table.read_bytes()

    result = run(
        "filter.spark_cohort_split",
        {"table": "s3://claimed/meta/metadata.parquet", "where": "label IS NOT NULL", "backend": "local"},
        root="s3://claimed/artifacts",
    )
    assert result["rows_in"] == 3 and result["rows_out"] == 2
