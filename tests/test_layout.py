"""The import direction reads top-down: core <- pacs <- components <- adapters (operators, kfp, cli, serving, ...),
and no module of the package is in an import circle."""

from __future__ import annotations

import ast
import graphlib
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


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports: anywhere in it (inside functions, under TYPE_CHECKING too),
    each name resolved to the module or package that defines it."""
    paths = {
        ".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }

    def owner(name: str) -> str:
        while name not in paths:
            name = name.rpartition(".")[0]
        return name

    def ours(name: str | None) -> bool:
        return (name or "").split(".")[0] == package.name

    graph = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {owner(a.name) for a in node.names if ours(a.name)}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and ours(node.module):
                found |= {owner(f"{node.module}.{a.name}") for a in node.names}
        graph[module] = found - {module}
    return graph


def circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (``[a, b, a]``), or ``[]``."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return []


def test_no_module_is_in_an_import_circle():
    """Every module: core, pacs, components, hooks, operators, kfp, the CLI modules (cli, catalog, reference, ...)."""
    graph = import_graph()
    assert {"claimed_airflow.hooks.dicomweb", "claimed_airflow.kfp.plan", "claimed_airflow.cli"} <= set(graph)
    assert "claimed_airflow.core.options" in graph["claimed_airflow.core.pod"]  # it sees the imports
    assert circle(graph) == []


def test_the_check_sees_a_circle(tmp_path):
    package = tmp_path / "claimed_airflow"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("from claimed_airflow.core import b\n")
    (package / "core" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import claimed_airflow.core.a\n"
    )
    assert sorted(set(circle(import_graph(package)))) == ["claimed_airflow.core.a", "claimed_airflow.core.b"]


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
