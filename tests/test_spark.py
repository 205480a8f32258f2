"""Spark components with real pyspark: in-process (engine=local) and through spark-submit (engine=spark).

Each component test runs on both backends: ``spark`` (one local SparkSession serves them, started
once, ~10-50 s on 2 busy cores) and ``local`` (pyarrow/pandas/DuckDB, no JVM); ``auto`` picks one by
the rule in ``core.spark.backend_for``. The DAG test runs every task as a real ``spark-submit``
through SparkSubmitOperator on ``local[*]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from claimed_airflow.core import registry
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope, content_hash, safe_name

pytest.importorskip("pyspark", reason="needs the spark extra")
pytest.importorskip("airflow.providers.apache.spark", reason="needs the spark extra")

ROOT = Path(__file__).resolve().parents[1]
SENSORS = ROOT / "dags" / "sample_data" / "sensors" / "sensors.csv"
SPARK_COMPONENTS = [
    "transform.spark_csv_to_parquet",
    "transform.spark_parquet_to_csv",
    "filter.spark_sample",
    "transform.spark_sql",
    "analyze.spark_ts_trends",
]


def test_pyspark_files_are_pysparks_own():
    """pyspark-client (required by the Spark provider) ships an older subset of pyspark's files."""
    from importlib.metadata import version

    import pyspark

    assert pyspark.__version__ == version("pyspark")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("spark-out"))


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    frame = pd.read_csv(SENSORS, parse_dates=["time"])
    return frame.sort_values(["time", "sensor"]).reset_index(drop=True)


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["time"] = pd.to_datetime(frame["time"]).dt.tz_localize(None).astype("datetime64[ns]")
    for column in ("site", "sensor"):
        frame[column] = frame[column].astype(str)
    return frame.sort_values(["time", "sensor"]).reset_index(drop=True)[["time", "site", "sensor", "value"]]


