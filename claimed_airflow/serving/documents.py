"""Request documents of the inference protocols, decoded within bounded memory.

``RequestError`` is a request the client can fix. JSON bodies are decoded into msgspec structures and
tensors straight into numpy arrays (see "JSON documents" below); ``binary_tensor`` reads the V2 binary
tensor data extension.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from typing import Any

DIGITS = re.compile(r"[0-9]{1,15}")


class RequestError(Exception):
    """A request the client can fix; answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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


def binary_tensor(datatype: Any, size: Any, binary: bytes | None):
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
TEXT = _NUMBER_TEXT + b"ABCDFGHIJKLMNOPQRSTUVWXYZabcdfghijklmnopqrstuvwxyz/=_"  # ... and base64 strings
_CHUNK = 2**20  # bytes of numbers decoded at a time
_SMALL = 1024  # bytes of JSON a shape or the outputs may take


@functools.cache
def schema() -> Any:
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
def strings(n: int) -> Any:
    """The type of a BYTES tensor's JSON data of ``n`` items: one string, or exactly ``n`` (refused at the n+1st)."""
    return str | tuple[(str,) * n]  # type: ignore[misc]


def decode(document: Any, kind: Any, where: str) -> Any:
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


def small(raw: Any, where: str) -> Any:
    if len(raw) > _SMALL:
        raise RequestError(400, f"{where}: more than {_SMALL} bytes of JSON")
    return raw


def skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of numbers nested as ``shape``: ``(2, 3)`` -> ``[[,,],[,,]]``."""
    bones = b""
    for size in reversed(shape):
        bones = b"[" + (bones + b",") * (size - 1) + bones + b"]" if size else b"[]"
    return bones


def skeleton_length(shape: tuple[int, ...]) -> int:
    length = 0
    for size in reversed(shape):
        length = 2 + max(size - 1, 0) + size * length
    return length


def count_items(bones: bytes, kinds: tuple[bytes, ...], limit: int, where: str) -> int:
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


def numbers(raw: Any, shapes: list[tuple[int, ...]], where: str, pixels: bool = False):
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
        shape = next((s for s in shapes if len(bones) == skeleton_length(s) and bones == skeleton(s)), None)
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
    decoder = schema().integers if pixels else schema().floats
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


def b64(item: Any, where: str) -> bytes:
    if isinstance(item, dict) and set(item) == {"b64"}:
        item = item["b64"]
    if not isinstance(item, str):
        raise RequestError(400, f"{where}: expected a base64-encoded image file")
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: not valid base64") from None
