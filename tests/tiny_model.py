"""A tiny Keras classifier published like deploy.local publishes a model (for serving/deploy tests).

Global average of the input -> Dense(2): bright images are ``bright``, dark ones ``dark``, so a test
can tell a right answer from a wrong one without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path

SIZE = 16
CLASSES = ["bright", "dark"]


def make_model_folder(folder: Path, size: int = SIZE) -> Path:
    import keras
    import numpy as np

    inputs = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(pooled)
    network = keras.Model(inputs, outputs)
    network.layers[-1].set_weights([np.array([[2.0, -2.0]] * 3, dtype="float32"), np.zeros(2, dtype="float32")])
    folder.mkdir(parents=True, exist_ok=True)
    network.save(folder / "model.keras")
    (folder / "labels.json").write_text(json.dumps({"classes": CLASSES, "image_size": size}))
    return folder


def make_onnx_model_folder(folder: Path, size: int = SIZE) -> Path:
    """The same classifier as an ONNX model (``model.onnx``), as ``train.mobilenet_v2`` framework=torch writes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[2.0, -2.0]] * 3, dtype=np.float32), "weights")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["pooled", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [weights],
    )
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    (folder / "labels.json").write_text(json.dumps({"classes": CLASSES, "image_size": size, "framework": "torch"}))
    return folder


def png_bytes(value: int, size: int = 40) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, format="PNG")
    return buffer.getvalue()
