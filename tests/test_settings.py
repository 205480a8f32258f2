"""One lookup order for every claimed setting; every setting read is declared and documented."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claimed_airflow.core import registry, settings
from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.settings import OPTIONS, flag_setting, json_setting, list_setting, setting

PACKAGE = Path(__file__).resolve().parents[1] / "claimed_airflow"
READERS = {"setting", "json_setting", "flag_setting", "list_setting"}


@pytest.fixture
def clean(monkeypatch):
    """No claimed setting in the environment (conftest sets the output root)."""
    for name in list(os.environ):
        if name.startswith(("CLAIMED_", "AIRFLOW__CLAIMED__", "AIRFLOW_VAR_CLAIMED_")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_lookup_order_task_argument_variable_config_environment_default(clean):
    import airflow  # noqa: F401  (a process running Airflow reads its Variables and config)

    assert setting("kubernetes_namespace", "fallback") == "fallback"
    clean.setenv("CLAIMED_KUBERNETES_NAMESPACE", "from-env")
    assert setting("kubernetes_namespace", "fallback") == "from-env"
    clean.setenv("AIRFLOW__CLAIMED__KUBERNETES_NAMESPACE", "from-config")
    assert setting("kubernetes_namespace") == "from-config"
    clean.setenv("AIRFLOW_VAR_CLAIMED_KUBERNETES_NAMESPACE", "from-variable")
    assert setting("kubernetes_namespace") == "from-variable"
    assert setting("kubernetes_namespace", value="from-task") == "from-task"
    for deferring in (None, "", "default", " Default "):
        assert setting("kubernetes_namespace", value=deferring) == "from-variable"
    clean.setenv("AIRFLOW__CLAIMED__KUBERNETES_NAMESPACE", "")  # empty counts as unset
    clean.delenv("AIRFLOW_VAR_CLAIMED_KUBERNETES_NAMESPACE")
    assert setting("kubernetes_namespace") == "from-env"


def test_typed_settings(clean):
    assert flag_setting("cache") is False and flag_setting("cache", value=True) is True
    clean.setenv("CLAIMED_CACHE", "true")
    assert flag_setting("cache") is True and flag_setting("cache", value=False) is False
    clean.setenv("AIRFLOW__CLAIMED__IMAGE_PULL_SECRETS", " regcred, other ,")
    assert list_setting("image_pull_secrets") == ["regcred", "other"]
    assert list_setting("image_pull_secrets", value=["mine"]) == ["mine"]
    clean.setenv("CLAIMED_NODE_SELECTOR", '{"pool": "cpu"}')
    assert json_setting("node_selector") == {"pool": "cpu"}
    clean.setenv("CLAIMED_NODE_SELECTOR", "{pool")
    with pytest.raises(ParameterError, match="claimed setting node_selector: expected JSON"):
        json_setting("node_selector")


def test_an_undeclared_setting_is_refused():
    with pytest.raises(ValueError, match="'no_such_option' is not declared"):
        setting("no_such_option")


def test_output_root_and_cache_follow_the_one_order(clean, tmp_path):
    """output_root read config then environment but no Variable, cache config only: both follow the order now."""
    from claimed_airflow.core.storage import default_root
    from claimed_airflow.operators import ClaimedOperator

    clean.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_root() == str(tmp_path / "claimed-artifacts")  # a process running Airflow
    clean.setenv("CLAIMED_OUTPUT_ROOT", "s3://env/root")
    assert default_root() == "s3://env/root"
    clean.setenv("AIRFLOW__CLAIMED__OUTPUT_ROOT", "s3://config/root")
    assert default_root() == "s3://config/root"
    clean.setenv("AIRFLOW_VAR_CLAIMED_OUTPUT_ROOT", "s3://variable/root")
    assert default_root() == "s3://variable/root"

    task = ClaimedOperator(task_id="t", component="filter.rows", arguments={})
    assert task._cache_enabled() is False
    clean.setenv("CLAIMED_CACHE", "True")
    assert task._cache_enabled() is True
    clean.setenv("AIRFLOW_VAR_CLAIMED_CACHE", "false")
    assert task._cache_enabled() is False
    task.cache = True
    assert task._cache_enabled() is True


def test_outside_airflow_settings_read_the_environment_without_importing_airflow(clean, tmp_path):
    """The CLI, a pod and a KFP step: no Variable, ``AIRFLOW__CLAIMED__<NAME>`` for the config, never an import;
    the default output root is ``./claimed-artifacts`` there."""
    clean.setenv("AIRFLOW_VAR_CLAIMED_ENGINE", "spark")
    clean.setenv("AIRFLOW__CLAIMED__ENGINE", "kubernetes")
    clean.setenv("CLAIMED_IMAGE", "registry/claimed:1")
    code = (
        "import sys; from claimed_airflow.core.settings import setting; "
        "from claimed_airflow.core.storage import default_root; "
        "print(setting('engine'), setting('image'), default_root(), 'airflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ, cwd=tmp_path
    )
    assert out.stdout.split() == ["kubernetes", "registry/claimed:1", str(tmp_path / "claimed-artifacts"), "False"]


def test_a_declared_default_is_the_one_used_and_never_repeated(clean):
    """``Option.default`` is what an unset setting answers (it was documentation, repeated at the call sites)."""
    declared = {name: option.default for name, option in OPTIONS.items() if option.default is not None}
    assert {"engine", "cache", "spark_master", "spark_auto_bytes", "spark_log_level"} <= set(declared)
    for name, default in declared.items():
        assert setting(name) == default
        assert setting(name, None) is None  # whether it is set at all
        with pytest.raises(ValueError, match=f"^claimed setting '{name}' declares its default"):
            setting(name, "another")
    clean.setenv("CLAIMED_SPARK_LOG_LEVEL", "ERROR")
    assert setting("spark_log_level") == "ERROR" and setting("spark_log_level", None) == "ERROR"
    clean.setitem(OPTIONS, "cache", dataclasses.replace(OPTIONS["cache"], default="True"))
    assert flag_setting("cache") is True  # read from the declaration, not from a copy at the call site
    from claimed_airflow.core.spark import backend_for
    from claimed_airflow.operators.engines import resolve

    clean.setitem(OPTIONS, "engine", dataclasses.replace(OPTIONS["engine"], default="spark"))
    clean.setitem(OPTIONS, "spark_auto_bytes", dataclasses.replace(OPTIONS["spark_auto_bytes"], default="0"))
    assert resolve(None) == "spark" and resolve("local") == "local"
    assert backend_for("auto", __file__) == "spark"  # larger than 0 bytes
    assert backend_for("auto") == "local"  # no input, and spark_master (declared local[*]) is not set


def test_components_setting_registers_modules_from_the_airflow_config(clean, tmp_path):
    """``[claimed] components`` in airflow.cfg was documented but only the environment was read."""
    from claimed_airflow.version_compat import conf

    (tmp_path / "configured_claimed_components.py").write_text(
        "from claimed_airflow.core import component\n\n\n"
        "@component('transform', name='configured_double')\n"
        "def double(value: int = 1) -> dict:\n"
        '    """Double a value."""\n'
        "    return {'value': 2 * value}\n"
    )
    clean.syspath_prepend(str(tmp_path))
    clean.setenv("AIRFLOW_VAR_CLAIMED_COMPONENTS", "not_a_module")  # read while DAGs are parsed: no Variable
    conf.set("claimed", "components", "configured_claimed_components")
    registry.components.cache_clear()
    try:
        assert registry.configured_modules() == ["configured_claimed_components"]
        assert "transform.configured_double" in registry.components()
        assert "filter.rows" in registry.components()  # next to the library's
    finally:
        conf.remove_option("claimed", "components")
        registry.components.cache_clear()
    clean.setenv(registry.MODULES_ENV, "configured_claimed_components")
    assert registry.configured_modules() == ["configured_claimed_components"]


def _names_read(path: Path) -> set[str]:
    """Setting names passed as a literal to a settings reader in ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        func = getattr(node, "func", None)
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called not in READERS:
            continue
        for arg in node.args:  # the name: the first text argument
            if isinstance(arg, ast.IfExp):  # "gpu_image" if gpus else "image"
                names |= {branch.value for branch in (arg.body, arg.orelse) if isinstance(branch, ast.Constant)}
                break
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
                break
    return names


