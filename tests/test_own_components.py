"""Own components: a notebook, an argparse script and a typed function turned into components."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.cli import main as cli
from claimed_airflow.core import registry
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from claimed_airflow.create import create_component

OWN = Path(__file__).parent / "data" / "own"


@pytest.fixture
def papermill():
    return pytest.importorskip("papermill", reason="extra notebooks")


@pytest.fixture
def labels(shared_data) -> Path:
    return shared_data / "chestxray" / "labels.csv"


def _made(tmp_path, source: str, monkeypatch, **kwargs) -> dict:
    made = create_component(str(OWN / source), category="transform", output_dir=str(tmp_path), **kwargs)
    monkeypatch.syspath_prepend(str(tmp_path))
    return made


def _params(spec: dict) -> dict:
    return {p["name"]: p for p in spec["parameters"] + spec["inputs"] + spec["outputs"]}


def test_notebook_parameters_become_typed_parameters(tmp_path, monkeypatch):
    made = _made(tmp_path, "scale_table.ipynb", monkeypatch)
    spec = made["spec"]
    assert spec["name"] == "transform.scale_table" and spec["operator"] == "ScaleTableTransformOperator"
    assert spec["summary"] == "Scale a column of a table"
    params = _params(spec)
    assert params["table"]["kind"] == "input" and params["table"]["required"]
    assert (params["factor"]["type"], params["factor"]["default"]) == ("float", 2.0)
    assert (params["views"]["type"], params["views"]["default"]) == ("list[str]", ["PA", "AP"])
    assert params["column"]["description"] == "numeric column to scale"
    assert params["result"]["kind"] == "output" and params["result"]["default"] == "scaled.csv"
    assert params["executed_notebook"]["kind"] == "output"
    assert (tmp_path / "scale_table.ipynb").exists()  # the notebook ships next to the module
    operator = (tmp_path / "scale_table_operator.py").read_text()
    assert 'component = "scale_table_component:scale_table"' in operator
    assert ":type factor: float" in operator


def test_notebook_component_runs_with_papermill_on_real_data(tmp_path, monkeypatch, labels, papermill):
    made = _made(tmp_path, "scale_table.ipynb", monkeypatch)
    result = run(made["reference"], {"table": str(labels), "factor": "3", "views": "PA"}, root=str(tmp_path / "out"))
    expected = pd.read_csv(labels)
    expected = expected[expected["view"] == "PA"].dropna(subset=["age"])
    scaled = pd.read_csv(result["result"])
    assert scaled["age"].tolist() == (expected["age"] * 3).tolist()
    assert result["rows"] == len(expected) and result["total"] == pytest.approx(expected["age"].sum() * 3)
    executed = json.loads(Path(result["executed_notebook"]).read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


def test_notebook_failure_names_the_cell_and_error(tmp_path, monkeypatch, labels, papermill):
    made = _made(tmp_path, "scale_table.ipynb", monkeypatch)
    with pytest.raises(ClaimedError, match=r"scale_table.ipynb: cell \d+ failed with KeyError: .*'nope' not in"):
        run(made["reference"], {"table": str(labels), "column": "nope"}, root=str(tmp_path / "out"))


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    notebook = json.loads((OWN / "scale_table.ipynb").read_text())
    for cell in notebook["cells"]:
        cell["metadata"].pop("tags", None)
    bad = tmp_path / "untagged.ipynb"
    bad.write_text(json.dumps(notebook))
    with pytest.raises(ClaimedError, match="has no cell tagged 'parameters'"):
        create_component(str(bad), category="transform")


def test_argparse_script_becomes_a_component(tmp_path, monkeypatch, labels):
    made = _made(tmp_path, "scale_column.py", monkeypatch)
    params = _params(made["spec"])
    assert params["mode"]["choices"] == ["multiply", "divide"] or params["mode"]["choices"] == ("multiply", "divide")
    assert (params["keep_missing"]["type"], params["keep_missing"]["default"]) == ("bool", False)
    assert params["factor"]["type"] == "float" and params["table"]["kind"] == "input"
    assert params["out"]["kind"] == "output" and params["out"]["default"] == "scaled.csv"
    assert made["spec"]["summary"] == "Scale a numeric column of a CSV table."
    result = run(
        made["reference"],
        {"table": str(labels), "factor": "4", "mode": "divide", "keep_missing": "true"},
        root=str(tmp_path / "out"),
    )
    expected = pd.read_csv(labels)
    scaled = pd.read_csv(result["out"])
    assert len(scaled) == len(expected) == result["rows"]  # keep_missing=true kept the rows without an age
    assert scaled["age"].sum() == pytest.approx(expected["age"].sum() / 4)
    with pytest.raises(ClaimedError, match=r"scale_column.py: exited with status 1: column 'nope' not in"):
        run(made["reference"], {"table": str(labels), "column": "nope"}, root=str(tmp_path / "out"))
    with pytest.raises(ClaimedError, match="mode: expected one of"):
        run(made["reference"], {"table": str(labels), "mode": "add"}, root=str(tmp_path / "out"))


def test_typed_main_becomes_a_component_and_runs_from_the_cli(tmp_path, labels):
    assert cli(["create-component", str(OWN / "typed_step.py"), "--category", "filter", "-o", str(tmp_path)]) == 0
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "claimed_airflow.cli", "run", "typed_step_component:typed_step"]
        + ["--table", str(labels), "--minimum", "50", "--output-root", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    frame = pd.read_csv(labels)
    assert result["rows"] == int((frame["age"] >= 50).sum()) > 0
    assert pd.read_csv(result["kept"])["age"].min() >= 50


def test_bad_sources_fail_with_a_clear_message(tmp_path):
    with pytest.raises(ClaimedError, match="not found"):
        create_component(str(tmp_path / "missing.ipynb"), category="transform")
    plain = tmp_path / "plain.py"
    plain.write_text("print('hello')\n")
    with pytest.raises(ClaimedError, match="neither argparse arguments nor a typed main"):
        create_component(str(plain), category="transform")
    untyped = tmp_path / "untyped.py"
    untyped.write_text("def main(x):\n    return None\n")
    with pytest.raises(ClaimedError, match="needs a type annotation"):
        create_component(str(untyped), category="transform")
    with pytest.raises(ClaimedError, match="has no attribute"):
        registry.get("claimed_airflow.core.registry:nothing_here")


def test_no_parameter_shadows_an_operator_attribute(tmp_path):
    import dataclasses
    import inspect

    from claimed_airflow.core.options import KubernetesOptions, reserved_names
    from claimed_airflow.operators import ClaimedOperator

    reserved = reserved_names()
    assert {"retries", "label", "component", "arguments", "output_root", "kubernetes", "spark"} <= reserved
    # declared once (core.options), complete for ClaimedOperator: its arguments and public attributes
    assert set(inspect.signature(ClaimedOperator.__init__).parameters) - {"self", "kwargs"} <= reserved
    assert {name for name in dir(ClaimedOperator) if not name.startswith("_")} <= reserved
    assert not {f.name for f in dataclasses.fields(KubernetesOptions)} & reserved  # cpu, image: free for components
    clashes = [f"{s.name}.{p.name}" for s in registry.library().values() for p in s.arguments if p.name in reserved]
    assert not clashes
    script = tmp_path / "clash.py"
    script.write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--retries', type=int)\n")
    with pytest.raises(ClaimedError, match="retries would shadow attributes of the Airflow operator"):
        create_component(str(script), category="transform")


def test_configured_modules_are_listed_but_get_no_library_operator(tmp_path, monkeypatch):
    from claimed_airflow.operators.generate import generated_files

    _made(tmp_path, "scale_table.ipynb", monkeypatch)
    before = generated_files()
    monkeypatch.setenv(registry.MODULES_ENV, "scale_table_component")
    registry.components.cache_clear()
    try:
        assert "transform.scale_table" in registry.components()
        assert registry.get("transform.scale_table").operator == "ScaleTableTransformOperator"
        assert generated_files() == before
    finally:
        monkeypatch.delenv(registry.MODULES_ENV)
        registry.components.cache_clear()


DAG = """
from datetime import datetime

