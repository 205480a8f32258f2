"""``claimed-airflow serve``: serve a published model over HTTP with the Open Inference Protocol.

The model folder is the one ``deploy.local`` publishes (``model.keras`` or ``model.onnx`` +
``labels.json`` written by ``train.mobilenet_v2``): either a version folder ``<models>/<name>/<version>``
or the model folder ``<models>/<name>`` (its highest version is served).

Endpoints (KServe V2 / Open Inference Protocol, and KServe V1):

- ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``
- ``GET /v2/models/<name>`` (metadata), ``GET /v2/models/<name>/ready``
- ``POST /v2/models/<name>/infer``: one input tensor ``input``; ``FP32`` ``[N, S, S, 3]`` values in
  [-1, 1] (the network's input), ``UINT8`` pixels ``[N, S, S]`` / ``[N, S, S, 1]`` / ``[N, S, S, 3]``,
  or ``BYTES`` ``[N]`` base64-encoded image files (PNG, JPEG, ...).
- ``GET /v1/models/<name>``, ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}`` (nested
  lists of the network's input or ``{"b64": "<image file>"}``).
- The V2 binary tensor data extension (``Inference-Header-Content-Length`` header, JSON header then
  the raw little-endian tensor bytes, ``parameters.binary_data_size``) for large FP32 batches.
- Both ``infer`` and ``:predict`` also take one raw image in the body (``Content-Type: image/png``,
  ``image/jpeg``) or a DICOM file (``application/dicom``).

Bad requests get a 4xx status with ``{"error": "<what is wrong>"}``; the server never answers with a
stack trace. HTTP is served by uvicorn (httptools) and Starlette (the ``serve`` extra); decoding and
prediction run in a bounded pool of threads. Limits: request bodies (counted while they arrive),
batch size, image and DICOM frame size (the ``max_pixels`` guard of ``transform.dicom_to_images``,
checked from the header before decoding), connections, idle time and the time to receive a request.
JSON is decoded into typed structures with fixed-length lists and tensors straight into numpy arrays,
so that a body costs the server a few times its size at most (see "JSON documents" below).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import functools
import io
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from claimed_airflow import __version__
from claimed_airflow.components.train.image_classifier import ImageClassifier, network_file
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.imaging import (
    DEFAULT_MAX_PIXELS,
    FrameTooLarge,
    UnreadableImage,
    check_frame_size,
    dicom_image,
    frame_size,
    gray,
    image_pixels,
    network_input,
)

log = logging.getLogger("claimed_airflow.serving")

MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BATCH = 256
DEFAULT_THREADS = 4  # threads that decode and predict; requests beyond wait (cheaply) for one
BODIES_PER_THREAD = 4  # request bodies held in memory at once: at most this x threads x MAX_BODY_BYTES
DEFAULT_MAX_CONNECTIONS = 256  # open connections + requests in progress; beyond, uvicorn answers 503
IDLE_TIMEOUT = 5.0  # seconds a connection may stay silent (before its first request and between requests)
REQUEST_TIMEOUT = 60.0  # seconds to receive one whole request (headers and body) once it has begun
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (httptools itself has no limit)
FLOAT_TYPES = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
INT_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
IMAGE_TYPES = ("image/", "application/octet-stream")
DICOM_TYPES = ("application/dicom",)
OUTPUTS = ("probabilities", "label", "score")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DIGITS = re.compile(r"[0-9]{1,15}")


class RequestError(Exception):
    """A request the client can fix; answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
    """An image classifier (Keras or ONNX) with its labels; turns protocol payloads into batches and back."""

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

    # --- protocol documents -------------------------------------------------------------------
    def metadata_v2(self) -> dict:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.network.platform,
            "inputs": [{"name": "input", "datatype": "FP32", "shape": self.input_shape}],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.classes)]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "score", "datatype": "FP32", "shape": [-1]},
            ],
            "parameters": {"classes": self.classes, "image_size": self.image_size},
        }

    def answer(self, v2: bool, payload: bytes, content_type: str, header_length: str | None) -> dict:
        """The answer to an ``infer`` (``v2``) or ``:predict`` request body; RequestError for a bad one."""
        if header_length is not None:  # the binary tensor data extension of the V2 protocol
            if not v2:
                raise RequestError(400, "Inference-Header-Content-Length: binary data is only accepted by V2 infer")
            if not _DIGITS.fullmatch(header_length) or int(header_length) > len(payload):
                raise RequestError(400, f"Inference-Header-Content-Length: {header_length!r} does not fit the body")
            request = _decode(payload[: int(header_length)], _schema().InferRequest, "request")
            return self.infer_v2(request, payload[int(header_length) :])
        if content_type.startswith(IMAGE_TYPES) or content_type in DICOM_TYPES:
            reader = self.dicom_file if content_type in DICOM_TYPES else self.image_file
            probabilities = self.predict(reader(payload)[None])
            return self.response_v2(probabilities) if v2 else self.response_v1(probabilities)
        if content_type != "application/json":
            raise RequestError(
                415, f"Content-Type: expected application/json, image/* or application/dicom, got {content_type}"
            )
        if v2:
            return self.infer_v2(_decode(payload, _schema().InferRequest, "request"))
        return self.predict_v1(_decode(payload, _schema().PredictRequest, "request"))

    def infer_v2(self, request: Any, binary: bytes | None = None) -> dict:
        """Answer a V2 inference request (``_schema().InferRequest``); ``binary``: the binary extension's bytes."""
        wanted = _requested_outputs(request.outputs)
        batch = self.tensor_v2(request.inputs[0], binary)
        return self.response_v2(self.predict(batch), wanted, request.id)

    def response_v2(self, probabilities, wanted=OUTPUTS, request_id=None) -> dict:
        best = probabilities.argmax(axis=1)
        n = len(best)
        tensors = {
            "probabilities": {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [n, len(self.classes)],
                "data": probabilities.ravel().tolist(),
            },
            "label": {"name": "label", "datatype": "BYTES", "shape": [n], "data": [self.classes[i] for i in best]},
            "score": {
                "name": "score",
                "datatype": "FP32",
                "shape": [n],
                "data": [float(probabilities[i, b]) for i, b in enumerate(best)],
            },
        }
        answer = {"model_name": self.name, "model_version": self.version, "id": str(request_id or uuid.uuid4())}
        answer["outputs"] = [tensors[name] for name in wanted]
        return answer

    def tensor_v2(self, tensor: Any, binary: bytes | None = None):
        """A float32 network batch from one V2 input tensor (``_schema().Tensor``); RequestError (400) for what
        does not fit.

        With the binary data extension, ``parameters.binary_data_size`` bytes of ``binary`` hold the
        tensor (little-endian values; BYTES items each prefixed by a 4-byte little-endian length).
        """
        import numpy as np

        if tensor.name != "input":
            raise RequestError(400, f"inputs[0].name: expected 'input', got {tensor.name!r}")
        shape = _decode(_small(tensor.shape, "input.shape"), list[int], "input.shape")
        if not shape or any(d < 0 for d in shape) or shape[0] == 0:
            raise RequestError(400, f"input.shape: expected a batch of at least one item, got {shape}")
        self._check_batch(shape[0])
        datatype, size, s = tensor.datatype, tensor.parameters.binary_data_size, self.image_size
        if datatype not in (*FLOAT_TYPES, *INT_TYPES, "BYTES"):
            known = ", ".join([*FLOAT_TYPES, "UINT8 (and other integer types)", "BYTES"])
            raise RequestError(400, f"input.datatype: expected one of {known}, got {datatype!r}")
        if size is None and not len(tensor.data):
            raise RequestError(400, "input.data: missing")
        if datatype == "BYTES":
            if len(shape) != 1:
                raise RequestError(400, f"input.shape: BYTES input is one image file per item, [N], got {shape}")
            if size is not None:
                items = _binary_tensor(datatype, size, binary)
            else:
                items = _decode(tensor.data, _strings(shape[0]), "input.data")
                items = [items] if isinstance(items, str) else items
            if len(items) != shape[0]:
                raise RequestError(400, f"input.data: {len(items)} item(s) for shape {shape}")
            files = (
                item if isinstance(item, bytes) else _b64(item, f"input.data[{i}]") for i, item in enumerate(items)
            )
            return network_input(np.stack([image_file_pixels(f, s, self.max_pixels) for f in files]))
        pixels = datatype in INT_TYPES
        expected = f"[N, {s}, {s}] pixels (or 1 or 3 channels)" if pixels else f"[N, {s}, {s}, 3] (or 1 channel)"
        if shape not in ([shape[0], s, s, 3], [shape[0], s, s, 1], *([[shape[0], s, s]] if pixels else [])):
            raise RequestError(400, f"input.shape: expected {expected}, got {shape}")
        if size is not None:
            values = np.asarray(_binary_tensor(datatype, size, binary))
            if values.size != math.prod(shape):
                raise RequestError(400, f"input.data: {values.size} value(s) do not fill shape {shape}")
            array = values.reshape(shape)
        else:
            array = _numbers(tensor.data, [tuple(shape), (math.prod(shape),)], "input.data", pixels).reshape(shape)
        if pixels:
            if array.size and (array.min() < 0 or array.max() > 255):
                raise RequestError(400, "input.data: pixel values must be within 0..255")
            return network_input(gray(array))
        with np.errstate(over="ignore"):  # values beyond the datatype's range become inf, refused below
            array = array.astype(FLOAT_TYPES[datatype], copy=False).astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise RequestError(400, "input.data: values must be finite numbers")
        return np.broadcast_to(array, (shape[0], s, s, 3)).astype(np.float32, copy=False)

    def predict_v1(self, request: Any) -> dict:
        """Answer a V1 request (``_schema().PredictRequest``): instances of nested numbers or ``{"b64": ...}``."""
        import numpy as np

        s = self.image_size
        shapes = [(s, s, 3), (s, s, 1)]
        raw = bytes(request.instances)
        kinds = (b'{"":""}', *(_skeleton(shape) for shape in shapes))  # an item's skeleton: {"b64": ...} or numbers
        _count_items(raw.translate(None, _TEXT), kinds, self.max_batch, "instances")
        rows = []
        for i, item in enumerate(_decode(raw, list[_schema().Raw], "instances")):
            where = f"instances[{i}]"
            if memoryview(item)[:1] == b"{":
                rows.append(self.image_file(_b64(_decode(item, _schema().B64, where).b64, f"{where}.b64")))
                continue
            array = _numbers(item, shapes, where)
            if not np.isfinite(array).all():
                raise RequestError(400, f"{where}: values must be finite numbers")
            rows.append(np.broadcast_to(array, (s, s, 3)))
        batch = np.stack(rows).astype(np.float32) if rows else self.blank(0)
        return self.response_v1(self.predict(batch) if len(batch) else np.zeros((0, len(self.classes))))

    def response_v1(self, probabilities) -> dict:
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(
                {
                    "label": self.classes[best],
                    "score": float(row[best]),
                    "probabilities": {c: float(p) for c, p in zip(self.classes, row, strict=True)},
                }
            )
        return {"predictions": predictions}

    # --- images: core.imaging's rules, as train.mobilenet_v2 and predict.images read the images ----
    def image_file(self, payload: bytes):
        """Network input ``(S, S, 3)`` of an image file."""
        return network_input(image_file_pixels(payload, self.image_size, self.max_pixels)[None])[0]

    def dicom_file(self, payload: bytes):
        """Network input ``(S, S, 3)`` of a DICOM file."""
        return network_input(dicom_file_pixels(payload, self.image_size, self.max_pixels)[None])[0]

    def _check_batch(self, n: int) -> None:
        if n > self.max_batch:
            raise RequestError(413, f"batch: {n} items is more than the server's limit of {self.max_batch}")


