"""train.mobilenet_v2 framework=torch: training, the ONNX/torch.export twins, and every consumer of the model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from tests.test_training_outcome import assert_learned_the_easy_task, squares

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
if importlib.util.find_spec("torchvision") is None:  # not imported here: see import_torch
    pytest.skip("torchvision is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The component's defaults (20 epochs, batch 16, 64 px) on the squares of the Keras outcome test."""
    root = tmp_path_factory.mktemp("torch")
    images = squares(root / "images")
    return images, root, run("train.mobilenet_v2", {"images": str(images), "framework": "torch"}, root=str(root))


def test_saved_model_learns_an_easy_task_at_default_settings(trained, tmp_path):
    images, _, result = trained
    assert_learned_the_easy_task(images, result, tmp_path)


def test_trains_on_the_cpu_and_writes_onnx_and_weights(trained):
    images, _, result = trained
    model = Path(result["model"])
    assert {p.name for p in model.iterdir()} >= {"model.onnx", "model.pt", "labels.json", "history.json"}
    info = json.loads((model / "labels.json").read_text())
    assert info == {"classes": ["bright", "dark"], "image_size": 64, "framework": "torch", "alpha": 0.35}
    history = json.loads((model / "history.json").read_text())
    assert len(history["loss"]) == len(history["images_per_second"]) == 20
    assert history["loss"][-1] < history["loss"][0]
    assert result["device"] == "cpu" and result["images_per_second"] > 0
    assert result["train_accuracy"] > 0.6  # measured while the weights move; the eval-mode check is below
    assert result["saved_train_accuracy"] >= 0.9  # the saved ONNX model in inference mode


def test_a_last_batch_of_one_image_is_left_out_and_one_image_per_batch_is_refused(tmp_path):
    """17 images in batches of 16: batch-norm cannot train on the lone 17th (torch raised ValueError)."""
    images = squares(tmp_path / "images", count=17, held_out=False)
    args = {"images": str(images), "framework": "torch", "epochs": 1, "image_size": 32}
    result = run("train.mobilenet_v2", args, root=str(tmp_path / "a"))
    assert result["train_images"] == 17 and "test_images" not in result  # no split column: all trained on
    with pytest.raises(ClaimedError, match=r"^torch training needs at least 2 images per batch: 17 training images"):
        run("train.mobilenet_v2", {**args, "batch_size": 1}, root=str(tmp_path / "b"))


def test_predictions_through_onnx_are_right(trained):
    images, root, result = trained
    predicted = run("predict.images", {"model": result["model"], "images": str(images)}, root=str(root / "p"))
    table = pd.read_csv(predicted["predictions"])
    assert len(table) == 96 and set(table.columns) >= {"p_bright", "p_dark", "PatientSex"}
    assert (table["prediction"] == table["label"]).mean() >= 0.9  # eval mode: batch-norm statistics recomputed
    assert np.allclose(table["p_bright"] + table["p_dark"], 1.0, atol=1e-5)


def test_the_onnx_export_runs_in_the_task_without_tensorflow(tmp_path, monkeypatch):
    from claimed_airflow.components.train import mobilenet_v2

    exported = []
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(mobilenet_v2, "export_onnx", exported.append)
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: pytest.fail("a fresh interpreter"))
    _, torchvision = mobilenet_v2.import_torch()
    mobilenet_v2.export_servable(torchvision.models.mobilenet_v2(num_classes=2, width_mult=0.35), tmp_path)
    assert exported == [tmp_path] and (tmp_path / "model.pt").is_file()

    def fails(folder):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(mobilenet_v2, "export_onnx", fails)
    with pytest.raises(ClaimedError, match="^model: the ONNX export failed: RuntimeError: unsupported operator$"):
        mobilenet_v2.export_servable(torchvision.models.mobilenet_v2(num_classes=2, width_mult=0.35), tmp_path)


