"""The documentation site: it builds in strict mode, its reference is complete, its examples run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, ROOT

PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"(<!-- not run: [^>]+-->\s*)?```python\n(.*?)```", re.S)
NOTEBOOK_CELL = re.compile(r'# (\w+)\.ipynb, cell tagged "parameters"\n')


def python_blocks(page: Path) -> list[tuple[bool, str]]:
    """(run, source) of every ```python block; a block after `<!-- not run: why -->` is only compiled."""
    return [(not marker, source) for marker, source in BLOCK.findall(page.read_text())]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_site_builds_strict_with_a_complete_generated_reference(site):
    from claimed_airflow import get_provider_info
    from claimed_airflow.core import registry

    components = (site / "reference" / "components" / "index.html").read_text()
    operators = (site / "reference" / "operators" / "index.html").read_text()
    for spec in registry.library().values():
        assert f'id="{spec.name.replace(".", "").lower()}"' in components, spec.name
        assert f"<code>{spec.operator}</code>" in operators, spec.operator
        for param in spec.parameters:
            assert f"<code>{param.name}</code>" in components, (spec.name, param.name)
    info = get_provider_info()
    connections = (site / "reference" / "connections" / "index.html").read_text()
    for conn in info["connection-types"]:
        assert f"<code>{conn['connection-type']}</code>" in connections
    settings = (site / "reference" / "settings" / "index.html").read_text()
    for option in info["config"]["claimed"]["options"]:
        assert f"<code>{option}</code>" in settings
    assert "<code>export-kfp</code>" in (site / "reference" / "cli" / "index.html").read_text()


def test_every_page_is_in_the_navigation(site):
    for page in (ROOT / "docs").rglob("*.md"):
        relative = page.relative_to(ROOT / "docs").with_suffix("")
        built = site / relative / "index.html" if relative.name != "index" else site / "index.html"
        assert built.exists(), f"{page} was not built"
        assert "md-nav__link--active" in built.read_text(), f"{page} is not in mkdocs.yml's nav"


def test_readme_links_point_at_files():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to a missing file: {target}"


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page, tmp_path, monkeypatch):
    """Each page's Python examples run in order in one namespace (in a temporary folder).

    A notebook's parameters cell shown as `# name.ipynb, cell tagged "parameters"` becomes that notebook,
    turned into a component with `claimed-airflow create-component` as the page says.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "docs_example"}
    for run, source in python_blocks(page):
        code = compile(source, f"{page.name} example", "exec")
        notebook = NOTEBOOK_CELL.match(source)
        if notebook:
            _notebook_component(tmp_path, notebook.group(1), source)
        elif run:
            exec(code, namespace)


def _notebook_component(folder: Path, name: str, parameters: str) -> None:
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": parameters, "outputs": []},
        {"cell_type": "code", "metadata": {}, "source": "pass", "outputs": [], "execution_count": None},
    ]
    for cell in cells:
        cell.setdefault("execution_count", None)
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{name}.ipynb").write_text(json.dumps(notebook))
    done = subprocess.run(
        [sys.executable, "-m", "claimed_airflow.cli", "create-component", f"{name}.ipynb", "--category", "transform"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