def image_file_pixels(payload: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS):
    """8-bit grey pixels ``(S, S)`` of an image file (PNG, JPEG, ...): ``core.imaging.image_pixels``.

    RequestError 400 if unreadable, 413 if larger than ``max_pixels`` (checked from the header, before decoding).
    """
    try:
        return image_pixels(payload, size, max_pixels)
    except FrameTooLarge as exc:
        raise RequestError(413, f"image: {exc}") from None
    except UnreadableImage as exc:
        raise RequestError(400, f"image: {exc}") from None


def read_dicom(payload: bytes, max_bytes: int = MAX_BODY_BYTES):
    """A pydicom dataset from a DICOM file's bytes; a deflated data set may inflate to ``max_bytes`` at most."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    stream = io.BytesIO(payload)
    read_preamble(stream, False)
    meta = read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return pydicom.dcmread(io.BytesIO(payload))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # pydicom would inflate it whole, unbounded
    data = inflater.decompress(payload[stream.tell() :], max_bytes + 1)
    if len(data) > max_bytes:
        raise RequestError(413, f"dicom: the deflated data set inflates to more than {max_bytes} bytes")
    dataset = read_dataset(DicomBytesIO(data), False, True)
    dataset.file_meta = FileMetaDataset(meta)
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return dataset


def dicom_file_pixels(payload: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS):
    """8-bit grey pixels ``(S, S)`` of a DICOM file's first frame, as ``transform.dicom_to_images`` writes them
    with its defaults (``core.imaging.dicom_image``).

    Its frame size is checked against ``max_pixels`` from the header, before the pixel data is decoded.
    """
    import numpy as np

    try:
        dataset = read_dicom(payload)
        check_frame_size(*frame_size(dataset), max_pixels)
        return np.asarray(dicom_image(dataset, size))
    except RequestError:
        raise
    except FrameTooLarge as exc:
        raise RequestError(413, f"dicom: {exc}") from None
    except Exception as exc:  # pydicom and its decoders raise many types for a bad file
        raise RequestError(400, f"dicom: not a readable DICOM image ({exc.__class__.__name__}: {exc})") from None


BINARY_TYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
}


def _binary_tensor(datatype: Any, size: Any, binary: bytes | None):
    """Values (array) or items (list of bytes) of a tensor sent with the binary data extension."""
    import numpy as np

    where = "input.parameters.binary_data_size"
    if binary is None:
        raise RequestError(400, f"{where}: given, but the request has no Inference-Header-Content-Length header")
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise RequestError(400, f"{where}: {size!r} does not match the {len(binary)} bytes after the JSON header")
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(binary):
            if offset + 4 > len(binary):
                raise RequestError(400, "input: truncated BYTES item length")
            length = int.from_bytes(binary[offset : offset + 4], "little")
            items.append(binary[offset + 4 : offset + 4 + length])
            offset += 4 + length
        return items
    if datatype not in BINARY_TYPES:
        raise RequestError(
            400, f"input.datatype: expected one of {', '.join([*BINARY_TYPES, 'BYTES'])}, got {datatype!r}"
        )
    dtype = np.dtype(BINARY_TYPES[datatype])
    if len(binary) % dtype.itemsize:
        raise RequestError(400, f"{where}: {len(binary)} bytes is not a whole number of {datatype} values")
    return np.frombuffer(binary, dtype=dtype)


# --- JSON documents: memory a few times the body's size, whatever the body ---------------------------
# Decoded as is, a JSON value becomes a Python object of 16 to 60 bytes for as little as 2 bytes of JSON
# (a body of ``[[],[],...]`` took 36 times its size). Requests are decoded into msgspec structures whose
# arrays are fixed-length tuples (refused at their first extra item) or are kept raw (``msgspec.Raw``: a
# view of the body) until their size is known; tensors are checked against their shape from their
# brackets and commas alone, then decoded a chunk at a time straight into numpy arrays.
_NUMBER_TEXT = b"0123456789+-.eE \t\r\n"  # what JSON numbers and blanks are made of
_TEXT = _NUMBER_TEXT + b"ABCDFGHIJKLMNOPQRSTUVWXYZabcdfghijklmnopqrstuvwxyz/=_"  # ... and base64 strings
_CHUNK = 2**20  # bytes of numbers decoded at a time
_SMALL = 1024  # bytes of JSON a shape or the outputs may take


@functools.cache
def _schema() -> Any:
    """The request documents as msgspec structures (made on first use: msgspec is in the ``serve`` extra)."""
    from types import SimpleNamespace
    from typing import Annotated

    import msgspec

    # defstruct: real types, as this module's annotations are strings (from __future__ import annotations)
    struct = msgspec.defstruct
    output = struct("Output", [("name", str)])
    parameters = struct("TensorParameters", [("binary_data_size", int | None, None)])
    tensor = struct(
        "Tensor",
        [
            ("name", str),
            ("datatype", str),
            ("shape", msgspec.Raw),
            ("data", msgspec.Raw, msgspec.Raw()),
            ("parameters", parameters, msgspec.field(default_factory=parameters)),
        ],
    )
    request_id = Annotated[str, msgspec.Meta(max_length=256)] | None
    infer = struct(
        "InferRequest",
        [("inputs", tuple[tensor]), ("outputs", msgspec.Raw, msgspec.Raw()), ("id", request_id, None)],
    )
    predict = struct("PredictRequest", [("instances", msgspec.Raw)])
    b64 = struct("B64", [("b64", str)], forbid_unknown_fields=True)
    return SimpleNamespace(
        Raw=msgspec.Raw,
        Output=output,
        Tensor=tensor,
        InferRequest=infer,
        PredictRequest=predict,
        B64=b64,
        floats=msgspec.json.Decoder(list[float]),
        integers=msgspec.json.Decoder(list[int]),
    )


@functools.lru_cache(maxsize=64)
def _strings(n: int) -> Any:
    """The type of a BYTES tensor's JSON data of ``n`` items: one string, or exactly ``n`` (refused at the n+1st)."""
    return str | tuple[(str,) * n]  # type: ignore[misc]


