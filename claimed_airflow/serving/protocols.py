"""The two inference protocols: Open Inference Protocol (KServe V2) and KServe V1.

Each turns a request body into a network batch for a :class:`Model` and its class probabilities back
into the protocol's answer; a bad request raises ``RequestError`` (4xx) naming what is wrong.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Protocol

from claimed_airflow.core.imaging import gray, network_input
from claimed_airflow.serving.documents import (
    DIGITS,
    TEXT,
    RequestError,
    b64,
    binary_tensor,
    count_items,
    decode,
    numbers,
    schema,
    skeleton,
    small,
    strings,
)
from claimed_airflow.serving.payloads import dicom_file_pixels, image_file_pixels

FLOAT_TYPES = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
INT_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
IMAGE_TYPES = ("image/", "application/octet-stream")
DICOM_TYPES = ("application/dicom",)
OUTPUTS = ("probabilities", "label", "score")


class Model(Protocol):
    """What the protocols need of a served model (``ServedModel``)."""

    name: str
    version: str
    platform: str
    classes: list[str]
    image_size: int
    max_batch: int
    max_pixels: int

    def predict(self, batch: Any) -> Any: ...


def answer(model: Model, v2: bool, payload: bytes, content_type: str, header_length: str | None) -> dict:
    """The answer to an ``infer`` (``v2``) or ``:predict`` request body; RequestError for a bad one."""
    if header_length is not None:  # the binary tensor data extension of the V2 protocol
        if not v2:
            raise RequestError(400, "Inference-Header-Content-Length: binary data is only accepted by V2 infer")
        if not DIGITS.fullmatch(header_length) or int(header_length) > len(payload):
            raise RequestError(400, f"Inference-Header-Content-Length: {header_length!r} does not fit the body")
        request = decode(payload[: int(header_length)], schema().InferRequest, "request")
        return infer_v2(model, request, payload[int(header_length) :])
    if content_type.startswith(IMAGE_TYPES) or content_type in DICOM_TYPES:
        reader = dicom_file if content_type in DICOM_TYPES else image_file
        probabilities = model.predict(reader(model, payload)[None])
        return response_v2(model, probabilities) if v2 else response_v1(model, probabilities)
    if content_type != "application/json":
        raise RequestError(
            415, f"Content-Type: expected application/json, image/* or application/dicom, got {content_type}"
        )
    if v2:
        return infer_v2(model, decode(payload, schema().InferRequest, "request"))
    return predict_v1(model, decode(payload, schema().PredictRequest, "request"))


def image_file(model: Model, payload: bytes):
    """Network input ``(S, S, 3)`` of an image file."""
    return network_input(image_file_pixels(payload, model.image_size, model.max_pixels)[None])[0]


def dicom_file(model: Model, payload: bytes):
    """Network input ``(S, S, 3)`` of a DICOM file."""
    return network_input(dicom_file_pixels(payload, model.image_size, model.max_pixels)[None])[0]


def check_batch(model: Model, n: int) -> None:
    if n > model.max_batch:
        raise RequestError(413, f"batch: {n} items is more than the server's limit of {model.max_batch}")


# --- Open Inference Protocol (KServe V2) ------------------------------------------------------------
def metadata_v2(model: Model) -> dict:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": model.platform,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, model.image_size, model.image_size, 3]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(model.classes)]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "score", "datatype": "FP32", "shape": [-1]},
        ],
        "parameters": {"classes": model.classes, "image_size": model.image_size},
    }


def infer_v2(model: Model, request: Any, binary: bytes | None = None) -> dict:
    """Answer a V2 inference request (``schema().InferRequest``); ``binary``: the binary extension's bytes."""
    wanted = requested_outputs(request.outputs)
    batch = tensor_v2(model, request.inputs[0], binary)
    return response_v2(model, model.predict(batch), wanted, request.id)


def requested_outputs(outputs: Any) -> tuple[str, ...]:
    if not len(outputs):
        return OUTPUTS
    names = tuple(o.name for o in decode(small(outputs, "outputs"), list[schema().Output], "outputs"))
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"outputs: unknown output(s) {unknown}; known: {', '.join(OUTPUTS)}")
    return names


def response_v2(model: Model, probabilities, wanted=OUTPUTS, request_id=None) -> dict:
    best = probabilities.argmax(axis=1)
    n = len(best)
    tensors = {
        "probabilities": {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [n, len(model.classes)],
            "data": probabilities.ravel().tolist(),
        },
        "label": {"name": "label", "datatype": "BYTES", "shape": [n], "data": [model.classes[i] for i in best]},
        "score": {
            "name": "score",
            "datatype": "FP32",
            "shape": [n],
            "data": [float(probabilities[i, b]) for i, b in enumerate(best)],
        },
    }
    document = {"model_name": model.name, "model_version": model.version, "id": str(request_id or uuid.uuid4())}
    document["outputs"] = [tensors[name] for name in wanted]
    return document


