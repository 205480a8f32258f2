"""Export to Kubeflow: component and pipeline YAML read back by kfp's own loader and compiler.

Runs in the kfp environment (``.venv-kfp``); skipped where kfp is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kfp.dsl")

from kfp import compiler, components  # noqa: E402

from claimed_airflow import __version__  # noqa: E402
from claimed_airflow.cli import main as cli  # noqa: E402
from claimed_airflow.core import registry  # noqa: E402
from claimed_airflow.kfp.components import python_type  # noqa: E402
from tests.kfp_export.flagship import FLAGSHIP  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KFP_TYPES = {
    "str": "STRING",
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "bool": "BOOLEAN",
    "list": "LIST",
    "dict": "STRUCT",
}


def _executor(spec_dict: dict, task: str, root: dict | None = None) -> dict:
    """The container of ``task`` in a compiled pipeline (``root``: the DAG holding the task)."""
    dag = (root or spec_dict["root"])["dag"]["tasks"][task]
    component = spec_dict["components"][dag["componentRef"]["name"]]
    return spec_dict["deploymentSpec"]["executors"][component["executorLabel"]]["container"]


def _pipeline_dict(component) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(component.pipeline_spec)


@pytest.mark.parametrize("spec", list(registry.components().values()), ids=lambda s: s.name)
def test_every_component_exports_to_a_loadable_kfp_component(spec, tmp_path):
    path = tmp_path / "c.yaml"
    assert cli(["export-kfp", "--component", spec.name, "-o", str(path)]) == 0
    loaded = components.load_component_from_file(str(path))
    inputs = _pipeline_dict(loaded)["root"]["inputDefinitions"]["parameters"]
    for param in spec.arguments:
        assert inputs[param.name]["parameterType"] == KFP_TYPES[python_type(param)]
        if param.required:
            assert not inputs[param.name].get("isOptional")
        elif param.default is not None:
            assert inputs[param.name]["defaultValue"] == param.default
    outputs = loaded.component_spec.outputs
    typed = {name: outputs[name].type for name in outputs if name.startswith("ui_")}
    assert set(outputs) - set(typed) == {p.name for p in spec.outputs} | {"manifest", "values"} | (
        {"blessed"} if spec.gate else set()
    )
    assert typed["ui_metrics"] == "system.Metrics@0.0.1"  # every step shows its numbers in the KFP UI
    container = _executor(_pipeline_dict(loaded), next(iter(_pipeline_dict(loaded)["root"]["dag"]["tasks"])))
    tag = f"{__version__}-gpu" if spec.resources.gpus else __version__
    assert container["image"] == f"{spec.image}:{tag}"
    source = container["command"][-1]
    assert f"return run_step({spec.name!r}, arguments)" in source
    assert container["resources"]["resourceCpuRequest"] == spec.resources.cpu
    assert container["resources"]["resourceMemoryLimit"] == spec.resources.memory
    assert "resourceCpuLimit" not in container["resources"]
    if spec.resources.gpus:
        assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert container["resources"]["accelerator"]["resourceCount"] == str(spec.resources.gpus)
    else:
        assert "accelerator" not in container["resources"]


def params_of(task: dict) -> dict:
    return task["inputs"]["parameters"]


def test_flagship_dag_exports_with_gpu_on_train(tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert cli(["export-kfp", str(FLAGSHIP), "-o", str(path)]) == 0  # no options: the DAG as it is
    loaded = components.load_component_from_file(str(path))  # kfp's own loader
    spec = _pipeline_dict(loaded)
    root = spec["root"]
    tasks = root["dag"]["tasks"]
    assert set(tasks) >= {  # the flagship grows; these are the core of it
        "dicom-input",
        "dicom-to-images",
        "train",
        "predict",
        "confusion-matrix",
        "fairness",
        "lime",
        "robustness",
        "blessing",
        "notify",
        "blessing-blessed",
    }
    assert params_of(tasks["notify"])["to"] == {"componentInputParameter": "notify_to"}
    train = _executor(spec, "train")
    assert train["resources"]["accelerator"] == {
        "count": "1",
        "resourceCount": "1",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }
    # The kubernetes engine's resource rule (core.pod): cpu and memory requested, memory limited, no CPU limit.
    assert train["resources"]["resourceCpuRequest"] == "4" and train["resources"]["resourceMemoryRequest"] == "8Gi"
    assert train["resources"]["resourceMemoryLimit"] == "8Gi" and "resourceCpuLimit" not in train["resources"]
    assert "accelerator" not in _executor(spec, "predict")["resources"]
    assert train["image"] == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}-gpu"
    assert _executor(spec, "predict")["image"] == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}"
    # DAG Params -> pipeline parameters with their defaults and types, plus output_root.
    params = root["inputDefinitions"]["parameters"]
    assert params["epochs"] == {
        "defaultValue": 20.0,
        "description": "Training epochs.",
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert params["min_accuracy"]["parameterType"] == "NUMBER_DOUBLE" and params["min_accuracy"]["defaultValue"] == 0.8
    assert params["output_root"]["defaultValue"] == ""
    # {{ params.x }} -> the pipeline parameter; XComArg -> the upstream output; caching off, run-scoped outputs.
    inputs = tasks["train"]["inputs"]["parameters"]
    assert inputs["epochs"] == {"componentInputParameter": "epochs"}
    assert inputs["images"] == {
        "taskOutputParameter": {"outputParameterKey": "merged", "producerTask": "dicom-to-images"}
    }
    assert inputs["claimed_run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    assert inputs["claimed_task_id"] == {"runtimeValue": {"constant": "train"}}
    assert tasks["train"]["cachingOptions"] == {}
    condition = tasks["blessing"]["inputs"]["parameters"]["condition"]["runtimeValue"]["constant"]
    assert condition.startswith("accuracy >= {{$.inputs.parameters['pipelinechannel--min_accuracy']}} and ")
    assert "robustness_min_accuracy >= {{$.inputs.parameters['pipelinechannel--min_robust_accuracy']}}" in condition
    # The blessing gate: deploy runs in a sub-pipeline under dsl.If on blessing's `blessed` output.
    gated = tasks["blessing-blessed"]
    assert gated["inputs"]["parameters"]["blessing__blessed"] == {
        "taskOutputParameter": {"outputParameterKey": "blessed", "producerTask": "blessing"}
    }
    assert {"blessing", "train"} <= set(gated["dependentTasks"])
    sub = spec["components"][gated["componentRef"]["name"]]
    (condition_task,) = sub["dag"]["tasks"].values()
    assert condition_task["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--blessing__blessed'] == true"
    )
    inner = spec["components"][condition_task["componentRef"]["name"]]["dag"]["tasks"]
    assert "deploy" in inner
    # The reviewer's approval is a step after the gate, on the require_approval parameter; deploy waits for it.
    assert inner["approval"]["inputs"]["parameters"]["required"] == {
        "componentInputParameter": "pipelinechannel--require_approval"
    }
    assert "approval" in inner["deploy"]["dependentTasks"]
    approval = spec["deploymentSpec"]["executors"][
        spec["components"][inner["approval"]["componentRef"]["name"]]["executorLabel"]
    ]["container"]
    assert approval["image"] == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}"
    assert "run_step('claimed_airflow.kfp.approval:kubeflow_approval'" in approval["command"][-1]
    # Compile round trip: kfp's compiler accepts the loaded pipeline and gives the same IR.
    again = tmp_path / "again.yaml"
    compiler.Compiler().compile(loaded, str(again))
    assert _pipeline_dict(components.load_component_from_file(str(again))) == spec


def test_retries_and_skip_reach_the_pipeline(tmp_path):
    dag_file = tmp_path / "retry_dag.py"
    dag_file.write_text(
        "from datetime import datetime, timedelta\n"
        "from airflow.sdk import DAG, Param\n"
        "from airflow.providers.standard.operators.python import PythonOperator\n"
        "from claimed_airflow.operators import RowsFilterOperator\n"
        "with DAG('retry_dag', schedule=None, start_date=datetime(2026, 1, 1), params={'t': Param('x')}):\n"
        "    f = RowsFilterOperator(task_id='filter', table='{{ params.t }}', condition='a > 1', retries=3,\n"
        "                       retry_delay=timedelta(seconds=30), retry_exponential_backoff=True,\n"
        "                       max_retry_delay=timedelta(minutes=10))\n"
        "    f >> PythonOperator(task_id='notify', python_callable=print)\n"
    )
    path = tmp_path / "p.yaml"
    base = ["export-kfp", str(dag_file), "--dag-id", "retry_dag", "-o", str(path)]
    assert cli(base) == 2  # refused: notify is a PythonOperator
    assert cli([*base, "--skip", "notify", "--output-root", "s3://bucket/claimed"]) == 0
    spec = _pipeline_dict(components.load_component_from_file(str(path)))
    assert set(spec["root"]["dag"]["tasks"]) == {"filter"}
    assert spec["root"]["dag"]["tasks"]["filter"]["retryPolicy"] == {
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "600s",
        "maxRetryCount": 3,
    }
    assert spec["root"]["inputDefinitions"]["parameters"]["output_root"]["defaultValue"] == "s3://bucket/claimed"


def test_refusal_is_one_line_on_the_command_line(tmp_path, capsys):
    code = cli(["export-kfp", str(ROOT / "dags" / "dicom_to_deployment.py"), "--dag-id", "nope", "-o", "-"])
    assert code == 2
    assert "--dag-id: no DAG 'nope'" in capsys.readouterr().err
