"""claimed-airflow on the Airflow installed here (2.11, 3.0 or 3.3): the same tests in every environment.

``.ci/run`` runs this suite in ``.venv-af211`` (Airflow 2.11.2), ``.venv-af30`` (3.0.6, with the oldest
common.compat we accept) and the main ``.venv`` (3.3); ``CLAIMED_EXPECT_AIRFLOW`` there names the version
the environment must have, so a wrong install cannot pass as another version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import claimed_airflow
from claimed_airflow.core.storage import safe_name
from claimed_airflow.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS, AIRFLOW_VERSION
from tests.compat.conftest import run

ROOT = Path(__file__).resolve().parents[2]
OUR_LINKS = {"ArtifactsLink", "DeploymentLink"}


def test_the_environment_has_the_airflow_it_is_for():
    expected = os.environ.get("CLAIMED_EXPECT_AIRFLOW")
    if not expected:
        pytest.skip("CLAIMED_EXPECT_AIRFLOW not set (set by .ci/run)")
    assert AIRFLOW_VERSION == expected or AIRFLOW_VERSION.startswith(f"{expected}.")


def test_operators_and_dags_import_nothing_heavy():
    """Only what Airflow itself loads: no ML libraries, no Spark, no KubernetesPodOperator at parse time."""
    code = textwrap.dedent(
        """
        import runpy, sys
        from claimed_airflow.version_compat import DAG, BaseOperator, Param  # what Airflow itself costs
        before = set(sys.modules)
        import claimed_airflow.operators
        for dag in ("dags/dicom_to_deployment.py", "tests/compat/dags/user_dag.py"):
            runpy.run_path(dag)
        heavy = ("tensorflow", "keras", "torch", "aif360", "art", "lime", "sklearn", "pyspark", "kfp", "kubernetes",
                 "pandas", "numpy", "pydicom", "PIL", "matplotlib", "airflow.providers.cncf.kubernetes.operators.pod",
                 "airflow.providers.apache.spark.operators.spark_submit")
        print("HEAVY:" + ",".join(m for m in heavy if m in sys.modules and m not in before))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")] == ["HEAVY:"], done.stdout


def test_provider_info_is_valid_for_this_airflow():
    """The schema this Airflow ships; on 3.2+ also the connection-type rules of provider.yaml."""
    import importlib.resources

    import jsonschema

    files = importlib.resources.files("airflow")
    info = claimed_airflow.get_provider_info()
    jsonschema.validate(info, json.loads(files.joinpath("provider_info.schema.json").read_text()))
    yaml_schema = files.joinpath("provider.yaml.schema.json")
    if yaml_schema.is_file():
        schema = json.loads(yaml_schema.read_text())["properties"]["connection-types"]
        jsonschema.validate(info["connection-types"], schema)
    for conn in info["connection-types"]:
        assert "conn-fields" in conn and conn["ui-field-behaviour"], conn["connection-type"]
    behaviour_schema = json.loads(files.joinpath("customized_form_field_behaviours.schema.json").read_text())
    from claimed_airflow.hooks import ui_field_behaviour

    for conn in info["connection-types"]:
        jsonschema.validate(ui_field_behaviour(conn["connection-type"]), behaviour_schema)


