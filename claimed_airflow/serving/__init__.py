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
so that a body costs the server a few times its size at most (see ``documents``).

Modules: ``models`` (the published model, loaded), ``protocols`` (the V2 and V1 codecs), ``documents``
(bounded JSON and binary tensor decoding), ``payloads`` (image and DICOM bodies), ``app`` (the Starlette
routes), ``server`` (uvicorn and the connection guard), ``limits`` (every limit's default), ``cli``
(``claimed-airflow serve``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claimed_airflow.serving.app import make_app
    from claimed_airflow.serving.cli import main, register
    from claimed_airflow.serving.documents import RequestError
    from claimed_airflow.serving.limits import MAX_BODY_BYTES
    from claimed_airflow.serving.models import ServedModel, resolve_model_folder
    from claimed_airflow.serving.server import make_server, serving

# the public names, each imported from its module on first use: registering `claimed-airflow serve` (every
# start of the command) imports only the options' defaults, not the server (uvicorn's asyncio, the model)
_HOMES = {
    "make_app": "app",
    "main": "cli",
    "register": "cli",
    "RequestError": "documents",
    "MAX_BODY_BYTES": "limits",
    "ServedModel": "models",
    "resolve_model_folder": "models",
    "make_server": "server",
    "serving": "server",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "MAX_BODY_BYTES",
    "RequestError",
    "ServedModel",
    "main",
    "make_app",
    "make_server",
    "register",
    "resolve_model_folder",
    "serving",
]