from airflow.sdk import DAG, Param
from scale_table_operator import ScaleTableTransformOperator

from claimed_airflow.operators import RowsFilterOperator

with DAG(dag_id="claimed_test_own_notebook", schedule=None, start_date=datetime(2026, 1, 1),
         params={"table": Param("", type="string")}) as dag:
    scaled = ScaleTableTransformOperator(task_id="scale", table="{{ params.table }}", factor=10.0)
    RowsFilterOperator(task_id="old", table=scaled.output["result"], condition="age > 500")
"""


@pytest.mark.e2e
def test_notebook_component_runs_in_a_dag_next_to_library_components(
    airflow_home, tmp_path, labels, monkeypatch, papermill
):
    from airflow.dag_processing.dagbag import DagBag

    dags = airflow_home / "dags"
    work = tmp_path / "own"
    made = _made(work, "scale_table.ipynb", monkeypatch)
    written = [dags / "scale_table_component.py", dags / "scale_table_operator.py", dags / "scale_table.ipynb"]
    for path in written:
        shutil.copy(work / path.name, path)
    dag_file = dags / "claimed_test_own_notebook.py"
    dag_file.write_text(textwrap.dedent(DAG))
    written.append(dag_file)
    monkeypatch.syspath_prepend(str(dags))
    try:
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        dag_run = bag.get_dag("claimed_test_own_notebook").test(run_conf={"table": str(labels)})
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        assert str(dag_run.state) == "success", states
        ages = pd.read_csv(labels)["age"].dropna() * 10
        kept = list((airflow_home / "artifacts" / "claimed_test_own_notebook").glob("*/old/table.parquet"))
        assert len(pd.read_parquet(kept[0])) == int((ages > 500).sum()) > 0
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    assert made["reference"] == "scale_table_component:scale_table"


def _import(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"hostile_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_text_never_becomes_code_in_the_generated_modules(tmp_path, monkeypatch):
    """Markdown and comments with triple quotes, backslashes and odd characters stay docstring text."""
    marker = tmp_path / "PWNED"
    # the backslash keeps the component's docstring whole, so the quotes reached the operator's class body
    payload = f'Scale \\""" + __import__("pathlib").Path({str(marker)!r}).write_text("x") + \\""" it'
    odd = 'back\\slash \\N{oops} \\x41 """ end"'
    notebook = json.loads((OWN / "scale_table.ipynb").read_text())
    notebook["cells"][0]["source"] = [f"# {payload}\n", "\n", f"More: {odd} \x00\x1b"]
    cell = notebook["cells"][1]["source"]
    cell[1] = f'column = "age"  # {payload}\n'
    cell[2] = f"factor = 2.0  # {odd}\n"
    source = tmp_path / "src" / "hostile.ipynb"
    source.parent.mkdir()
    source.write_text(json.dumps(notebook))
    made = create_component(str(source), category="transform", output_dir=str(tmp_path / "out"))
    monkeypatch.syspath_prepend(str(tmp_path / "out"))
    component = _import(Path(made["component"]))
    operator = _import(Path(made["operator_module"]))
    assert not marker.exists()  # nothing ran: the text stayed in docstrings
    assert component.hostile.spec.summary == payload
    assert f"More: {odd} \x00\x1b" in component.hostile.spec.description
    params = _params(made["spec"])
    assert params["column"]["description"] == payload and params["factor"]["description"] == odd
    assert payload in operator.HostileTransformOperator.__doc__