def test_connection_forms():
    """Airflow 3.2+ reads the forms from the provider info, older ones from the hooks: same result."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.hooks["watson_ml"].hook_name == "IBM Watson Machine Learning"
    if not AIRFLOW_V_3_2_PLUS:  # before 3.2 the forms come from the hooks, built with Flask-AppBuilder and WTForms
        try:
            import flask_appbuilder  # noqa: F401
            import wtforms  # noqa: F401
        except ImportError:
            if not AIRFLOW_V_3_0_PLUS:  # 2.11 always has them
                raise
            pytest.skip(f"Airflow {AIRFLOW_VERSION} without Flask-AppBuilder builds no connection form of any provider")
    behaviours = manager.field_behaviours
    assert behaviours["copernicus"]["relabeling"]["password"] == "API key"
    assert behaviours["watson_ml"]["relabeling"]["host"] == "URL"
    assert "port" in behaviours["watson_ml"]["hidden_fields"]
    widgets = manager.connection_form_widgets
    assert {"extra__watson_ml__space_id", "extra__watson_ml__verify"} <= set(widgets)


def test_airflow_cli_lists_the_provider_its_hooks_and_links(airflow_home):
    def cli(*args) -> list:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "providers", *args, "-o", "json"],
            capture_output=True,
            text=True,
            env=os.environ,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout[done.stdout.index("[") :])

    providers = {p["package_name"]: p for p in cli("list")}
    assert providers["claimed-airflow"]["version"] == claimed_airflow.__version__
    hooks = {h["connection_type"]: h for h in cli("hooks")}
    assert hooks["watson_ml"]["class"] == "claimed_airflow.hooks.watson_ml.WatsonMachineLearningHook"
    assert hooks["copernicus"]["class"] == "claimed_airflow.hooks.copernicus.CopernicusHook"
    links = {link["extra_link_class_name"] for link in cli("links")}
    assert {f"claimed_airflow.operators.links.{name}" for name in OUR_LINKS} <= links


def test_model_asset_scheme_is_registered():
    from airflow.providers_manager import ProvidersManager

    from claimed_airflow.assets import model_asset, sanitize_uri

    manager = ProvidersManager()
    handlers = manager.asset_uri_handlers if AIRFLOW_V_3_0_PLUS else manager.dataset_uri_handlers
    assert handlers["claimed-model"] is sanitize_uri
    asset = model_asset("chest_v2")
    assert type(asset).__name__ == ("Asset" if AIRFLOW_V_3_0_PLUS else "Dataset")
    assert asset.uri.rstrip("/") == "claimed-model://chest_v2"
    with pytest.raises(ValueError, match="claimed-model://<model name>"):
        from urllib.parse import urlsplit

        sanitize_uri(urlsplit("claimed-model://chest_v2/extra/path"))


def test_a_feature_needing_a_newer_airflow_says_which_and_why():
    from claimed_airflow.version_compat import AirflowVersionError, require_airflow

    require_airflow("2.11", "anything")  # the oldest supported: passes everywhere
    expected = rf"^time travel needs Airflow 99\.0 or newer; this is Airflow {AIRFLOW_VERSION}$"
    with pytest.raises(AirflowVersionError, match=expected):
        require_airflow("99.0", "time travel")


def _links(dag, dag_run, task_id: str) -> dict[str, str]:
    """A finished task's extra links as the UI gets them: stored by the worker on 3.x, computed by the 2.x webserver."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.execute(
                select(XComModel.key, XComModel.value).where(
                    XComModel.dag_id == dag.dag_id,
                    XComModel.run_id == dag_run.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key.like("_link_%"),
                )
            ).all()
        return {key.removeprefix("_link_"): str(value).strip('"') for key, value in rows}
    from airflow.serialization.serialized_objects import SerializedDAG

    operator = SerializedDAG.from_dict(SerializedDAG.to_dict(dag)).get_task(task_id)  # what the webserver holds
    ti = dag_run.get_task_instance(task_id)
    return {type(link).__name__: operator.get_extra_links(ti, link.name) for link in operator.operator_extra_links}


def _model_events(uri: str, run_id: str) -> list[dict]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        key = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        key = Event.dataset_id
    with create_session() as session:
        events = session.scalars(select(Event).join(Model, Model.id == key).where(Model.uri == uri)).all()
        return [dict(e.extra) for e in events if e.source_run_id == run_id]


