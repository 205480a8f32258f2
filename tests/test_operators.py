"""The Airflow adapter: generated operator classes, provider registration and DAG-parse hygiene."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest

import claimed_airflow
from claimed_airflow.core.registry import components
from claimed_airflow.operators import generate


def test_generated_operator_modules_are_in_sync():
    stale = [path.name for path, text in generate.generated_files().items() if path.read_text() != text]
    assert not stale, f"regenerate with `python -m claimed_airflow.operators.generate`: {stale}"


@pytest.mark.parametrize("spec", list(components().values()), ids=lambda s: s.name)
def test_operator_matches_its_component(spec):
    import claimed_airflow.operators as operators

    cls = getattr(operators, spec.operator)
    signature = inspect.signature(cls.__init__)
    arguments = [p.name for p in spec.arguments]
    assert [n for n in signature.parameters if n not in ("self", "kwargs")] == arguments
    for name in arguments:
        assert name in cls.template_fields
        assert f":param {name}:" in cls.__doc__ and f":type {name}:" in cls.__doc__
    assert cls.component == spec.name and cls.gate == spec.gate
    required = {p.name for p in spec.arguments if p.required}
    assert {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty} - {
        "self",
        "kwargs",
    } == required


def test_every_operator_name_follows_the_one_rule_and_collides_with_no_provider():
    """``{Name}{Category}Operator`` for every library component, and no class name any installed Airflow
    provider (or Airflow itself) uses for an operator: two classes of one name in a DAG file shadow each other."""
    import ast
    from pathlib import Path

    import airflow

    from claimed_airflow.core.component import operator_name

    names = {spec.operator for spec in components().values()}
    assert [s.name for s in components().values() if s.operator != operator_name(*s.name.split("."))] == []
    assert len(names) == len(components())
    theirs = set()
    roots = [Path(airflow.__file__).parent, *(Path(p) for p in airflow.providers.__path__)]
    for root in roots:
        for path in root.rglob("operators/*.py"):
            tree = ast.parse(path.read_text(errors="replace"))
            theirs |= {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert "SparkSqlOperator" in theirs and "KubernetesPodOperator" in theirs  # the scan sees the providers
    assert names & theirs == set()


def test_no_former_operator_name_is_kept():
    """Names of unreleased revisions (``FilterOperator``, ``SparkSqlOperator``, ...) have no shim."""
    import claimed_airflow.operators as operators

    with pytest.raises(AttributeError):
        operators.FilterOperator  # noqa: B018
    assert not hasattr(operators, "SparkSqlOperator") and not hasattr(operators, "__getattr__")


def test_template_fields_are_constructor_arguments():
    import claimed_airflow.operators as operators

    for name in operators.__all__:
        cls = getattr(operators, name)
        init_params = {
            p for klass in cls.__mro__ if "__init__" in vars(klass) for p in inspect.signature(klass).parameters
        }
        assert set(cls.template_fields) <= init_params, name


def test_provider_info_lists_importable_modules():
    import importlib

    info = claimed_airflow.get_provider_info()
    assert info["package-name"] == "claimed-airflow" and info["versions"] == [claimed_airflow.__version__]
    for group in info["operators"]:
        for module in group["python-modules"]:
            importlib.import_module(module)


def test_airflow_providers_list_shows_the_provider(airflow_home):
    done = subprocess.run(
        ["airflow", "providers", "list", "-o", "json"], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert done.returncode == 0, done.stderr
    providers = {p["package_name"]: p for p in json.loads(done.stdout)}
    assert providers["claimed-airflow"]["version"] == claimed_airflow.__version__


def test_importing_operators_and_the_dag_imports_nothing_heavy():
    code = textwrap.dedent(
        """
        import sys, runpy
        import claimed_airflow.operators
        runpy.run_path("dags/dicom_to_deployment.py")
        heavy = ("tensorflow", "keras", "aif360", "art", "pyspark", "kfp", "torch", "pandas", "numpy",
                 "pydicom", "sklearn", "matplotlib", "PIL")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    root = os.path.dirname(os.path.dirname(__file__))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_every_ready_dag_is_documented_for_the_ui():
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    assert not bag.import_errors and bag.dags
    for dag in bag.dags.values():
        assert dag.doc_md and dag.tags and dag.description, dag.dag_id
        assert {t.owner for t in dag.tasks} != {"airflow"}, dag.dag_id
        for name, param in dag.params.items():
            assert param.description and param.schema.get("type"), f"{dag.dag_id}: param {name}"


def test_provider_info_lists_every_operator_module():
    listed = {m for group in claimed_airflow.get_provider_info()["operators"] for m in group["python-modules"]}
    expected = {f"claimed_airflow.operators.{spec.category}" for spec in components().values()}
    assert expected | {"claimed_airflow.operators.base", "claimed_airflow.operators.approval"} == listed


def test_every_operator_class_is_exported():
    """Each operator class a listed module defines is in ``claimed_airflow.operators.__all__``."""
    import importlib

    import claimed_airflow.operators as operators
    from claimed_airflow.version_compat import BaseOperator

    listed = {m for group in claimed_airflow.get_provider_info()["operators"] for m in group["python-modules"]}
    for name in listed:
        module = importlib.import_module(name)
        defined = {
            value.__name__
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseOperator) and value.__module__ == name
        }
        assert defined <= set(operators.__all__), (name, defined - set(operators.__all__))
    assert "ModelApprovalOperator" in operators.__all__
