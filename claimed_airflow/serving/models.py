"""The served model: a published model folder (``deploy.local``'s layout) loaded for prediction."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from claimed_airflow.components.train.image_classifier import ImageClassifier, network_file
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import DEFAULT_MAX_PIXELS
from claimed_airflow.serving import protocols
from claimed_airflow.serving.limits import DEFAULT_MAX_BATCH

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def resolve_model_folder(folder: str | Path) -> tuple[Path, str, str]:
    """(version folder, model name, version) of a published model folder.

    ``<models>/<name>/<version>`` serves that version; ``<models>/<name>`` serves its highest version;
    any other folder with ``model.keras`` or ``model.onnx`` is served as version ``1`` under the folder's name.
    """
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ClaimedError(f"model folder: {folder} is not a folder")
    if network_file(path) is None:
        versions = [p for p in path.iterdir() if p.name.isdigit() and network_file(p) is not None]
        if not versions:
            raise ClaimedError(
                f"model folder: no model.keras or model.onnx in {path} nor in a version folder below it "
                "(expected a model published by deploy.local)"
            )
        path = max(versions, key=lambda p: int(p.name))
    if not (path / "labels.json").exists():
        raise ClaimedError(f"model folder: labels.json missing in {path} (expected the output of train.mobilenet_v2)")
    if path.name.isdigit():
        return path, path.parent.name, path.name
    return path, path.name, "1"


class ServedModel:
    """An image classifier (Keras or ONNX) with its labels, answering both protocols (``serving.protocols``)."""

    def __init__(
        self,
        folder: str | Path,
        name: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.folder, default_name, self.version = resolve_model_folder(folder)
        self.name = name or default_name
        if not _NAME.match(self.name):
            raise ClaimedError(f"name: {self.name!r} is not a valid model name (letters, digits, _ . -)")
        self.network = ImageClassifier(self.folder)
        self.classes, self.image_size = self.network.classes, self.network.image_size
        self.platform: str = self.network.platform
        self.max_batch, self.max_pixels = max_batch, max_pixels
        self._lock = threading.Lock()
        self.predict(self.blank(1))  # build the predict function before the first request

    @property
    def input_shape(self) -> list[int]:
        return [-1, self.image_size, self.image_size, 3]

    def blank(self, n: int):
        import numpy as np

        return np.zeros((n, self.image_size, self.image_size, 3), dtype=np.float32)

    def predict(self, batch) -> Any:
        """Class probabilities ``(N, classes)`` of a float32 batch ``(N, S, S, 3)``, values in [-1, 1]."""
        import numpy as np

        with self._lock:
            return np.asarray(self.network.predict(batch), dtype=np.float32)

    # --- the protocols' documents for this model -----------------------------------------------------
    def answer(self, v2: bool, payload: bytes, content_type: str, header_length: str | None) -> dict:
        """The answer to an ``infer`` (``v2``) or ``:predict`` request body; RequestError for a bad one."""
        return protocols.answer(self, v2, payload, content_type, header_length)

    def metadata_v2(self) -> dict:
        return protocols.metadata_v2(self)

    def response_v2(self, probabilities, wanted=protocols.OUTPUTS, request_id=None) -> dict:
        return protocols.response_v2(self, probabilities, wanted, request_id)

    def response_v1(self, probabilities) -> dict:
        return protocols.response_v1(self, probabilities)