def test_user_dag_mixes_taskflow_python_and_claimed_operators(dag_of, tmp_path, output_root):
    from claimed_airflow.assets import model_asset

    dag = dag_of("user_dag.py", "compat_user_dag")
    state, tasks, dag_run = run(dag, {"workdir": str(tmp_path)})
    assert state == "success" and set(tasks.values()) == {"success"}, tasks
    run_dir = output_root / "compat_user_dag" / safe_name(dag_run.run_id)

    received = json.loads((tmp_path / "received.json").read_text())
    assert received["kept"] == str(run_dir / "kept" / "table.parquet")  # claimed output -> PythonOperator
    kept = pd.read_parquet(received["kept"])[["label", "prediction"]].values.tolist()
    assert kept == [["a", "a"], ["b", "b"], ["b", "b"]]
    assert received["accuracy"] == 0.75  # claimed output -> TaskFlow -> PythonOperator (3 of 4 right)
    assert received["manifest"] == str(run_dir / "metrics" / "manifest.json")  # templated xcom_pull
    assert received["threshold"] == "0.5"  # a Param through a template

    events = _model_events(model_asset("compat_user_model").uri, dag_run.run_id)
    assert len(events) == 1 and events[0]["model_version"] == 1, events
    assert events[0]["model_uri"] == str(tmp_path / "models" / "compat_user_model" / "1")

    assert _links(dag, dag_run, "metrics")["ArtifactsLink"] == f"file://{run_dir / 'metrics'}"
    deploy_links = _links(dag, dag_run, "deploy")
    assert deploy_links["DeploymentLink"] == f"file://{tmp_path / 'models' / 'compat_user_model' / '1'}"
    assert deploy_links["ArtifactsLink"] == f"file://{run_dir / 'deploy'}"


def test_unblessed_gate_skips_the_deployment(dag_of, tmp_path):
    dag = dag_of("user_dag.py", "compat_user_dag").partial_subset(
        ["deploy"], include_upstream=True, include_downstream=False
    )
    state, tasks, _ = run(dag, {"workdir": str(tmp_path), "condition": "accuracy > 0.9"})
    assert state == "success", tasks
    assert tasks["blessing"] == "success" and tasks["deploy"] == "skipped", tasks
    assert not (tmp_path / "models").exists()


def test_every_ready_dag_parses_or_names_the_airflow_it_needs(airflow_home):
    """A deployment copies dags/ whole: each file parses here, or its import error names the version it needs."""
    from claimed_airflow.version_compat import DagBag

    files = sorted((ROOT / "dags").glob("*.py"))
    assert len(files) >= 4
    for file in files:
        bag = DagBag(dag_folder=str(file))
        errors = list(bag.import_errors.values())
        assert bag.dags or errors, file.name
        for error in errors:
            assert "needs Airflow " in error and f"this is Airflow {AIRFLOW_VERSION}" in error, (file.name, error)


def test_flagship_parses_and_its_input_and_image_tasks_run(dag_of, output_root):
    flagship = dag_of("dicom_to_deployment.py", "dicom_to_deployment")
    assert {"dicom_input", "dicom_to_images", "train", "blessing", "deploy"} <= set(flagship.task_ids)
    dag = flagship.partial_subset(["dicom_to_images"], include_upstream=True, include_downstream=False)
    state, tasks, dag_run = run(dag, {"image_size": 32})
    assert state == "success" and set(tasks.values()) == {"success"}, tasks
    assert {"dicom_input", "dicom_to_images"} <= set(tasks), tasks
    run_dir = output_root / "dicom_to_deployment" / safe_name(dag_run.run_id)
    images = run_dir / "dicom_to_images" / "merged"  # the shards' merge
    index = pd.read_csv(images / "index.csv")
    cohort = pd.read_parquet(run_dir / "cohort" / "cohort.parquet")  # whatever sample the DAG bundles
    assert len(cohort) > 0 and set(index["SOPInstanceUID"]) == set(cohort["SOPInstanceUID"])
    assert all((images / name).is_file() for name in index["image"])