def test_script_text_and_names_never_become_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    payload = 'x""" + __import__("pathlib").Path("PWNED").write_text("x") + """y \\q'
    script = tmp_path / f"hostile_script {payload}.py"  # the file name lands in the module docstring
    script.write_text(
        textwrap.dedent(f"""\
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--class", help={payload!r})
        p.add_argument("--mode", choices=["a", "b\\\\"], default="a", help="mode")
        p.add_argument("--SOURCE", help="shadows the module's own name")
        """)
    )
    made = create_component(str(script), category="transform", name="hostile", output_dir=str(tmp_path / "out"))
    component = _import(Path(made["component"]))
    _import(Path(made["operator_module"]))
    assert not marker.exists()
    assert script.name in component.__doc__
    params = _params(made["spec"])
    assert params["class_"]["description"] == payload and params["mode"]["default"] == "a"
    assert "source_" in params and component.OPTIONS["class_"] == ("--class", "")


def test_notebook_parameter_named_like_the_generated_module_is_refused(tmp_path):
    notebook = json.loads((OWN / "scale_table.ipynb").read_text())
    notebook["cells"][1]["source"][0] = 'SOURCE = "other.ipynb"  # would replace the notebook the component runs\n'
    source = tmp_path / "shadow.ipynb"
    source.write_text(json.dumps(notebook))
    with pytest.raises(ClaimedError, match=r"^source: parameter 'SOURCE' of shadow.ipynb \(line 1\) would shadow"):
        create_component(str(source), category="transform", output_dir=str(tmp_path / "out"))
