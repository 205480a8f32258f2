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


def png_bytes(value: int, size: int = 40) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, format="PNG")
    return buffer.getvalue()