@pytest.fixture(scope="module", params=["local", "spark"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def parquet(root, backend) -> dict:
    return run("transform.spark_csv_to_parquet", {"table": str(SENSORS), "backend": backend}, root=root)


def test_auto_backend_rule(tmp_path, monkeypatch):
    from claimed_airflow.core.spark import backend_for

    for name in ("CLAIMED_SPARK_MASTER", "CLAIMED_SPARK_AUTO_BYTES", "PYSPARK_GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "t"
    (folder / "site=a").mkdir(parents=True)
    (folder / "site=a" / "part-00000.parquet").write_bytes(b"x" * 1000)
    assert backend_for("auto", SENSORS) == "local"  # small, no master: no JVM
    assert backend_for("spark", SENSORS) == "spark" and backend_for("local", SENSORS) == "local"
    monkeypatch.setenv("CLAIMED_SPARK_AUTO_BYTES", "999")
    assert backend_for("auto", folder) == "spark"  # a folder counts all its files
    monkeypatch.setenv("CLAIMED_SPARK_AUTO_BYTES", "1000")
    assert backend_for("auto", folder) == "local"
    monkeypatch.setenv("CLAIMED_SPARK_MASTER", "spark://cluster:7077")
    assert backend_for("auto", SENSORS) == "spark"  # a configured master wins
    monkeypatch.delenv("CLAIMED_SPARK_MASTER")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "4040")
    assert backend_for("auto", SENSORS) == "spark"  # under spark-submit (engine spark)


def test_csv_to_parquet_reads_back_equal_to_the_csv(parquet, expected, root, backend):
    assert parquet["rows"] == 360 and parquet["columns"] == 4
    folder = Path(parquet["output"])
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.snappy.parquet"]  # no _SUCCESS/.crc side files
    pd.testing.assert_frame_equal(normalized(pd.read_parquet(folder)), normalized(expected))
    # partitioned: one folder per site, same rows
    args = {"table": str(SENSORS), "partition_by": ["site"], "backend": backend}
    parts = run("transform.spark_csv_to_parquet", args, root=root)
    assert sorted(p.name for p in Path(parts["output"]).iterdir()) == ["site=plant-a", "site=plant-b"]
    assert len(pd.read_parquet(parts["output"])) == 360
    with pytest.raises(ClaimedError, match="^partition_by: column 'plant' missing"):
        run("transform.spark_csv_to_parquet", {**args, "partition_by": ["plant"]}, root=root)


def test_parquet_to_csv_round_trip(parquet, expected, root, backend):
    result = run("transform.spark_parquet_to_csv", {"table": parquet["output"], "backend": backend}, root=root)
    assert Path(result["output"]).is_file() and result["rows"] == 360
    pd.testing.assert_frame_equal(normalized(pd.read_csv(result["output"])), normalized(expected))
    assert "2026-01-01T06:00:00.000Z" in Path(result["output"]).read_text()  # ISO 8601, UTC, on both backends
    args = {"table": parquet["output"], "single_file": False, "backend": backend}
    split = run("transform.spark_parquet_to_csv", args, root=root)
    assert Path(split["output"]).is_dir()
    parts = [pd.read_csv(p) for p in sorted(Path(split["output"]).glob("part-*.csv"))]
    assert sum(len(p) for p in parts) == 360


def test_sample_is_a_seeded_subset(parquet, root, backend):
    args = {"table": parquet["output"], "fraction": 0.5, "backend": backend}
    first = run("filter.spark_sample", {**args, "seed": 1}, root=root)
    again = run("filter.spark_sample", {**args, "seed": 1}, root=root)
    other = run("filter.spark_sample", {**args, "seed": 2}, root=root)
    assert content_hash(first["output"]) == content_hash(again["output"]) != content_hash(other["output"])
    rows = pd.read_parquet(first["output"])
    assert first["rows_in"] == 360 and first["rows_out"] == len(rows)
    assert 180 - 40 < len(rows) < 180 + 40  # Bernoulli(0.5) on 360 rows: 4 standard deviations is ~38
    source = pd.read_parquet(parquet["output"])
    assert len(rows.merge(source, how="inner")) == len(rows)  # every sampled row is an input row
    with pytest.raises(ClaimedError, match=r"^fraction: expected a value in \(0, 1\]"):
        run("filter.spark_sample", {"table": parquet["output"], "fraction": 1.5}, root=root)


def test_sql_query_over_the_table(parquet, expected, root, backend):
    query = "SELECT sensor, count(*) AS n, avg(value) AS mean FROM readings WHERE site = 'plant-a' GROUP BY sensor"
    args = {"table": parquet["output"], "query": query, "view": "readings", "backend": backend}
    result = run("transform.spark_sql", args, root=root)
    got = pd.read_parquet(result["output"]).sort_values("sensor").reset_index(drop=True)
    want = expected[expected.site == "plant-a"].groupby("sensor")["value"].agg(["count", "mean"]).reset_index()
    assert got["sensor"].tolist() == want["sensor"].tolist() and got["n"].tolist() == want["count"].tolist()
    np.testing.assert_allclose(got["mean"], want["mean"])
    assert result["rows"] == 2 and result["columns"] == 3
    for bad, message in [
        ("DROP TABLE input", "^query: expected one SELECT"),
        ("SELECT nope FROM input", "^query: .*nope"),
        (f"SELECT * FROM parquet.`{parquet['output']}`", "^query: "),  # no reading files by path
        (f"SELECT * FROM read_csv('{SENSORS}')", "^query: "),  # nor with DuckDB's table functions
    ]:
        with pytest.raises(ClaimedError, match=message):
            run("transform.spark_sql", {**args, "query": bad, "view": "input"}, root=root)


def test_time_series_trends_match_least_squares(parquet, expected, root, backend):
    args = {"table": parquet["output"], "time_column": "time", "value_column": "value", "group_by": ["site", "sensor"]}
    args["backend"] = backend
    result = run("analyze.spark_ts_trends", args, root=root)
    trends = pd.read_parquet(result["output"]).set_index("sensor")
    assert result["groups"] == 3 and trends.loc["boiler", "direction"] == "up"
    assert trends.loc["chiller", "direction"] == "down"
    for sensor, group in expected.groupby("sensor"):
        days = (group["time"] - group["time"].min()).dt.total_seconds() / 86400
        slope, intercept = np.polyfit(days, group["value"], 1)
        row = trends.loc[sensor]
        assert row["points"] == len(group)
        np.testing.assert_allclose([row["slope_per_day"], row["intercept"]], [slope, intercept], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(row["r2"], np.corrcoef(days, group["value"])[0, 1] ** 2, rtol=1e-6)
        assert row["first"] == group.sort_values("time")["value"].iloc[0]
    daily = run("analyze.spark_ts_trends", {**args, "period": "day", "group_by": ["sensor"]}, root=root)
    assert pd.read_parquet(daily["output"])["points"].tolist() == [60, 60, 60]
    for period in ("hour", "week", "month"):  # date_trunc: weeks from Monday, months from the 1st
        result = run("analyze.spark_ts_trends", {**args, "period": period, "group_by": []}, root=root)
        frame = expected.assign(t=expected["time"].dt.to_period({"hour": "h", "week": "W-SUN", "month": "M"}[period]))
        assert pd.read_parquet(result["output"])["points"].tolist() == [frame["t"].nunique()]
    with pytest.raises(ClaimedError, match="^time_column: column 'when' missing"):
        run("analyze.spark_ts_trends", {**args, "time_column": "when"}, root=root)


def test_constant_and_short_series(tmp_path, root, backend):
    table = tmp_path / "short.csv"
    table.write_text("t,g,v\n2026-01-01,a,5\n2026-01-02,a,5\n2026-01-03,a,5\n2026-01-01,b,1\n")
    result = run(
        "analyze.spark_ts_trends",
        {"table": str(table), "time_column": "t", "value_column": "v", "group_by": ["g"], "backend": backend},
        root=root,
    )
    trends = pd.read_parquet(result["output"]).set_index("g")
    assert trends.loc["a", "direction"] == "flat" and trends.loc["a", "slope_per_day"] == 0
    assert trends.loc["a", "r2"] == 1.0
    assert trends.loc["b", "direction"] == "unknown" and pd.isna(trends.loc["b", "slope_per_day"])


def test_cohort_split_is_a_seeded_hash_of_the_key(tmp_path, root, backend):
    import hashlib

    rng = np.random.default_rng(0)
    rows = 400
    table = pd.DataFrame(
        {
            "SOPInstanceUID": [f"1.2.826.0.1.{i}" for i in rng.permutation(rows)],
            "Modality": rng.choice(["CR", "DX", "CT"], rows),
            "PatientAge": rng.integers(1, 90, rows).astype(float),
            "label": rng.choice(["a", "b", None], rows),
        }
    )
    table.loc[::50, "SOPInstanceUID"] = None  # no key: left out
    source = tmp_path / "metadata.parquet"
    table.to_parquet(source)
    where = "label IS NOT NULL AND Modality IN ('CR', 'DX') AND PatientAge >= 18"
    args = {"table": str(source), "where": where, "test_fraction": 0.25, "seed": 7, "backend": backend}
    result = run("filter.spark_cohort_split", args, root=root)
    got = pd.read_parquet(result["output"]).set_index("SOPInstanceUID")
    wanted = table.dropna(subset=["SOPInstanceUID", "label"])
    wanted = wanted[wanted["Modality"].isin(["CR", "DX"]) & (wanted["PatientAge"] >= 18)]
    assert sorted(got.index) == sorted(wanted["SOPInstanceUID"])
    # the rule, written out: the first 32 bits of sha256("<seed>:<key>") below test_fraction * 2**32
    expected = {
        uid: "test" if int(hashlib.sha256(f"7:{uid}".encode()).hexdigest()[:8], 16) < 0.25 * 2**32 else "train"
        for uid in wanted["SOPInstanceUID"]
    }
    assert got["split"].to_dict() == expected
    assert result["rows_in"] == rows and result["rows_out"] == len(wanted)
    assert result["test"] == list(expected.values()).count("test") > 0 and result["train"] > result["test"]
    # a row keeps its side when other rows come and go
    half = tmp_path / "half.parquet"
    table.iloc[::2].to_parquet(half)
    again = pd.read_parquet(run("filter.spark_cohort_split", {**args, "table": str(half)}, root=root)["output"])
    assert again.set_index("SOPInstanceUID")["split"].to_dict().items() <= expected.items()
    everything = run("filter.spark_cohort_split", {**args, "where": "true", "test_fraction": 1.0}, root=root)
    assert everything["test"] == rows - 8 and everything["train"] == 0
    for bad, message in [
        ({"where": "true) UNION (SELECT * FROM input"}, "^where: expected one condition"),
        ({"where": "PatientAge >"}, "^where: "),
        ({"key": "PatientID"}, "^key: column 'PatientID' missing"),
        ({"key": "a b"}, "^key: expected a plain column name"),
        ({"test_fraction": 1.5}, r"^test_fraction: expected a value in \[0, 1\]"),
    ]:
        with pytest.raises(ClaimedError, match=message):
            run("filter.spark_cohort_split", {**args, **bad}, root=root)


def test_sql_cannot_run_a_program_or_read_the_environment(tmp_path, root, backend):
    """Issue 30: script transformation in a cohort condition ran a shell command as the worker (on Spark
    the marker file held ``uid=0(root)``), and ``${env:...}`` in a string read the worker's environment.
    Refused before anything runs, on both backends, by the allow-list in ``core.sql``."""
    marker = tmp_path / "ran"
    table = tmp_path / "metadata.parquet"
    pd.DataFrame({"SOPInstanceUID": ["1.2.3", "1.2.4"], "label": ["a", "b"]}).to_parquet(table)
    script = f"TRANSFORM(label) USING 'sh -c \"id > {marker}; cat\"' AS (x)"
    where = f"label IS NOT NULL AND EXISTS (SELECT {script} FROM input)"
    refused = r"TRANSFORM \.\.\. USING \(runs a program on the worker\) is not allowed$"
    with pytest.raises(ClaimedError, match=f"^where: {refused}"):
        run("filter.spark_cohort_split", {"table": str(table), "where": where, "backend": backend}, root=root)
    args = {"table": str(table), "backend": backend}
    with pytest.raises(ClaimedError, match=f"^query: {refused}"):
        run("transform.spark_sql", {**args, "query": f"SELECT {script} FROM input"}, root=root)
    assert not marker.exists()
    with pytest.raises(ClaimedError, match=r"^query: \$\{\.\.\.\} \(Spark variable substitution"):
        run("transform.spark_sql", {**args, "query": "SELECT '${env:PATH}' AS leaked FROM input"}, root=root)
    # the same condition without the script runs: the check refuses the construct, not the query
    kept = run("filter.spark_cohort_split", {**args, "where": "label IS NOT NULL AND label <> 'b'"}, root=root)
    assert kept["rows_out"] == 1


# -- engine=spark -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SPARK_COMPONENTS, "filter.spark_cohort_split"])
def test_spark_submit_runs_the_component_through_the_one_launcher(name):
    import claimed_airflow.operators as operators
    from claimed_airflow.operators.engines import spark

    spec = registry.get(name)
    values = {p.name: f"s3://in/{p.name}" if p.kind == "input" else p.default for p in spec.arguments}
    values = {k: v if v is not None else "x" for k, v in values.items()}
    operator = getattr(operators, spec.operator)(
        task_id="t", engine="spark", spark={"conf": {"spark.executor.cores": 2}}, **values
    )
    scope = Scope("d", "r", "t")
    submit = spark.submission(operator.engine_task(spec, "s3://out", scope))
    folder = Path(spark.application()).parent
    assert (folder.name, Path(spark.application()).name) == ("spark_app", "launcher.py")
    # spark-submit puts the application's folder first on sys.path: nothing there may shadow a package
    assert {p.name for p in folder.glob("*.py")} == {"__init__.py", "launcher.py"}
    args = submit["application_args"]
    assert args[0] == name
    assert args[-8:] == ["--output-root", "s3://out", "--dag-id", "d", "--run-id", "r", "--task-id", "t"]
    inputs = [p.name for p in spec.inputs]
    assert all(f"--{i}=s3://in/{i}" in args for i in inputs)
    assert submit["conf"] == {"spark.sql.session.timeZone": "UTC", "spark.executor.cores": 2}
    assert submit["conn_id"] == "spark_default"


def test_engine_spark_runs_any_component_with_the_launcher(tmp_path, monkeypatch):
    """The launcher is ``claimed-airflow run``: a component that is not a Spark one runs as well (in the driver)."""
    from claimed_airflow.operators.engines.spark_app import launcher

    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,x\n5,y\n")
    monkeypatch.chdir(tmp_path)
    code = launcher.main(
        [
            "filter.rows",
            f"--table={table}",
            "--condition=a > 2",
            "--output-root",
            str(tmp_path / "out"),
            "--dag-id",
            "d",
        ]
    )
    assert code == 0
    (written,) = (tmp_path / "out" / "d").rglob("*.parquet")
    assert pd.read_parquet(written)["b"].tolist() == ["y"]


def test_result_rebuilt_from_the_manifest(parquet):
    from claimed_airflow.operators.engines.spark import result_from_manifest

    record = json.loads(Path(parquet["manifest"]).read_text())
    assert result_from_manifest(record, parquet["manifest"]) == parquet


@pytest.mark.e2e
def test_spark_etl_dag_runs_through_spark_submit(run_dag, output_root, expected, spark_submissions):
    submitted = spark_submissions
    state, tasks, run_id = run_dag("spark_etl", {"engine": "spark"})
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"} and len(tasks) == 5
    assert len(submitted) == 5 and all(c[0] == "spark-submit" for c in submitted)
    assert all(c[c.index("--master") + 1] == "local[*]" for c in submitted)
    applications = {arg for command in submitted for arg in command if arg.endswith(".py")}
    assert {Path(a).name for a in applications} == {"launcher.py"}
    components = {command[command.index(next(iter(applications))) + 1] for command in submitted}
    assert components == set(SPARK_COMPONENTS)
    assert any("--fraction=0.25" in command for command in submitted)

    run_dir = output_root / "spark_etl" / safe_name(run_id)
    pd.testing.assert_frame_equal(
        normalized(pd.read_parquet(run_dir / "csv_to_parquet" / "table.parquet")), normalized(expected)
    )
    trends = pd.read_csv(run_dir / "trends_csv" / "table.csv").set_index("sensor")
    assert trends.loc["boiler", "direction"] == "up" and trends.loc["chiller", "direction"] == "down"
    assert (trends["points"] == 60).all()
    manifest = json.loads((run_dir / "trends" / "manifest.json").read_text())
    assert manifest["values"]["groups"] == 3
