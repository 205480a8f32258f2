"""Core: spec derivation, typed coercion, safe expressions, storage and the runner's manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest

from claimed_airflow.core import InputPath, OutputPath, component, reject, storage
from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.expressions import evaluate
from claimed_airflow.core.registry import components, get
from claimed_airflow.core.runner import run
from claimed_airflow.core.storage import Scope
from claimed_airflow.core.types import coerce


@component("test", gpus=2, memory="4Gi")
def sample(
    data: InputPath,
    epochs: int = 3,
    rate: float = 0.1,
    verbose: bool = False,
    mode: Literal["fast", "exact"] = "fast",
    tags: list[str] | None = None,
    extra: InputPath | None = None,
    result: OutputPath = "result.json",
) -> dict:
    """Copy a text input into a JSON result.

    Longer description line.

    :param data: Text file to read.
    :param epochs: How many times.
    :param rate: A rate.
    :param verbose: Say more.
    :param mode: Speed or accuracy.
    :param tags: Labels.
    :param extra: Optional second input.
    :param result: JSON written.
    """
    lines = Path(data).read_text().splitlines()
    for line in lines:
        if line.startswith("bad"):
            reject(line, "starts with bad")
    Path(result).write_text(json.dumps({"lines": len(lines), "epochs": epochs, "tags": tags}))
    return {"lines": len(lines)}


def test_spec_is_derived_from_signature_and_docstring():
    spec = sample.spec
    assert spec.name == "test.sample"
    assert spec.summary == "Copy a text input into a JSON result."
    assert "Longer description line." in spec.description
    assert [p.name for p in spec.inputs] == ["data", "extra"]
    assert [p.name for p in spec.outputs] == ["result"]
    params = {p.name: p for p in spec.params}
    assert params["epochs"].type == "int" and params["epochs"].default == 3 and not params["epochs"].required
    assert params["epochs"].description == "How many times."
    assert params["mode"].choices == ("fast", "exact")
    assert params["tags"].type == "list[str] | None"
    assert spec.inputs[0].required and not spec.inputs[1].required
    assert spec.resources.gpus == 2 and spec.resources.memory == "4Gi"
    assert spec.operator == "SampleTestOperator"
    assert json.loads(json.dumps(spec.to_dict()))["parameters"][0]["name"] == "epochs"


def test_every_component_documents_every_parameter():
    assert len(components()) >= 10
    for spec in components().values():
        assert spec.summary, spec.name
        for param in spec.parameters:
            assert param.description, f"{spec.name}.{param.name} has no :param: doc"


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("7", int, 7),
        (7.0, int, 7),
        ("0.25", float, 0.25),
        ("False", bool, False),
        ("yes", bool, True),
        ("a, b", list[str], ["a", "b"]),
        ('["1", "2"]', list[int], [1, 2]),
        ("None", int | None, None),
        ('{"a": 1}', dict, {"a": 1}),
        ("['a', 'b']", list[str], ["a", "b"]),  # a rendered template of a list Param
        ("{'k': True}", dict, {"k": True}),
    ],
)
def test_coercion_from_strings(value, annotation, expected):
    assert coerce("x", value, annotation) == expected


@pytest.mark.parametrize(
    ("value", "annotation", "message"),
    [
        ("abc", int, "epochs: expected an integer, got 'abc'"),
        ("1.5", int, "epochs: expected an integer, got '1.5'"),
        (True, int, "epochs: expected an integer, got True"),
        ("maybe", bool, "epochs: expected a boolean (true/false), got 'maybe'"),
        ("x", float, "epochs: expected a number, got 'x'"),
        ("slow", Literal["fast", "exact"], "epochs: expected one of 'fast', 'exact', got 'slow'"),
        ("[1,", list[int], "epochs: expected JSON (list)"),
        (None, int, "epochs: a value is required"),
    ],
)
def test_coercion_errors_name_the_parameter_and_value(value, annotation, message):
    with pytest.raises(ParameterError) as info:
        coerce("epochs", value, annotation)
    assert str(info.value).startswith(message)


def test_bind_rejects_unknown_and_missing_parameters():
    with pytest.raises(ParameterError, match="unknown parameter.*epoch"):
        sample.spec.bind({"data": "x", "epoch": 1})
    with pytest.raises(ParameterError, match="data: required"):
        sample.spec.bind({"epochs": 1})
    assert sample.spec.bind({"data": "x", "verbose": "true"})["verbose"] is True


def test_expressions_on_scalars_and_columns():
    assert evaluate("accuracy >= 0.8 and count > 10", {"accuracy": 0.9, "count": 11}) is True
    assert evaluate("not (a < b < c)", {"a": 1, "b": 3, "c": 2}) is True
    frame = pd.DataFrame({"sex": ["F", "M", "F"], "age": [30, 20, 10]})
    mask = evaluate("sex == 'F' and age >= 18 or age < 12", {c: frame[c] for c in frame})
    assert list(mask) == [True, False, True]
    assert list(evaluate("sex in ['M']", {"sex": frame["sex"]})) == [False, True, False]
    assert list(evaluate("1 if age > 15 else 0", {"age": frame["age"]})) == [1, 1, 0]
    assert float(evaluate("abs(x - 3)", {"x": np.float64(1.0)})) == 2.0


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "x.__class__", "x[0]", "(lambda: 1)()", "open('f')", "[i for i in x]"],
)
def test_expressions_refuse_anything_beyond_the_language(expression):
    with pytest.raises(ParameterError, match="condition: .* in"):
        evaluate(expression, {"x": [1]}, param="condition")


def test_expressions_report_unknown_names_and_syntax():
    with pytest.raises(ParameterError, match="unknown name 'acc'.*known: accuracy"):
        evaluate("acc > 1", {"accuracy": 1}, param="condition")
    with pytest.raises(ParameterError, match="condition: invalid expression"):
        evaluate("accuracy >", {"accuracy": 1}, param="condition")


def test_scope_paths_are_safe_and_run_scoped():
    scope = Scope(dag_id="dag", run_id="manual__2026-01-01T00:00:00+00:00", task_id="t", map_index=2)
    assert storage.task_uri("s3://bucket/root/", scope) == "s3://bucket/root/dag/manual__2026-01-01T00_00_00_00_00/t_2"


def test_commit_replaces_a_folder_atomically(tmp_path):
    target = tmp_path / "out" / "images"
    for content in ("first", "second"):
        work = tmp_path / f"work-{content}"
        work.mkdir()
        (work / f"{content}.txt").write_text(content)
        storage.commit(work, str(target))
    assert sorted(p.name for p in target.iterdir()) == ["second.txt"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["images"]  # no temporary or old copies left


def test_commit_with_move_renames_the_working_copy_unless_it_holds_a_link(tmp_path):
    """The runner's commit: a folder on the same file system is renamed into place (the same inodes, nothing
    copied); one holding a symbolic link is copied (the link followed), as without ``move``."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.txt").write_text("a")
    inode = (work / "a.txt").stat().st_ino
    storage.commit(work, str(tmp_path / "out" / "moved"), move=True)
    assert not work.exists() and (tmp_path / "out" / "moved" / "a.txt").stat().st_ino == inode
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "b.txt").symlink_to(tmp_path / "out" / "moved" / "a.txt")
    storage.commit(linked, str(tmp_path / "out" / "copied"), move=True)
    copied = tmp_path / "out" / "copied" / "b.txt"
    assert linked.exists() and not copied.is_symlink() and copied.read_text() == "a"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copied", "moved"]