def test_onnx_and_saved_weights_agree_with_the_network(tmp_path, monkeypatch):
    """Exported next to TensorFlow (a Keras task earlier in the process): in a fresh interpreter."""
    import subprocess
    import types

    import onnxruntime

    from claimed_airflow.components.train.mobilenet_v2 import export_servable, import_torch, load_torch_network

    fresh = []
    run_process = subprocess.run
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: fresh.append(args) or run_process(*args, **kwargs))
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", types.ModuleType("tensorflow")))

    _, torchvision = import_torch()

    torch.manual_seed(0)
    network = torchvision.models.mobilenet_v2(num_classes=3, width_mult=0.35).eval()
    x = torch.rand(5, 32, 32, 3) * 2 - 1
    with torch.no_grad():
        expected = torch.softmax(network(x.permute(0, 3, 1, 2)), dim=1).numpy()
    (tmp_path / "labels.json").write_text(json.dumps({"classes": ["a", "b", "c"], "image_size": 32, "alpha": 0.35}))
    export_servable(network, tmp_path)
    assert len(fresh) == 1
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"] and session.get_inputs()[0].shape[1:] == [32, 32, 3]
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max() < 1e-4
    program = load_torch_network(tmp_path)
    logits = program(x)
    assert np.abs(torch.softmax(logits, dim=1).detach().numpy() - expected).max() < 1e-4
    x.requires_grad_(True)
    program(x).sum().backward()  # differentiable, as ART's attacks need
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_both_frameworks_see_the_same_input():
    from claimed_airflow.components.train.mobilenet_v2 import _normalise
    from claimed_airflow.core.imaging import network_input

    pixels = np.random.default_rng(1).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    ours = _normalise(torch.from_numpy(pixels)).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(ours, network_input(pixels))


def test_served_lime_and_robustness_use_the_torch_model(trained, tmp_path):
    """Server, LIME and ART use the model predict.images scores: their answers are checked against its
    predictions (not against fixed classes, which depend on one build's numerics)."""
    from claimed_airflow.components.train.image_classifier import load_image_folder
    from claimed_airflow.serving import ServedModel

    images, _, result = trained
    predicted = run("predict.images", {"model": result["model"], "images": str(images)}, root=str(tmp_path / "p"))
    table = pd.read_csv(predicted["predictions"])
    assert (table["prediction"] == table["label"]).mean() >= 0.9  # the model learned (see the test above)
    served = ServedModel(result["model"])
    assert served.metadata_v2()["platform"] == "onnx"
    x, _, _, _ = load_image_folder(str(images), 64, ["bright", "dark"])
    answers = served.response_v2(served.predict(x[:8]))["outputs"][1]["data"]
    assert answers == table["prediction"][:8].tolist()  # the server answers as predict.images does
    attacked = run(
        "metric.robustness",
        {"model": result["model"], "data": str(images), "epsilons": [0.05, 0.5], "max_samples": 16, "pgd_steps": 3},
        root=str(tmp_path),
    )
    report = json.loads(Path(attacked["metrics"]).read_text())
    # the weights' twin (model.pt) predicts like the ONNX model on the same 16 images
    assert report["samples"] == 16
    assert report["clean_accuracy"] == (table["prediction"] == table["label"])[:16].mean()
    assert report["min_accuracy"] < report["clean_accuracy"]  # real gradients: eps 0.5 flips a learned model
    lime = run(
        "metric.lime",
        {"model": result["model"], "data": str(images), "num_explained": 1, "num_samples": 50},
        root=str(tmp_path / "lime"),
    )
    explained = json.loads((Path(lime["explanations"]) / "explanations.json").read_text())
    (first,) = explained["explanations"]
    assert first["sample"] == table["image"][0] and first["explained_class"] == table["prediction"][0], explained


def test_robustness_refuses_an_onnx_model_without_its_torch_twin(trained, tmp_path):
    import shutil

    images, _, result = trained
    copy = tmp_path / "model"
    shutil.copytree(result["model"], copy)
    (copy / "model.pt").unlink()
    with pytest.raises(ClaimedError, match="^model: ART needs loss gradients; an ONNX model has none and model.pt"):
        run("metric.robustness", {"model": str(copy), "data": str(images)}, root=str(tmp_path))


def test_model_folder_errors_name_the_problem(tmp_path, monkeypatch):
    from claimed_airflow.components.train.image_classifier import ImageClassifier
    from claimed_airflow.components.train.mobilenet_v2 import import_torch
    from tests.tiny_model import make_onnx_model_folder

    with pytest.raises(ClaimedError, match="^model: no model.keras or model.onnx in "):
        ImageClassifier(tmp_path)
    folder = make_onnx_model_folder(tmp_path / "m", size=16)
    assert ImageClassifier(folder).predict(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 2)
    (folder / "labels.json").write_text(json.dumps({"classes": ["a", "b"], "image_size": 32}))
    with pytest.raises(ClaimedError, match=r"^model: the network takes \(16, 16, 3\), labels.json says 32 pixels"):
        ImageClassifier(folder)
    (folder / "labels.json").write_text("{not json")
    with pytest.raises(ClaimedError, match="^model: labels.json in .* is not valid"):
        ImageClassifier(folder)
    (folder / "labels.json").unlink()
    with pytest.raises(ClaimedError, match="^model: labels.json missing in "):
        ImageClassifier(folder)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if the torch extra were not installed
    with pytest.raises(ClaimedError, match="^framework: 'torch' needs PyTorch and torchvision"):
        import_torch()
