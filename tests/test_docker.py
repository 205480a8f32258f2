"""The images in docker/: no Docker engine runs here, so their instructions are checked and their
entrypoint commands are run in a subprocess, as the container would run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPONENT_IMAGES = ["Dockerfile", "Dockerfile.gpu"]
ALL_IMAGES = [*COMPONENT_IMAGES, "Dockerfile.airflow"]
BIN = Path(sys.executable).parent


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / name).read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def build_args(name: str) -> dict[str, str]:
    return dict(arg.split("=", 1) for keyword, arg in instructions(name) if keyword == "ARG" and "=" in arg)


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_base_images_are_pinned_and_the_user_is_not_root(name):
    steps = instructions(name)
    bases = [arg for keyword, arg in steps if keyword == "FROM"]
    assert bases, name
    for base in bases:
        image, _, tag = base.partition(":")
        assert re.match(r"^\d+\.\d+(\.\d+)?", tag) or "@sha256:" in base, f"{name}: unpinned base {base}"
    users = [arg for keyword, arg in steps if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{name}: runs as {users[-1:]}"


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_installed_extras_exist(name):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = build_args(name)["EXTRAS"].split(",")
    assert set(wanted) <= set(extras), f"{name}: unknown extras {set(wanted) - set(extras)}"
    assert any("${EXTRAS}" in arg for keyword, arg in instructions(name) if keyword == "RUN")


@pytest.mark.parametrize("name", COMPONENT_IMAGES)
def test_component_image_entrypoint_runs(name, tmp_path):
    """ENTRYPOINT + CMD, then a component run as a pod runs it, on the venv's claimed-airflow."""
    steps = dict(instructions(name))
    entrypoint, command = json.loads(steps["ENTRYPOINT"]), json.loads(steps["CMD"])
    assert entrypoint == ["claimed-airflow"]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", HOME=str(tmp_path))
    listed = subprocess.run([*entrypoint, *command], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and "train.mobilenet_v2" in listed.stdout
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    done = subprocess.run(
        [*entrypoint, "run", "filter.rows", f"--table={table}", "--condition=a > 1", f"--output-root={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_out"] == 1


def test_helm_values_use_the_kubernetes_executor_and_postgresql():
    values = yaml.safe_load((DOCKER / "values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["postgresql"]["enabled"] is True and values["allowPodLaunching"] is True
    airflow_image = f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    assert airflow_image in (DOCKER / "Dockerfile.airflow").read_text()
    claimed = values["config"]["claimed"]
    assert claimed["engine"] == "kubernetes" and claimed["output_root"].startswith("s3://")
    assert claimed["image"] in (DOCKER / "Dockerfile").read_text()
    assert claimed["gpu_image"] in (DOCKER / "Dockerfile.gpu").read_text()
    json.loads(claimed["gpu_node_selector"])
    env = {e["name"]: e["value"] for e in values["env"]}
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "local[*]"


def test_helm_values_name_known_settings_and_the_current_version():
    import claimed_airflow

    values = yaml.safe_load((DOCKER / "values.yaml").read_text())
    options = claimed_airflow.get_provider_info()["config"]["claimed"]["options"]
    assert set(values["config"]["claimed"]) <= set(options)
    assert values["images"]["airflow"]["tag"] == claimed_airflow.__version__
    assert values["config"]["claimed"]["image"].endswith(f":{claimed_airflow.__version__}")


@pytest.mark.parametrize("name", COMPONENT_IMAGES)
def test_component_images_can_serve_a_model(name):
    """deploy.kserve (model_format=claimed) runs `claimed-airflow serve` in the component image."""
    assert "serve" in build_args(name)["EXTRAS"].split(",")