def test_every_setting_read_is_declared_in_the_provider_config_and_the_reference():
    from claimed_airflow import get_provider_info
    from claimed_airflow.reference import settings_page

    read = set().union(*(_names_read(path) for path in PACKAGE.rglob("*.py")))
    assert {"output_root", "engine", "cache", "components", "tolerations", "image_pull_secrets"} <= read
    assert read <= set(OPTIONS), f"read but not declared: {sorted(read - set(OPTIONS))}"
    declared = get_provider_info()["config"]["claimed"]["options"]
    assert list(declared) == list(OPTIONS)
    page = settings_page()
    for name in OPTIONS:
        assert f"| `{name}` |" in page and settings.env_name(name) in page
    assert "Variable `claimed_<option>`" in page


def test_the_pod_takes_its_unset_options_from_the_settings(clean):
    """A task's pod: image pull secrets, node selector and tolerations it does not set come from the settings."""
    from claimed_airflow.core.options import KubernetesOptions
    from claimed_airflow.core.pod import task_pod

    spec = registry.get("filter.rows")
    clean.setenv("CLAIMED_IMAGE_PULL_SECRETS", "regcred, other")
    clean.setenv("CLAIMED_NODE_SELECTOR", '{"pool": "cpu"}')
    clean.setenv("CLAIMED_TOLERATIONS", '[{"key": "pool", "operator": "Exists"}]')
    pod = task_pod(KubernetesOptions(), spec)
    assert pod.image_pull_secrets == ("regcred", "other")
    assert pod.node_selector == {"pool": "cpu"}
    assert pod.tolerations == ({"key": "pool", "operator": "Exists"},)
    assert task_pod(KubernetesOptions(image_pull_secrets=["mine"]), spec).image_pull_secrets == ("mine",)