def _decode(document: Any, kind: Any, where: str) -> Any:
    """``document`` (JSON) decoded as ``kind``; RequestError 400 naming where it does not fit."""
    import msgspec

    try:
        return msgspec.json.decode(document, type=kind)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        message = message[:1].lower() + message[1:].replace("`", "")
        raise RequestError(400, f"{where}{path.rstrip('`')}: {message}") from None
    except msgspec.DecodeError as exc:
        raise RequestError(400, f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise RequestError(400, f"{where}: JSON nested too deeply") from None


def _small(raw: Any, where: str) -> Any:
    if len(raw) > _SMALL:
        raise RequestError(400, f"{where}: more than {_SMALL} bytes of JSON")
    return raw


def _requested_outputs(outputs: Any) -> tuple[str, ...]:
    if not len(outputs):
        return OUTPUTS
    names = tuple(o.name for o in _decode(_small(outputs, "outputs"), list[_schema().Output], "outputs"))
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"outputs: unknown output(s) {unknown}; known: {', '.join(OUTPUTS)}")
    return names


def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of numbers nested as ``shape``: ``(2, 3)`` -> ``[[,,],[,,]]``."""
    bones = b""
    for size in reversed(shape):
        bones = b"[" + (bones + b",") * (size - 1) + bones + b"]" if size else b"[]"
    return bones


def _skeleton_length(shape: tuple[int, ...]) -> int:
    length = 0
    for size in reversed(shape):
        length = 2 + max(size - 1, 0) + size * length
    return length


def _count_items(bones: bytes, kinds: tuple[bytes, ...], limit: int, where: str) -> int:
    """The number of items of a JSON array from its skeleton, each item's one of ``kinds``; 413 beyond ``limit``."""
    if not bones.startswith(b"[") or bones == b"[]":
        if bones == b"[]":
            return 0
        raise RequestError(400, f"{where}: expected a list")
    position, count = 1, 0
    while True:
        kind = next((k for k in kinds if bones.startswith(k, position)), None)
        if kind is None:
            raise RequestError(400, f"{where}[{count}]: expected {{'b64': <base64 image file>}} or nested numbers")
        count += 1
        if count > limit:
            raise RequestError(413, f"batch: more than the server's limit of {limit} items")
        position += len(kind)
        if bones[position:] == b"]":
            return count
        if bones[position : position + 1] != b",":
            raise RequestError(400, f"{where}: expected a list of items separated by commas")
        position += 1