def test_kubernetes_engine_builds_its_pod(airflow_home):
    from claimed_airflow import __version__
    from claimed_airflow.core import registry
    from claimed_airflow.core.storage import Scope
    from claimed_airflow.operators import MobileNetV2TrainOperator
    from claimed_airflow.operators.engines import kubernetes

    scope = Scope(dag_id="k8s_dag", run_id="manual__2026-11-27T08:00:00+00:00", task_id="train")
    ti = SimpleNamespace(dag_id=scope.dag_id, task_id=scope.task_id, run_id=scope.run_id, map_index=-1, try_number=1)
    context = {"ti": ti, "run_id": scope.run_id, "dag": SimpleNamespace(), "params": {}}
    from claimed_airflow.version_compat import DAG

    # the engine options: the task's, and DAG-wide from default_args, option by option
    default_args = {"kubernetes": {"cpu": "3", "node_selector": {"pool": "gpu"}, "memory": "1Gi"}}
    with DAG("k8s_dag", schedule=None, start_date=datetime(2026, 1, 1), default_args=default_args):
        operator = MobileNetV2TrainOperator(
            task_id="train", images="s3://in/images", epochs=2, engine="kubernetes", kubernetes={"memory": "16Gi"}
        )
    task = operator.engine_task(registry.get(operator.component), "s3://out/root", scope)
    pod = kubernetes.pod_operator(task, context).build_pod_request_obj(context, dry_run=True)
    container = pod.spec.containers[0]
    assert container.image == f"ghcr.io/claimed-framework/claimed-airflow:{__version__}-gpu"
    assert container.command == ["claimed-airflow"]
    assert container.args[:4] == ["run", "train.mobilenet_v2", "--images=s3://in/images", "--epochs=2"]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.resources.requests == {"cpu": "3", "memory": "16Gi"}
    assert pod.spec.node_selector == {"pool": "gpu"}
    assert pod.spec.security_context.run_as_non_root is True


def test_approval_needs_airflow_3_1_and_says_so_at_task_start():
    from claimed_airflow.operators.approval import ModelApprovalOperator
    from claimed_airflow.version_compat import AIRFLOW_V_3_1_PLUS, AirflowFailException

    if AIRFLOW_V_3_1_PLUS:
        from airflow.providers.standard.operators.hitl import ApprovalOperator

        assert issubclass(ModelApprovalOperator, ApprovalOperator)
        return
    assert ModelApprovalOperator(task_id="optional", required=False).execute({})["required"] is False
    expected = rf"needs Airflow 3\.1\.0 or newer .*this is Airflow {AIRFLOW_VERSION}$"
    with pytest.raises(AirflowFailException, match=expected):
        ModelApprovalOperator(task_id="approval", required="true").execute({})


def test_pull_with_a_schedule_and_a_deferrable_sensor_starts_each_new_study_once(dag_of, tmp_path, monkeypatch):
    """dicom_inference_poll (any Airflow, no AssetWatcher): the sensor's trigger finds a new stable study in a real
    Orthanc, one dicom_inference run is started for it, the cursor lands in a Variable; announced again (the
    Variable lost), the study is skipped, not started twice."""
    from airflow.models import DagRun, Variable

    from claimed_airflow.pacs.listener import study_run_id
    from tests import orthanc
    from tests.arrival_studies import make_studies

    if not orthanc.available():
        pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})")
    ((uid, files),) = make_studies(tmp_path / "studies", 1).items()
    with orthanc.Orthanc(tmp_path / "orthanc", StableAge=1) as pacs:
        pacs.upload(*files)
        monkeypatch.setenv("AIRFLOW_CONN_PACS_POLL", pacs.connection())
        for name, value in (("CONN_ID", "pacs_poll"), ("INTERVAL", "0.5"), ("SINCE", "0")):
            monkeypatch.setenv(f"CLAIMED_WATCH_{name}", value)
        dag_of("dicom_inference.py", "dicom_inference")  # the DAG whose runs it starts, in the database
        dag = dag_of("dicom_inference_poll.py", "dicom_inference_poll")
        outcomes = []
        for _ in range(2):
            state, tasks, _ = run(dag, {})
            outcomes.append((state, tasks))
            cursor = Variable.get("claimed_study_feed__pacs_poll", deserialize_json=True)
            Variable.delete("claimed_study_feed__pacs_poll")  # lost: the next run announces the study again
    (first, first_tasks), (second, second_tasks) = outcomes
    assert first == second == "success", outcomes
    assert first_tasks["start_inference"] == "success" and second_tasks["start_inference"] == "skipped", outcomes
    assert second_tasks["save_cursor"] == "success" and cursor["orthanc_seq"] > 0
    runs = DagRun.find(dag_id="dicom_inference", run_id=study_run_id(uid))
    assert len(runs) == 1 and runs[0].conf["study_instance_uid"] == uid and runs[0].conf["source"] == "pacs_poll"
