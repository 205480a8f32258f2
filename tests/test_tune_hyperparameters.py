"""tune.hyperparameters: Optuna over a real (tiny) training component, and the Katib Experiment against a stub."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from claimed_airflow.components.tune.hyperparameters import METRICS_FORMAT
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from tests.kube_stub import KubeStub

pytest.importorskip("optuna", reason="extra tune")

TRAINER = "tests.trainers:logistic_german"


SPACE = {"learning_rate": {"low": 0.001, "high": 1.0, "log": True}, "epochs": {"low": 1, "high": 40}, "l2": [0.0, 0.01]}


@pytest.fixture
def german(shared_data) -> str:
    return str(shared_data / "german" / "german.data")


def test_local_search_with_optuna(german, tmp_path):
    result = run(
        "tune.hyperparameters",
        {
            "trainer": TRAINER,
            "search_space": json.dumps(SPACE),
            "objective": "accuracy",
            "trials": 6,
            "algorithm": "random",
            "fixed": {"data": german},
            "trial_root": str(tmp_path / "trials"),
        },
        root=str(tmp_path / "out"),
    )
    table = pd.read_csv(result["results"])
    assert len(table) == 6 and set(table["state"]) == {"complete"}
    assert result["best_value"] == table["accuracy"].max() and result["best_trial"] == table["accuracy"].idxmax()
    assert table["param_epochs"].between(1, 40).all() and set(table["param_l2"]) <= {0.0, 0.01}
    again = run(TRAINER, {"data": german, **result["best_params"]}, root=str(tmp_path / "again"))
    assert again["accuracy"] == result["best_value"]  # the reported best parameters reproduce the best value
    assert Image.open(result["plot"]).format == "PNG"
    assert len(list((tmp_path / "trials" / "trials").glob("*/train.logistic_german/model.json"))) == 6


def test_grid_search_covers_the_grid(german, tmp_path):
    space = {"epochs": {"low": 10, "high": 30, "step": 10}, "learning_rate": [0.05, 0.5]}
    result = run(
        "tune.hyperparameters",
        {
            "trainer": TRAINER,
            "search_space": space,
            "objective": "accuracy",
            "trials": 6,
            "algorithm": "grid",
            "fixed": {"data": german},
            "trial_root": str(tmp_path / "trials"),
        },
        root=str(tmp_path / "out"),
    )
    table = pd.read_csv(result["results"])
    assert set(zip(table["param_epochs"], table["param_learning_rate"], strict=True)) == {
        (e, lr) for e in (10, 20, 30) for lr in (0.05, 0.5)
    }


def test_katib_experiment_runs_our_entrypoint_and_its_metrics_filter_reads_our_output(german, tmp_path, capsys):
    from claimed_airflow.cli import main

    result = run(
        "tune.hyperparameters",
        {
            "trainer": TRAINER,
            "search_space": SPACE,
            "objective": "accuracy",
            "trials": 2,
            "fixed": {"data": german},
            "trial_root": str(tmp_path / "trials"),
        },
        root=str(tmp_path),
    )
    manifest = json.loads(Path(result["experiment"]).read_text())
    spec = manifest["spec"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "accuracy"}
    assert spec["parameters"][0] == {
        "name": "learning_rate",
        "parameterType": "double",
        "feasibleSpace": {"min": "0.001", "max": "1.0", "distribution": "logUniform"},
    }
    assert spec["parameters"][2] == {
        "name": "l2",
        "parameterType": "categorical",
        "feasibleSpace": {"list": ["0.0", "0.01"]},
    }
    command = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["claimed-airflow", "run", TRAINER] and "${trialParameters.epochs}" in command
    # Run the trial's command line as Katib would (parameters substituted) and apply the metrics filter.
    argv = [
        a.replace("${trialParameters.learning_rate}", "0.3")
        .replace("${trialParameters.epochs}", "5")
        .replace("${trialParameters.l2}", "0.01")
        .replace("${trialSpec.Name}", "trial-1")
        for a in command[1:]
    ]
    argv[argv.index("--output-root") + 1] = str(tmp_path / "katib")
    capsys.readouterr()
    assert main(argv) == 0
    metrics = dict(
        re.findall(spec["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"][0], capsys.readouterr().out)
    )
    direct = run(TRAINER, {"data": german, "learning_rate": 0.3, "epochs": 5, "l2": 0.01}, root=str(tmp_path))
    assert float(metrics["accuracy"]) == direct["accuracy"]
    assert METRICS_FORMAT == spec["metricsCollectorSpec"]["source"]["filter"]["metricsFormat"][0]


def _trial(name, lr, epochs, l2, accuracy, state="Succeeded"):
    return {
        "metadata": {"name": name},
        "spec": {
            "parameterAssignments": [
                {"name": "learning_rate", "value": str(lr)},
                {"name": "epochs", "value": str(epochs)},
                {"name": "l2", "value": str(l2)},
            ]
        },
        "status": {
            "conditions": [{"type": state, "status": "True"}],
            "observation": {"metrics": [{"name": "accuracy", "latest": str(accuracy)}]},
        },
    }


def test_kubernetes_engine_creates_the_experiment_and_waits(german, tmp_path, monkeypatch):
    stub = KubeStub()
    base = "/apis/kubeflow.org/v1beta1/namespaces/ml"
    name = "tune-train-logistic-german"
    stub.routes[("POST", f"{base}/experiments")] = [(201, {})]
    stub.routes[("GET", f"{base}/experiments/{name}")] = [
        (200, {"status": {"conditions": [{"type": "Running", "status": "True"}]}}),
        (
            200,
            {
                "status": {
                    "conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]
                }
            },
        ),
    ]
    stub.routes[("GET", f"{base}/trials")] = [
        (
            200,
            {
                "items": [
                    _trial(f"{name}-a", 0.1, 10, 0.0, 0.71),
                    _trial(f"{name}-b", 0.5, 30, 0.01, 0.76),
                    _trial(f"{name}-c", 0.9, 3, 0.0, 0.0, state="Failed"),
                ]
            },
        )
    ]
    args = {
        "trainer": TRAINER,
        "search_space": SPACE,
        "objective": "accuracy",
        "trials": 3,
        "backend": "kubernetes",
        "katib_namespace": "ml",
        "fixed": {"data": "s3://bucket/german.data"},
        "conn_id": stub.connection(tmp_path, monkeypatch),
        "poll_interval": 0.01,
        "timeout": 10,
    }
    try:
        result = run("tune.hyperparameters", args, root=str(tmp_path))
        assert result["best_params"] == {"learning_rate": 0.5, "epochs": 30, "l2": 0.01}
        assert result["best_value"] == 0.76 and result["trials_failed"] == 1
        post = stub.requests[0]
        assert post["method"] == "POST" and post["authorization"] == "Bearer stub-token"
        assert post["body"] == json.loads(Path(result["experiment"]).read_text())
        assert [r["method"] for r in stub.requests] == ["POST", "GET", "GET", "GET"]
        path, _, query = stub.requests[-1]["path"].partition("?")
        assert path == f"{base}/trials"
        assert urllib.parse.parse_qs(query) == {"labelSelector": [f"katib.kubeflow.org/experiment={name}"]}
        assert "stub-token" not in Path(result["manifest"]).read_text()
        # a failed experiment and a timeout are clear errors
        stub.routes[("GET", f"{base}/experiments/{name}")] = [
            (
                200,
                {
                    "status": {
                        "conditions": [{"type": "Failed", "status": "True", "message": "trial image pull failed"}]
                    }
                },
            )
        ]
        with pytest.raises(ClaimedError, match="Katib Experiment ml/tune-train-logistic-german failed: trial image"):
            run("tune.hyperparameters", args, root=str(tmp_path))
        stub.routes[("GET", f"{base}/experiments/{name}")] = [(200, {"status": {}})]
        with pytest.raises(ClaimedError, match="timeout: experiments/tune-train-logistic-german did not finish"):
            run("tune.hyperparameters", {**args, "timeout": 0.05}, root=str(tmp_path))
        stub.routes[("POST", f"{base}/experiments")] = [(403, {"message": "experiments is forbidden"})]
        with pytest.raises(
            ClaimedError,
            match=r"cannot create the Katib Experiment .* refused to create .* \(403: experiments is forbidden",
        ):
            run("tune.hyperparameters", args, root=str(tmp_path))
    finally:
        stub.close()


def test_bad_inputs(german, tmp_path):
    base = {
        "trainer": TRAINER,
        "objective": "accuracy",
        "trials": 2,
        "fixed": {"data": german},
        "trial_root": str(tmp_path / "t"),
    }
    with pytest.raises(ClaimedError, match="search_space: 'momentum' is not a parameter of train.logistic_german"):
        run("tune.hyperparameters", {**base, "search_space": {"momentum": [0.9]}}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="search_space: epochs: a float range does not fit the int parameter"):
        run(
            "tune.hyperparameters",
            {**base, "search_space": {"epochs": {"low": 1, "high": 2, "type": "float"}}},
            root=str(tmp_path),
        )
    with pytest.raises(ClaimedError, match="objective: 'f1' is not a number returned by train.logistic_german"):
        run("tune.hyperparameters", {**base, "search_space": {"l2": [0.0]}, "objective": "f1"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="unknown component 'train.nothing'"):
        run(
            "tune.hyperparameters",
            {**base, "trainer": "train.nothing", "search_space": {"l2": [0.0]}},
            root=str(tmp_path),
        )
    with pytest.raises(ClaimedError, match="trainer: all 2 trials failed: data: input path does not exist"):
        run(
            "tune.hyperparameters",
            {**base, "search_space": {"l2": [0.0, 0.1]}, "fixed": {"data": "/nowhere.data"}},
            root=str(tmp_path),
        )