def _numbers(raw: Any, shapes: list[tuple[int, ...]], where: str, pixels: bool = False):
    """The numbers of a JSON array nested as one of ``shapes`` as an array of that shape: float32, or uint8
    ``pixels`` (refused outside 0..255). Memory: at most about three times the JSON, never an object per number."""
    import msgspec
    import numpy as np

    text = bytes(raw).strip()
    if text[:1] == b"[" and text[-1:] == b"]" and text.find(b"[", 1) < 0:  # flat: counted while decoded
        flat, start, stop = text, 1, len(text) - 1
        shape = next((s for s in shapes if len(s) == 1), None)
    else:  # nested: its brackets and commas, without the numbers, must be the shape's
        bones = text.translate(None, _NUMBER_TEXT)
        shape = next((s for s in shapes if len(bones) == _skeleton_length(s) and bones == _skeleton(s)), None)
        if shape is None and bones.translate(None, b"[],"):
            raise RequestError(400, f"{where}: expected numbers")
        del bones
        flat, start = text.translate(None, b"[]"), 0
        stop = len(flat)
    del text
    count = math.prod(shape or (0,))
    if shape is None or count > (stop - start + 1) // 2:  # n numbers take 2n - 1 bytes at least
        raise RequestError(400, f"{where}: the values do not fill shape {list(shapes[0])} (nested or flat)")
    out = np.empty(count, np.uint8 if pixels else np.float32)
    decoder = _schema().integers if pixels else _schema().floats
    filled = 0
    while start < stop:
        end = flat.find(b",", start + _CHUNK, stop)
        end = stop if end < 0 else end
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused by the caller
                values = np.asarray(decoder.decode(b"[" + flat[start:end] + b"]"), None if pixels else out.dtype)
        except (msgspec.DecodeError, OverflowError):  # a chunk holds whole numbers: the error is in them
            raise RequestError(400, f"{where}: expected {'integers' if pixels else 'numbers'}") from None
        if filled + len(values) > count:
            raise RequestError(400, f"{where}: the values do not fill shape {list(shapes[0])} (nested or flat)")
        if pixels and values.size and (values.min() < 0 or values.max() > 255):
            raise RequestError(400, f"{where}: pixel values must be within 0..255")
        out[filled : filled + len(values)] = values
        filled, start = filled + len(values), end + 1
    if filled != count:
        raise RequestError(400, f"{where}: the values do not fill shape {list(shapes[0])} (nested or flat)")
    return out.reshape(shape)


