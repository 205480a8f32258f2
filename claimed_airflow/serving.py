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
stack trace. Only the standard library serves HTTP (``ThreadingHTTPServer``), so serving needs no
Airflow and nothing beyond the ``ml`` extra (Keras for ``model.keras``, onnxruntime for ``model.onnx``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import io
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from claimed_airflow import __version__
from claimed_airflow.components.train.image_classifier import ImageClassifier, network_file
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow.serving")

MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BATCH = 256
FLOAT_TYPES = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
INT_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
IMAGE_TYPES = ("image/", "application/octet-stream")
DICOM_TYPES = ("application/dicom",)
OUTPUTS = ("probabilities", "label", "score")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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

    def __init__(self, folder: str | Path, name: str | None = None, max_batch: int = DEFAULT_MAX_BATCH):
        self.folder, default_name, self.version = resolve_model_folder(folder)
        self.name = name or default_name
        if not _NAME.match(self.name):
            raise ClaimedError(f"name: {self.name!r} is not a valid model name (letters, digits, _ . -)")
        self.network = ImageClassifier(self.folder)
        self.classes, self.image_size = self.network.classes, self.network.image_size
        self.max_batch = max_batch
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

    def infer_v2(self, request: dict, binary: bytes | None = None) -> dict:
        """Answer a V2 inference request; ``binary``: the tensor bytes of the binary data extension."""
        if not isinstance(request, dict):
            raise RequestError(400, "request: expected a JSON object with 'inputs'")
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, "inputs: expected a list with one tensor object named 'input'")
        wanted = _requested_outputs(request.get("outputs"))
        batch = self.tensor_v2(inputs[0], binary)
        return self.response_v2(self.predict(batch), wanted, request.get("id"))

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

    def tensor_v2(self, tensor: dict, binary: bytes | None = None):
        """A float32 network batch from one V2 input tensor; RequestError (400) for what does not fit.

        With the binary data extension, ``parameters.binary_data_size`` bytes of ``binary`` hold the
        tensor (little-endian values; BYTES items each prefixed by a 4-byte little-endian length).
        """
        import numpy as np

        name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
        if name != "input":
            raise RequestError(400, f"inputs[0].name: expected 'input', got {name!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise RequestError(400, f"input.shape: expected a list of integers, got {shape!r}")
        if not shape or any(d < 0 for d in shape) or shape[0] == 0:
            raise RequestError(400, f"input.shape: expected a batch of at least one item, got {shape}")
        self._check_batch(shape[0])
        parameters = tensor.get("parameters") if isinstance(tensor.get("parameters"), dict) else {}
        if "binary_data_size" in parameters:
            data = _binary_tensor(datatype, parameters["binary_data_size"], binary)
        elif data is None:
            raise RequestError(400, "input.data: missing")
        if datatype == "BYTES":
            if len(shape) != 1:
                raise RequestError(400, f"input.shape: BYTES input is one image file per item, [N], got {shape}")
            items = data if isinstance(data, list) else [data]
            if len(items) != shape[0]:
                raise RequestError(400, f"input.data: {len(items)} item(s) for shape {shape}")
            return np.stack(
                [
                    self.image_file(item if isinstance(item, bytes) else _b64(item, f"input.data[{i}]"))
                    for i, item in enumerate(items)
                ]
            )
        s = self.image_size
        if datatype in FLOAT_TYPES:
            allowed = ([shape[0], s, s, 3], [shape[0], s, s, 1])
            if shape not in allowed:
                raise RequestError(400, f"input.shape: expected [N, {s}, {s}, 3] (or 1 channel), got {shape}")
            array = _array(data, shape, FLOAT_TYPES[datatype]).astype(np.float32)
            if not np.isfinite(array).all():
                raise RequestError(400, "input.data: values must be finite numbers")
            return np.broadcast_to(array, (shape[0], s, s, 3)).astype(np.float32, copy=False)
        if datatype in INT_TYPES:
            if shape not in ([shape[0], s, s], [shape[0], s, s, 1], [shape[0], s, s, 3]):
                raise RequestError(400, f"input.shape: expected [N, {s}, {s}] pixels (or 1 or 3 channels), got {shape}")
            array = _array(data, shape, "int64")
            if array.size and (array.min() < 0 or array.max() > 255):
                raise RequestError(400, "input.data: pixel values must be within 0..255")
            return self.pixels(array.astype(np.float32))
        known = ", ".join([*FLOAT_TYPES, "UINT8 (and other integer types)", "BYTES"])
        raise RequestError(400, f"input.datatype: expected one of {known}, got {datatype!r}")

    def predict_v1(self, request: dict) -> dict:
        import numpy as np

        if not isinstance(request, dict) or not isinstance(request.get("instances"), list):
            raise RequestError(400, "request: expected a JSON object with a list 'instances'")
        instances = request["instances"]
        self._check_batch(len(instances))
        s = self.image_size
        rows = []
        for i, item in enumerate(instances):
            if isinstance(item, dict):
                if set(item) != {"b64"}:
                    raise RequestError(400, f"instances[{i}]: expected {{'b64': <base64 image file>}} or a nested list")
                rows.append(self.image_file(_b64(item["b64"], f"instances[{i}].b64")))
                continue
            array = _array(item, None, "float32", where=f"instances[{i}]")
            if array.shape not in ((s, s, 3), (s, s, 1)):
                raise RequestError(400, f"instances[{i}]: expected shape [{s}, {s}, 3], got {list(array.shape)}")
            if not np.isfinite(array).all():
                raise RequestError(400, f"instances[{i}]: values must be finite numbers")
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

    # --- images -------------------------------------------------------------------------------
    def pixels(self, array):
        return pixels_to_input(array)

    def image_file(self, payload: bytes):
        return image_file_to_input(payload, self.image_size)

    def dicom_file(self, payload: bytes):
        """One network input from a DICOM file, windowed as ``transform.dicom_to_images`` does."""
        import numpy as np
        import pydicom
        from PIL import Image

        from claimed_airflow.components.transform.dicom_to_images import to_uint8

        try:
            dataset = pydicom.dcmread(io.BytesIO(payload))
            pixels = to_uint8(dataset)
        except Exception as exc:  # pydicom raises many types for a bad file
            raise RequestError(400, f"dicom: not a readable DICOM image ({exc.__class__.__name__}: {exc})") from None
        image = Image.fromarray(pixels).convert("L").resize((self.image_size, self.image_size))
        return self.pixels(np.asarray(image, dtype=np.float32)[None])[0]

    def _check_batch(self, n: int) -> None:
        if n > self.max_batch:
            raise RequestError(413, f"batch: {n} items is more than the server's limit of {self.max_batch}")


def pixels_to_input(array):
    """Network input from pixel values 0..255 ``(N, S, S[, 1|3])``, prepared as ``train.mobilenet_v2`` does."""
    import numpy as np

    if array.ndim == 4 and array.shape[-1] == 3:  # RGB to luma, as PIL's convert("L")
        array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if array.ndim == 4:
        array = array[..., 0]
    gray = array / 127.5 - 1.0
    return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)