def tensor_v2(model: Model, tensor: Any, binary: bytes | None = None):
    """A float32 network batch from one V2 input tensor (``schema().Tensor``); RequestError (400) for what
    does not fit.

    With the binary data extension, ``parameters.binary_data_size`` bytes of ``binary`` hold the
    tensor (little-endian values; BYTES items each prefixed by a 4-byte little-endian length).
    """
    import numpy as np

    if tensor.name != "input":
        raise RequestError(400, f"inputs[0].name: expected 'input', got {tensor.name!r}")
    shape = decode(small(tensor.shape, "input.shape"), list[int], "input.shape")
    if not shape or any(d < 0 for d in shape) or shape[0] == 0:
        raise RequestError(400, f"input.shape: expected a batch of at least one item, got {shape}")
    check_batch(model, shape[0])
    datatype, size, s = tensor.datatype, tensor.parameters.binary_data_size, model.image_size
    if datatype not in (*FLOAT_TYPES, *INT_TYPES, "BYTES"):
        known = ", ".join([*FLOAT_TYPES, "UINT8 (and other integer types)", "BYTES"])
        raise RequestError(400, f"input.datatype: expected one of {known}, got {datatype!r}")
    if size is None and not len(tensor.data):
        raise RequestError(400, "input.data: missing")
    if datatype == "BYTES":
        if len(shape) != 1:
            raise RequestError(400, f"input.shape: BYTES input is one image file per item, [N], got {shape}")
        if size is not None:
            items = binary_tensor(datatype, size, binary)
        else:
            items = decode(tensor.data, strings(shape[0]), "input.data")
            items = [items] if isinstance(items, str) else items
        if len(items) != shape[0]:
            raise RequestError(400, f"input.data: {len(items)} item(s) for shape {shape}")
        files = (item if isinstance(item, bytes) else b64(item, f"input.data[{i}]") for i, item in enumerate(items))
        return network_input(np.stack([image_file_pixels(f, s, model.max_pixels) for f in files]))
    pixels = datatype in INT_TYPES
    expected = f"[N, {s}, {s}] pixels (or 1 or 3 channels)" if pixels else f"[N, {s}, {s}, 3] (or 1 channel)"
    if shape not in ([shape[0], s, s, 3], [shape[0], s, s, 1], *([[shape[0], s, s]] if pixels else [])):
        raise RequestError(400, f"input.shape: expected {expected}, got {shape}")
    if size is not None:
        values = np.asarray(binary_tensor(datatype, size, binary))
        if values.size != math.prod(shape):
            raise RequestError(400, f"input.data: {values.size} value(s) do not fill shape {shape}")
        array = values.reshape(shape)
    else:
        array = numbers(tensor.data, [tuple(shape), (math.prod(shape),)], "input.data", pixels).reshape(shape)
    if pixels:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise RequestError(400, "input.data: pixel values must be within 0..255")
        return network_input(gray(array))
    with np.errstate(over="ignore"):  # values beyond the datatype's range become inf, refused below
        array = array.astype(FLOAT_TYPES[datatype], copy=False).astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise RequestError(400, "input.data: values must be finite numbers")
    return np.broadcast_to(array, (shape[0], s, s, 3)).astype(np.float32, copy=False)


# --- KServe V1 ----------------------------------------------------------------------------------------
def predict_v1(model: Model, request: Any) -> dict:
    """Answer a V1 request (``schema().PredictRequest``): instances of nested numbers or ``{"b64": ...}``."""
    import numpy as np

    s = model.image_size
    shapes = [(s, s, 3), (s, s, 1)]
    raw = bytes(request.instances)
    kinds = (b'{"":""}', *(skeleton(shape) for shape in shapes))  # an item's skeleton: {"b64": ...} or numbers
    count_items(raw.translate(None, TEXT), kinds, model.max_batch, "instances")
    rows = []
    for i, item in enumerate(decode(raw, list[schema().Raw], "instances")):
        where = f"instances[{i}]"
        if memoryview(item)[:1] == b"{":
            rows.append(image_file(model, b64(decode(item, schema().B64, where).b64, f"{where}.b64")))
            continue
        array = numbers(item, shapes, where)
        if not np.isfinite(array).all():
            raise RequestError(400, f"{where}: values must be finite numbers")
        rows.append(np.broadcast_to(array, (s, s, 3)))
    if not rows:
        return response_v1(model, np.zeros((0, len(model.classes))))
    return response_v1(model, model.predict(np.stack(rows).astype(np.float32)))


def response_v1(model: Model, probabilities) -> dict:
    predictions = []
    for row in probabilities:
        best = int(row.argmax())
        predictions.append(
            {
                "label": model.classes[best],
                "score": float(row[best]),
                "probabilities": {c: float(p) for c, p in zip(model.classes, row, strict=True)},
            }
        )
    return {"predictions": predictions}
