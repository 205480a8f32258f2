"""Run user code turned into components: Jupyter notebooks (papermill), argparse scripts, functions in files.

The modules written by ``claimed-airflow create-component`` call these helpers. A notebook or a script
can hand small values (metrics) back to the runner with :func:`report`; they become the component's
returned values (XCom, manifest), e.g. the objective of a hyperparameter search.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")
VALUES_ENV = "CLAIMED_VALUES_FILE"


def report(**values: Any) -> None:
    """Called inside a notebook or script: return small JSON values (metrics) to the component runner.

    Outside a component run (no ``$CLAIMED_VALUES_FILE``) it only logs them, so the notebook still runs
    on its own.
    """
    path = os.environ.get(VALUES_ENV)
    if not path:
        log.info("values (not running as a component): %s", values)
        return
    current = json.loads(Path(path).read_text() or "{}") if Path(path).exists() else {}
    current.update(values)
    Path(path).write_text(json.dumps(current, default=str))


@contextlib.contextmanager
def _values_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="claimed-values-") as tmp:
        path = Path(tmp) / "values.json"
        previous = os.environ.get(VALUES_ENV)
        os.environ[VALUES_ENV] = str(path)
        try:
            yield path
        finally:
            if previous is None:
                os.environ.pop(VALUES_ENV, None)
            else:
                os.environ[VALUES_ENV] = previous


def _read_values(path: Path, source: str) -> dict:
    if not path.exists():
        return {}
    try:
        values = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise ClaimedError(f"{source}: reported values are not JSON: {exc.msg}") from None
    return values if isinstance(values, dict) else {}


def run_notebook(notebook: str | Path, values: dict[str, Any], *, executed: str, kernel: str = "python3") -> dict:
    """Execute ``notebook`` with papermill, the component's values injected after its ``parameters`` cell.

    :param notebook: The notebook file.
    :param values: All component arguments (local paths for inputs and outputs).
    :param executed: Name of the output parameter that receives the executed notebook.
    :param kernel: Jupyter kernel name.
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.exists():
        raise ClaimedError(f"notebook: {notebook} not found (ship it next to the generated component module)")
    parameters = {k: v for k, v in values.items() if k != executed}
    out = values[executed]
    log.info("executing notebook %s with %s", notebook.name, parameters)
    with _values_file() as values_path:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(out),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(notebook.parent),
                progress_bar=False,
            )
        except papermill.PapermillExecutionError as exc:
            raise ClaimedError(
                f"{notebook.name}: cell {exc.exec_count} failed with {exc.ename}: {exc.evalue}"
                f" (executed notebook: {out})"
            ) from None
        return _read_values(values_path, notebook.name)


def script_arguments(values: dict[str, Any], options: dict[str, tuple[str, str]]) -> list[str]:
    """Command-line arguments for an argparse script. ``options[name] = (flag, action)``; flag "" = positional."""
    argv: list[str] = []
    for name, (flag, action) in options.items():
        value = values.get(name)
        if value is None:
            continue
        if action in ("store_true", "store_false"):
            if bool(value) == (action == "store_true"):
                argv.append(flag)
            continue
        items = (
            [str(v) for v in value]
            if isinstance(value, list)
            else [json.dumps(value) if isinstance(value, dict) else str(value)]
        )
        if flag:
            argv.append(flag)
        argv += items
    return argv


def run_script(script: str | Path, values: dict[str, Any], options: dict[str, tuple[str, str]]) -> dict:
    """Run an argparse script with ``sys.executable``; its output goes to the log, a failure to a clear error."""
    script = Path(script)
    if not script.exists():
        raise ClaimedError(f"script: {script} not found (ship it next to the generated component module)")
    argv = [sys.executable, str(script), *script_arguments(values, options)]
    log.info("running %s", " ".join(argv[1:]))
    with _values_file() as values_path:
        done = subprocess.run(argv, cwd=script.parent, capture_output=True, text=True, env=dict(os.environ))
        for line in (done.stdout + done.stderr).splitlines():
            log.info("%s: %s", script.name, line)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ClaimedError(f"{script.name}: exited with status {done.returncode}: {last}")
        return _read_values(values_path, script.name)


def load_function(path: str | Path, name: str) -> Callable:
    """Function ``name`` of the Python file ``path`` (imported as a module named after the file)."""
    path = Path(path)
    module_name = f"claimed_user_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or not path.exists():
            raise ClaimedError(f"source: {path} not found (ship it next to the generated component module)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    function = getattr(module, name, None)
    if not callable(function):
        raise ClaimedError(f"source: {path.name} has no function {name!r}")
    return function