def image_file_to_input(payload: bytes, size: int):
    """One network input ``(S, S, 3)`` from an image file (PNG, JPEG, ...); RequestError (400) if unreadable."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            gray = np.asarray(image.convert("L").resize((size, size)), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RequestError(400, f"image: not a readable image file ({exc.__class__.__name__})") from None
    return pixels_to_input(gray[None])[0]


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


def _requested_outputs(outputs: Any) -> tuple[str, ...]:
    if outputs is None:
        return OUTPUTS
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and "name" in o for o in outputs):
        raise RequestError(400, "outputs: expected a list of {'name': ...} objects")
    names = tuple(o["name"] for o in outputs)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"outputs: unknown output(s) {unknown}; known: {', '.join(OUTPUTS)}")
    return names


def _array(data: Any, shape: list[int] | None, dtype: str, where: str = "input.data"):
    import numpy as np

    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(400, f"{where}: expected {'nested lists of ' if shape is None else ''}numbers") from None
    if shape is None:
        return array
    if array.size != math.prod(shape):
        raise RequestError(400, f"{where}: {array.size} value(s) do not fill shape {shape}")
    return array.reshape(shape)


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"request: not valid JSON ({exc})") from None


def _b64(item: Any, where: str) -> bytes:
    if isinstance(item, dict) and set(item) == {"b64"}:
        item = item["b64"]
    if not isinstance(item, str):
        raise RequestError(400, f"{where}: expected a base64-encoded image file")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: not valid base64") from None


class Handler(BaseHTTPRequestHandler):
    server_version = f"claimed-airflow/{__version__}"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    model: ServedModel  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route) -> None:
        started = time.perf_counter()
        try:
            status, body = route(self.path.split("?", 1)[0])
        except RequestError as exc:
            status, body = exc.status, {"error": exc.message}
        except Exception:
            log.exception("internal error answering %s %s", self.command, self.path)
            status, body = 500, {"error": "internal server error; see the server log"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        log.info("%s %s -> %d (%.1f ms)", self.command, self.path, status, (time.perf_counter() - started) * 1e3)

    def _get(self, path: str) -> tuple[int, dict]:
        m = self.model
        if path in ("/v2/health/live", "/v2/health/ready"):
            return 200, {path.rsplit("/", 1)[-1]: True}
        if path == "/v2":
            return 200, {"name": "claimed-airflow", "version": __version__, "extensions": []}
        route = self._model_route(path)
        if route in ("v2", "v2-version"):
            return 200, m.metadata_v2()
        if route in ("v2-ready", "v1"):
            return 200, {"name": m.name, "ready": True}
        if route in ("v2-infer", "v1-predict"):
            raise RequestError(405, f"{path}: use POST")
        raise RequestError(404, f"{path}: not found")

    def _post(self, path: str) -> tuple[int, dict]:
        route = self._model_route(path)
        if route not in ("v2-infer", "v1-predict"):
            if route is None:
                raise RequestError(404, f"{path}: not found")
            raise RequestError(405, f"{path}: use GET")
        payload = self._body()
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        m = self.model
        header_length = self.headers.get("Inference-Header-Content-Length")
        if header_length is not None:  # the binary tensor data extension of the V2 protocol
            if route != "v2-infer":
                raise RequestError(400, "Inference-Header-Content-Length: binary data is only accepted by V2 infer")
            if not header_length.isdigit() or int(header_length) > len(payload):
                raise RequestError(400, f"Inference-Header-Content-Length: {header_length!r} does not fit the body")
            request = _json(payload[: int(header_length)])
            return 200, m.infer_v2(request, payload[int(header_length) :])
        if content_type.startswith(IMAGE_TYPES) or content_type in DICOM_TYPES:
            reader = m.dicom_file if content_type in DICOM_TYPES else m.image_file
            probabilities = m.predict(reader(payload)[None])
            return 200, m.response_v2(probabilities) if route == "v2-infer" else m.response_v1(probabilities)
        if content_type != "application/json":
            raise RequestError(
                415, f"Content-Type: expected application/json, image/* or application/dicom, got {content_type}"
            )
        request = _json(payload)
        return 200, m.infer_v2(request) if route == "v2-infer" else m.predict_v1(request)

    def _model_route(self, path: str) -> str | None:
        """Which model endpoint ``path`` is, or None; 404 for another model's name."""
        patterns = (
            ("v2-infer", r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer"),
            ("v2-ready", r"/v2/models/([^/]+)(?:/versions/([^/]+))?/ready"),
            ("v2-version", r"/v2/models/([^/]+)/versions/([^/]+)"),
            ("v2", r"/v2/models/([^/]+)()"),
            ("v1-predict", r"/v1/models/([^/:]+)():predict"),
            ("v1", r"/v1/models/([^/:]+)()"),
        )
        for route, pattern in patterns:
            match = re.fullmatch(pattern, path)
            if match:
                name, version = match.groups()
                if name != self.model.name:
                    raise RequestError(404, f"model {name!r} not found; this server serves {self.model.name!r}")
                if version and version != self.model.version:
                    raise RequestError(404, f"model {name!r} has no version {version!r}; served: {self.model.version}")
                return route
        return None

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "Content-Length: required")
        try:
            size = int(length)
        except ValueError:
            raise RequestError(400, f"Content-Length: not a number: {length!r}") from None
        if size > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, f"request body: {size} bytes is more than the limit of {MAX_BODY_BYTES}")
        return self.rfile.read(size)


def make_server(model: ServedModel, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """An HTTP server (not started) answering for ``model``; port 0 picks a free port."""
    handler = type("ModelHandler", (Handler,), {"model": model})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serving(model: ServedModel, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``model`` in a background thread; yields the base URL and stops the server on exit."""
    server = make_server(model, host, port)
    thread = threading.Thread(target=server.serve_forever, name="claimed-serve", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


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
    serve.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model = ServedModel(args.model_folder, name=args.name, max_batch=args.max_batch)
    try:
        server = make_server(model, args.host, args.port)
    except OSError as exc:
        raise ClaimedError(f"--port: cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = server.server_address[:2]
    print(
        f"serving {model.name} version {model.version} from {model.folder}\n"
        f"  V2: http://{host}:{port}/v2/models/{model.name}/infer\n"
        f"  V1: http://{host}:{port}/v1/models/{model.name}:predict",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
