"""The deployed model predicts what it learned: the saved model in inference mode, held-out evaluation, the gate.

Outcomes, not numerics: on an easily separable set both frameworks' saved models, loaded as
``predict.images`` loads them, score at least 0.95 at the component's default settings; the flagship
with its default Params learns a generated cohort of CR phantoms and evaluates on its held-out split
only; a model that answers one class whatever the image is refused by the flagship's default gate.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

ROOT = Path(__file__).resolve().parents[1]


def squares(folder: Path, count: int = 96, size: int = 40, held_out: bool = True) -> Path:
    """An image folder as ``transform.dicom_to_images`` writes it: noisy bright and dark squares, labelled, with a
    PatientSex column and (``held_out``) a ``split`` column holding out a quarter of each class."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        label = "bright" if i % 2 else "dark"
        pixels = np.clip(rng.normal(215 if label == "bright" else 40, 15, (size, size)), 0, 255).astype(np.uint8)
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / label / f"{i:03d}.png")
        row = {"image": f"{label}/{i:03d}.png", "label": label, "PatientSex": "MF"[i % 2]}
        if held_out:
            row["split"] = "test" if i % 8 < 2 else "train"  # a bright and a dark image of every eight
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    return folder


def assert_learned_the_easy_task(images: Path, trained: dict, root: Path) -> None:
    """What a model trained at the component's defaults on :func:`squares` must score (both frameworks)."""
    index = pd.read_csv(images / "index.csv")
    assert trained["train_images"] == (index["split"] == "train").sum()  # trained on the train split only
    assert trained["test_images"] == (index["split"] == "test").sum()
    assert trained["saved_train_accuracy"] >= 0.95 and trained["test_accuracy"] >= 0.95, trained
    assert trained["accuracy_gap"] == pytest.approx(trained["train_accuracy"] - trained["saved_train_accuracy"])
    # the numbers train reports are those of the saved model as predict.images loads it
    scored = run("predict.images", {"model": trained["model"], "images": str(images), "split": "test"}, root=str(root))
    table = pd.read_csv(scored["predictions"])
    assert len(table) == trained["test_images"] and set(table["split"]) == {"test"}
    assert (table["prediction"] == table["label"]).mean() == trained["test_accuracy"]


def test_saved_model_learns_an_easy_task_at_default_settings(tmp_path):
    """Keras; PyTorch's twin is in tests/test_torch_training.py, on the model its other tests use."""
    pytest.importorskip("keras")
    images = squares(tmp_path / "images")
    trained = run("train.mobilenet_v2", {"images": str(images), "framework": "keras"}, root=str(tmp_path / "t"))
    assert_learned_the_easy_task(images, trained, tmp_path)


def test_a_saved_model_below_its_training_accuracy_is_a_loud_warning(tmp_path, caplog):
    from claimed_airflow.components.train.image_classifier import load_gray_images
    from claimed_airflow.components.train.mobilenet_v2 import _score_saved_model
    from tests.tiny_model import make_onnx_model_folder

    pytest.importorskip("onnxruntime")
    images = squares(tmp_path / "images", count=16)
    model = make_onnx_model_folder(tmp_path / "model", size=32)
    labels = json.loads((model / "labels.json").read_text())
    (model / "labels.json").write_text(json.dumps({**labels, "classes": ["dark", "bright"]}))  # every answer wrong
    pixels, y, _, _ = load_gray_images(str(images), 32, ["dark", "bright"], split="train")
    with caplog.at_level(logging.WARNING, logger="claimed_airflow"):
        scores = _score_saved_model(model, str(images), pixels, y, True, 1.0)
    assert scores["saved_train_accuracy"] == 0.0 and scores["test_accuracy"] == 0.0 and scores["test_images"] == 4
    assert scores["accuracy_gap"] == 1.0
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "the SAVED model scores 0.000 on the training images" in warning.getMessage()
    caplog.clear()
    labels_right = {**labels, "classes": ["bright", "dark"]}
    (model / "labels.json").write_text(json.dumps(labels_right))
    pixels, y, _, _ = load_gray_images(str(images), 32, ["bright", "dark"], split="train")
    assert _score_saved_model(model, str(images), pixels, y, False, 1.0)["saved_train_accuracy"] == 1.0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_split_selects_the_images_and_names_what_is_missing(tmp_path):
    from claimed_airflow.components.train.image_classifier import load_gray_images

    images = squares(tmp_path / "images", count=8)
    _, y, _, index = load_gray_images(str(images), 32, split="test")
    assert len(y) == 2 and set(index["split"]) == {"test"}
    with pytest.raises(ClaimedError, match=r"^split: no labelled image in the 'validation' split of "):
        load_gray_images(str(images), 32, split="validation")
    plain = pd.read_csv(images / "index.csv").drop(columns="split")
    plain.to_csv(images / "index.csv", index=False)
    with pytest.raises(ClaimedError, match=r"^split: index.csv in .* has no split column"):
        load_gray_images(str(images), 32, split="test")


def _flagship_gate() -> str:
    """The flagship's blessing condition with its Params' defaults filled in, as Airflow renders it."""
    import importlib.util as loader

    spec = loader.spec_from_file_location("flagship_dag", ROOT / "dags" / "dicom_to_deployment.py")
    module = loader.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = module.dag.params.dump()
    return re.sub(r"\{\{\s*params\.(\w+)\s*\}\}", lambda m: repr(defaults[m.group(1)]), module.BLESSING)