def _b64(item: Any, where: str) -> bytes:
    if isinstance(item, dict) and set(item) == {"b64"}:
        item = item["b64"]
    if not isinstance(item, str):
        raise RequestError(400, f"{where}: expected a base64-encoded image file")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: not valid base64") from None


# --- HTTP -------------------------------------------------------------------------------------
def make_app(model: ServedModel, threads: int = DEFAULT_THREADS):
    """The Starlette (ASGI) application answering for ``model``; decoding and prediction use ``threads`` threads.

    At most ``BODIES_PER_THREAD * threads`` requests are read or answered at once; the others wait, unread.
    """
    import anyio
    import msgspec
    from starlette.applications import Starlette
    from starlette.convertors import StringConvertor, register_url_convertor
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    class ModelName(StringConvertor):
        regex = "[^/:]+"  # so that /v1/models/<name>:predict is not read as the model <name>:predict

    register_url_convertor("claimed_model", ModelName())
    limiter = anyio.CapacityLimiter(threads)
    held = anyio.Semaphore(BODIES_PER_THREAD * threads)  # request bodies in memory, from their first byte

    def reply(status: int, document: dict, headers: dict | None = None) -> Response:
        return Response(msgspec.json.encode(document), status, headers, media_type="application/json")

    def check_model(request: Request) -> None:
        name, version = request.path_params["name"], request.path_params.get("version")
        if name != model.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {model.name!r}")
        if version is not None and version != model.version:
            raise RequestError(404, f"model {name!r} has no version {version!r}; served: {model.version}")

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) as soon as more than MAX_BODY_BYTES have arrived, whatever the headers say."""
        declared = request.headers.get("content-length")
        if declared is None and "transfer-encoding" not in request.headers:
            raise RequestError(411, "Content-Length: required")
        if declared is not None and _DIGITS.fullmatch(declared) and int(declared) > MAX_BODY_BYTES:
            raise RequestError(413, f"request body: {declared} bytes is more than the limit of {MAX_BODY_BYTES}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RequestError(413, f"request body: more than the limit of {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(request: Request) -> Response:
        check_model(request)
        content_type = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        header_length = request.headers.get("inference-header-content-length")
        v2 = request.url.path.startswith("/v2/")
        async with held:  # beyond, a request waits with its body unread (in the socket, not in memory)
            payload = await read_body(request)
            document = await anyio.to_thread.run_sync(
                model.answer, v2, payload, content_type, header_length, limiter=limiter
            )
        return reply(200, document)

    async def metadata(request: Request) -> Response:
        check_model(request)
        return reply(200, model.metadata_v2())

    async def ready(request: Request) -> Response:
        check_model(request)
        return reply(200, {"name": model.name, "ready": True})

    async def health(request: Request) -> Response:
        state = request.url.path.rsplit("/", 1)[-1]
        return reply(200, {state: True})

    async def server_info(request: Request) -> Response:
        return reply(200, {"name": "claimed-airflow", "version": __version__, "extensions": []})

    async def request_error(request: Request, exc: RequestError) -> Response:
        # a refused body may still be arriving: close the connection rather than read it
        return reply(exc.status, {"error": exc.message}, {"Connection": "close"} if exc.status == 413 else None)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return reply(405, {"error": f"{path}: use {allowed}"}, {"Allow": allowed})
        if exc.status_code == 404:
            return reply(404, {"error": f"{path}: not found"})
        return reply(exc.status_code, {"error": f"{path}: {exc.detail}"})

    async def disconnected(request: Request, exc: ClientDisconnect) -> Response:
        return reply(400, {"error": "request: the client disconnected"})  # nobody reads it

    async def internal_error(request: Request, exc: Exception) -> Response:  # uvicorn logs the traceback
        return reply(500, {"error": "internal server error; see the server log"})

    model_paths = ("/v2/models/{name:claimed_model}", "/v2/models/{name:claimed_model}/versions/{version}")
    routes = [
        Route("/v2/health/live", health, methods=["GET"]),
        Route("/v2/health/ready", health, methods=["GET"]),
        Route("/v2", server_info, methods=["GET"]),
        *[Route(f"{base}/infer", predict, methods=["POST"]) for base in model_paths],
        *[Route(f"{base}/ready", ready, methods=["GET"]) for base in model_paths],
        *[Route(base, metadata, methods=["GET"]) for base in model_paths],
        Route("/v1/models/{name:claimed_model}:predict", predict, methods=["POST"]),
        Route("/v1/models/{name:claimed_model}", ready, methods=["GET"]),
    ]
    handlers = {RequestError: request_error, HTTPException: http_error, ClientDisconnect: disconnected}
    return Starlette(routes=routes, exception_handlers={**handlers, Exception: internal_error})


def _protocol(request_timeout: float):
    """uvicorn's HTTP/1.1 protocol (httptools) with the limits uvicorn lacks and JSON framing errors.

    uvicorn arms its keep-alive timeout only after a response: here it also runs from the moment a
    connection opens, each request must arrive whole (headers and body) within ``request_timeout``,
    and its request line and headers within MAX_HEADER_BYTES (431).
    """
    import asyncio

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    def raw_answer(status: str, message: str) -> bytes:
        body = json.dumps({"error": message}).encode()
        head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        return head.encode() + b"connection: close\r\n\r\n" + body

    class Protocol(HttpToolsProtocol):
        deadline: asyncio.TimerHandle | None = None
        header_bytes: int | None = None  # bytes received since the request began, until its headers end

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.header_bytes is not None:
                self.header_bytes += len(data)
                if self.header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                    message = f"request: request line and headers longer than {MAX_HEADER_BYTES} bytes"
                    self.transport.write(raw_answer("431 Request Header Fields Too Large", message))
                    self.transport.close()

        def on_headers_complete(self) -> None:
            self.header_bytes = None
            super().on_headers_complete()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.header_bytes = 0
            self.deadline = self.loop.call_later(request_timeout, self.request_timed_out)

        def on_message_complete(self) -> None:
            self.cancel_deadline()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self.cancel_deadline()
            super().connection_lost(exc)

        def cancel_deadline(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def request_timed_out(self) -> None:
            self.deadline = None
            if not self.transport.is_closing():
                if self.cycle is None or not self.cycle.response_started:
                    message = f"request: not received within {request_timeout:g} s"
                    self.transport.write(raw_answer("408 Request Timeout", message))
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            message = "request: not valid HTTP/1.1 (request line, headers, Content-Length or chunked framing)"
            self.transport.write(raw_answer("400 Bad Request", message))
            self.transport.close()

    return Protocol


def make_server(
    model: ServedModel,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threads: int = DEFAULT_THREADS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
    access_log: bool = False,
):
    """(uvicorn server, listening socket) for ``model``, not started; port 0 picks a free port."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=2048)
    config = uvicorn.Config(
        make_app(model, threads),
        http=_protocol(request_timeout),
        lifespan="off",
        log_config=None,
        access_log=access_log,
        server_header=False,
        headers=[("server", f"claimed-airflow/{__version__}")],
        limit_concurrency=max_connections,
        timeout_keep_alive=idle_timeout,  # type: ignore[arg-type] (a float works: loop.call_later)
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config), listener