def test_write_json_leaves_no_temporary_file(tmp_path):
    storage.write_json(str(tmp_path / "m.json"), {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_content_hash_changes_with_content(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("1")
    first = storage.content_hash(tmp_path / "d")
    (tmp_path / "d" / "f").write_text("2")
    assert first != storage.content_hash(tmp_path / "d")
    assert first.startswith("sha256:")


def test_runner_writes_outputs_and_manifest(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("good\nbad one\ngood\n")
    scope = Scope(dag_id="d", run_id="r", task_id="t")
    result = run(
        sample.spec, {"data": str(data), "epochs": "5", "tags": "x,y"}, root=str(tmp_path / "root"), scope=scope
    )
    assert result["result"] == str(tmp_path / "root" / "d" / "r" / "t" / "result.json")
    assert result["lines"] == 3
    assert json.loads(Path(result["result"]).read_text()) == {"lines": 3, "epochs": 5, "tags": ["x", "y"]}
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["component"] == "test.sample"
    assert manifest["parameters"]["epochs"] == 5
    assert manifest["inputs"]["data"] == {"uri": str(data), "hash": storage.content_hash(data)}
    assert manifest["outputs"]["result"]["hash"] == storage.content_hash(result["result"])
    assert manifest["rejected"] == [{"item": "bad one", "reason": "starts with bad"}]
    assert "numpy" in manifest["packages"]


def test_runner_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(ClaimedError, match=r"^data: input path does not exist: .*/nowhere.txt$"):
        run(sample.spec, {"data": str(tmp_path / "nowhere.txt")}, root=str(tmp_path))


def test_runner_rejects_a_component_that_skips_its_output(tmp_path):
    @component("test")
    def lazy(result: OutputPath = "r.txt") -> None:
        """Writes nothing.

        :param result: never written.
        """

    with pytest.raises(ClaimedError, match="did not write its output 'result'"):
        run(lazy.spec, {}, root=str(tmp_path))
    assert not list(tmp_path.rglob("manifest.json"))


def test_registry_error_lists_known_components():
    with pytest.raises(ClaimedError, match="unknown component 'input.nope'; known: .*input.dicom"):
        get("input.nope")


def test_require_columns_names_the_input_what_is_missing_and_what_is_there():
    import pandas as pd
    import pyarrow as pa

    from claimed_airflow.core.tables import require_columns

    frame = pd.DataFrame({"a": [1], "b": [2]})
    require_columns(frame, ["a", None], param="table")  # an unset (None) column is not required
    with pytest.raises(ClaimedError) as error:
        require_columns(frame, ["a", "x", "y"], param="table", where="the labels table")
    assert str(error.value) == "table: columns 'x', 'y' missing in the labels table (columns: a, b)"
    for table in (pa.table({"a": [1], "b": [2]}), ["a", "b"]):  # Arrow tables and plain lists of names
        with pytest.raises(ClaimedError, match=r"^key: column 'c' missing \(columns: a, b\)$"):
            require_columns(table, ["c"], param="key")
