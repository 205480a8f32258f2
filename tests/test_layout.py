"""The import direction reads top-down: core <- pacs <- components <- adapters (operators, kfp, cli, serving, ...)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import claimed_airflow

PACKAGE = Path(claimed_airflow.__file__).parent
# What each layer may import of the package (anywhere in a module, also inside functions). ``hooks`` and
# ``version_compat`` are the Airflow boundary that components reach for connections, lazily.
ALLOWED = {
    "core": {"core", "version_compat", "__init__"},
    "pacs": {"core", "pacs", "version_compat", "__init__"},
    "components": {"core", "pacs", "components", "hooks", "version_compat", "__init__"},
}


def is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def imported_parts(path: Path) -> set[tuple[int, str]]:
    """(line, first part under claimed_airflow) of every import of the package in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "claimed_airflow":  # a module of the package, or a name of its __init__
                names = [f"claimed_airflow.{a.name if is_module(a.name) else '__init__'}" for a in node.names]
        for name in names:
            if name.startswith("claimed_airflow."):
                found.add((node.lineno, name.split(".")[1]))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_nothing_above_it(layer):
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports claimed_airflow.{part}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for line, part in sorted(imported_parts(path))
        if part not in ALLOWED[layer]
    ]
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from claimed_airflow.serving import x\n    import claimed_airflow.operators.base\n"
    )
    assert imported_parts(module) == {(2, "serving"), (3, "operators")}


def test_readme_layout_names_every_core_module_and_matches_the_development_page():
    import re

    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    assert layout in (root / "docs" / "development.md").read_text()
    named = set(re.findall(r"([a-z_]+\.py)", layout))
    core = {p.name for p in (PACKAGE / "core").glob("*.py")} - {"__init__.py"}
    assert core <= named, f"core modules missing from README's layout: {sorted(core - named)}"
    top = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert top <= named, f"modules missing from README's layout: {sorted(top - named)}"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert all(f"{folder}/" in layout for folder in folders)