@contextlib.contextmanager
def serving(model: ServedModel, host: str = "127.0.0.1", port: int = 0, **limits: Any) -> Iterator[str]:
    """Serve ``model`` in a background thread; yields the base URL and stops the server on exit.

    ``limits``: keyword arguments of :func:`make_server` (threads, max_connections, idle_timeout, request_timeout).
    """
    server, listener = make_server(model, host, port, **limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="claimed-serve", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            listener.close()
            raise ClaimedError(f"serve: the server on {host}:{listener.getsockname()[1]} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def register(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a published model over HTTP (KServe V2 / Open Inference Protocol and V1)",
        description=__doc__.split("\n\n", 1)[0],
    )
    serve.add_argument("model_folder", help="folder published by deploy.local: <models>/<name>[/<version>]")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--name", help="model name in URLs (default: the model folder's name)")
    serve.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="largest batch accepted")
    serve.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image or DICOM frame (rows x columns x samples) decoded (default {DEFAULT_MAX_PIXELS})",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=min(DEFAULT_THREADS, os.cpu_count() or 1),
        help="threads that decode and predict (default: 4, at most the CPU count)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open connections and requests in progress; beyond, 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help=f"seconds a silent connection stays open ({IDLE_TIMEOUT:g})",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        help=f"seconds to receive one request, headers and body ({REQUEST_TIMEOUT:g})",
    )
    serve.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for option in ("max_batch", "max_pixels", "threads", "max_connections"):
        if getattr(args, option) < 1:
            raise ClaimedError(f"--{option.replace('_', '-')}: must be at least 1, got {getattr(args, option)}")
    for option in ("idle_timeout", "request_timeout"):
        if not getattr(args, option) > 0:
            raise ClaimedError(
                f"--{option.replace('_', '-')}: must be more than 0 seconds, got {getattr(args, option)}"
            )
    model = ServedModel(args.model_folder, name=args.name, max_batch=args.max_batch, max_pixels=args.max_pixels)
    try:
        server, listener = make_server(
            model,
            args.host,
            args.port,
            threads=args.threads,
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            request_timeout=args.request_timeout,
            access_log=True,
        )
    except OSError as exc:
        raise ClaimedError(f"--port: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = listener.getsockname()[:2]
    print(
        f"serving {model.name} version {model.version} from {model.folder}\n"
        f"  V2: http://{host}:{port}/v2/models/{model.name}/infer\n"
        f"  V1: http://{host}:{port}/v1/models/{model.name}:predict",
        flush=True,
    )
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