def _constant_model(folder: Path) -> Path:
    """An ONNX classifier that answers ``bright`` whatever the image (its weights all zero)."""
    import onnx
    from onnx import numpy_helper

    from tests.tiny_model import make_onnx_model_folder

    make_onnx_model_folder(folder, size=32)
    graph = onnx.load(folder / "model.onnx")
    (weights,) = graph.graph.initializer
    weights.CopyFrom(numpy_helper.from_array(np.zeros((3, 2), np.float32), "weights"))
    onnx.save(graph, folder / "model.onnx")
    return folder


def test_the_default_gate_refuses_a_model_no_better_than_the_majority_class(tmp_path):
    """A model that calls every image one class (what Keras models with stale batch-norm statistics did) scores
    the majority-class rate: 0.9 on a test split of 18 bright and 2 dark images, above min_accuracy."""
    from tests.tiny_model import make_onnx_model_folder

    pytest.importorskip("onnxruntime")
    images = squares(tmp_path / "images", count=40)
    index = pd.read_csv(images / "index.csv")
    index["split"] = "train"
    bright, dark = index.index[index["label"] == "bright"], index.index[index["label"] == "dark"]
    index.loc[[*bright[:18], *dark[:2]], "split"] = "test"
    index.to_csv(images / "index.csv", index=False)
    condition = _flagship_gate()
    fairness, robustness = tmp_path / "fairness.json", tmp_path / "robustness.json"
    fairness.write_text(json.dumps({"biased": 0}))
    robustness.write_text(json.dumps({"min_accuracy": 1.0}))
    models = {
        "collapsed": _constant_model(tmp_path / "collapsed"),
        "working": make_onnx_model_folder(tmp_path / "w", 32),
    }
    for name, model in models.items():
        scored = run(
            "predict.images", {"model": str(model), "images": str(images), "split": "test"}, root=str(tmp_path)
        )
        metrics = run("metric.confusion_matrix", {"predictions": scored["predictions"]}, root=str(tmp_path))
        values = json.loads(Path(metrics["metrics"]).read_text())
        assert values["count"] == 20 and values["majority_class"] == "bright" and values["majority_accuracy"] == 0.9
        assert values["accuracy"] == {"collapsed": 0.9, "working": 1.0}[name]
        gate = {"metrics": metrics["metrics"], "fairness": str(fairness), "robustness": str(robustness)}
        blessed = run("deploy.condition_blessing", {**gate, "condition": condition}, root=str(tmp_path))["blessed"]
        assert blessed is (name == "working"), (name, values, condition)


@pytest.mark.e2e
@pytest.mark.timeout(2400)
def test_flagship_learns_a_generated_cohort_with_default_params(run_dag, output_root, tmp_path):
    """dicom_to_deployment with every default Param but the data: 400 CR phantoms of another seed than the
    bundled sample. It trains on the train split, evaluates on the test split and deploys a blessed model."""
    pytest.importorskip("keras")
    from claimed_airflow.core.storage import safe_name
    from tests.synthetic_chestxray import write_cohort

    write_cohort(tmp_path / "cohort", count=400, seed=1)
    conf = {"dicom_source": str(tmp_path / "cohort" / "dicom"), "labels": str(tmp_path / "cohort" / "labels.csv")}
    state, tasks, run_id = run_dag("dicom_to_deployment", conf)
    assert state == "success", tasks
    # deploy_target local (default): the model folder only, the KServe and Watson ML tasks are skipped
    assert {t: s for t, s in tasks.items() if s != "success"} == {"kserve": "skipped", "watson_ml": "skipped"}, tasks

    def manifest(task: str) -> dict:
        folder = output_root / "dicom_to_deployment" / safe_name(run_id) / task
        return json.loads((folder / "manifest.json").read_text())

    def output(task: str, name: str) -> Path:
        return Path(manifest(task)["outputs"][name]["uri"])

    index = pd.read_csv(output("dicom_to_images", "merged") / "index.csv")  # the shards' merge (one shard here)
    tested = index.loc[index["split"] == "test", "image"]
    assert len(index) == 400 and 50 <= len(tested) <= 110  # test_fraction 0.2 of 400, by a seeded hash
    train = manifest("train")
    assert train["parameters"] == {  # the DAG's defaults reach the component
        "epochs": 20,
        "batch_size": 16,
        "image_size": 64,
        "alpha": 0.35,
        "learning_rate": 0.001,
        "seed": 42,
        "framework": "keras",
        "mixed_precision": True,
        "holdout": True,
    }
    assert train["inputs"]["images"]["hash"].startswith("sha256:")
    values = train["values"]
    assert values["train_images"] == 400 - len(tested) and values["test_images"] == len(tested)
    assert values["saved_train_accuracy"] >= 0.9 and values["accuracy_gap"] <= 0.05, values
    metrics = json.loads(output("confusion_matrix", "metrics").read_text())
    assert metrics["count"] == len(tested) and metrics["accuracy"] >= 0.9, metrics
    assert metrics["accuracy"] == pytest.approx(values["test_accuracy"])  # the saved model on the same images
    assert metrics["accuracy"] - metrics["majority_accuracy"] >= 0.05
    predictions = pd.read_csv(output("predict", "predictions"))
    assert sorted(predictions["image"]) == sorted(tested)  # every evaluation on the held-out images only
    robustness = json.loads(output("robustness", "metrics").read_text())
    assert 0 < robustness["samples"] <= len(tested)
    explained = json.loads((output("lime", "explanations") / "explanations.json").read_text())["explanations"]
    assert explained and {e["sample"] for e in explained} <= set(tested)
    assert manifest("blessing")["values"] == {"blessed": True}
    assert manifest("notify")["values"] == {"recipients": 0, "outcome": "blessed"}  # notify_to empty: nothing sent
    model = Path(manifest("deploy")["values"]["model_uri"])
    assert (model / "model.keras").exists() and (model / "labels.json").exists()
