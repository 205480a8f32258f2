"""Pixels and network input: the one set of rules that turns a DICOM dataset or an image file into what a network sees.

``transform.dicom_to_images`` (training images), ``train.mobilenet_v2`` and ``predict.images`` (image
folders), ``claimed-airflow serve`` (request bodies), ``deploy.watson_ml`` (its scoring sample) and
``output.dicom`` (Secondary Captures) all use these functions, so a model is served with the pixels
it was trained on:

- DICOM: Modality LUT, VOI LUT or window (LINEAR, LINEAR_EXACT, SIGMOID), else the frame's min..max
  range; MONOCHROME1 inverted; colour as its luminance; 8-bit (:func:`to_uint8`). JPEG 2000 and 8-bit
  JPEG baseline may be decoded at a reduced resolution (:func:`reduced_pixels`, ``fast_decode``).
- image files: grey as Pillow's ``convert("L")`` (:func:`image_pixels`); RGB pixel arrays alike (:func:`gray`).
- resize: one filter, bilinear (:func:`fit`).
- network input: float32 ``(N, S, S, 3)``, the grey value repeated in 3 channels, ``pixel / 127.5 - 1``
  in [-1, 1] (:func:`network_input`).

numpy, pydicom and Pillow are imported inside the functions.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MAX_PIXELS = 100_000_000
INPUT_SCALE = 127.5  # network input = pixel / INPUT_SCALE - INPUT_OFFSET, in [-1, 1]
INPUT_OFFSET = 1.0
# Pillow's convert("L") of RGB: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 (ITU-R BT.601 weights)
_LUMA_WEIGHTS_16 = (19595, 38470, 7471)
_J2K_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


class FrameTooLarge(ValueError):
    """A frame or image larger than ``max_pixels``: not decoded (the decompression guard)."""


class UnreadableImage(ValueError):
    """An image file that Pillow cannot read."""


# --- DICOM header -------------------------------------------------------------------------------
def frame_size(ds) -> tuple[int, int, int]:
    """(Rows, Columns, SamplesPerPixel) of a dataset's frames, read from its header; ValueError if absent or absurd."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        raise ValueError("Rows/Columns missing or not numbers") from None
    if rows < 1 or columns < 1:
        raise ValueError(f"absurd dimensions {rows}x{columns}")
    return rows, columns, samples


def check_frame_size(rows: int, columns: int, samples: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """The decompression guard, checked before decoding: FrameTooLarge if rows x columns x samples > max_pixels."""
    if rows * columns * samples > max_pixels:
        raise FrameTooLarge(
            f"frame of {rows}x{columns}x{samples} exceeds max_pixels={max_pixels} (decompression guard)"
        )


def frame_count(ds) -> int:
    """NumberOfFrames of a dataset (1 when absent or not a number)."""
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


# --- DICOM pixels -------------------------------------------------------------------------------
def frame_pixels(ds, frame: int = 0):
    """The stored pixel values of one frame, decoded in full."""
    from pydicom.pixels import pixel_array

    return pixel_array(ds, index=frame) if frame_count(ds) > 1 else ds.pixel_array


def _first(value, index: int = 0) -> float:
    """A number from a DS/IS element that may be multi-valued."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[min(index, len(value) - 1)]
    return float(value)


def window_unit(values, center: float, width: float, function: str = "LINEAR"):
    """Values windowed to [0, 1] after PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID)."""
    import numpy as np

    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:  # LINEAR needs width >= 1; width 1 is a threshold at center - 0.5
        return (values > center - 0.5).astype(np.float32)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _voi_unit(values, ds):
    """Apply the file's VOI LUT or window to modality values; None if the file has no usable one."""
    import numpy as np

    sequence = ds.get("VOILUTSequence")
    if sequence:
        from pydicom.pixels import apply_voi

        bits = int(sequence[0].LUTDescriptor[2])
        return apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float32) / float(2**bits - 1)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except (TypeError, ValueError, IndexError):
            return None
        function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
        if width > 0 and np.isfinite(center) and np.isfinite(width):
            return window_unit(values, center, width, function)
    return None


def to_uint8(ds, frame: int = 0, *, windowing: str = "dicom", pixels=None):
    """Pixel data of ``ds`` (one frame) as 8-bit grayscale: modality LUT, VOI LUT/window, MONOCHROME1 inverted.

    Grayscale: the Modality LUT (rescale slope/intercept or LUT sequence) gives modality values; the
    VOI LUT sequence or window (center/width, LINEAR/LINEAR_EXACT/SIGMOID) maps them to the display
    range when ``windowing="dicom"`` and the file has one, otherwise the frame's own min..max range
    is used. MONOCHROME1 is inverted so that high values are bright. Colour (RGB, YBR_* converted by
    pydicom, PALETTE COLOR) becomes its luminance (ITU-R BT.601 weights). ``pixels``: the frame's
    stored values when already decoded (e.g. by :func:`reduced_pixels`).
    """
    import numpy as np
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    if pixels is None:
        pixels = frame_pixels(ds, frame)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return _unit_to_uint8(_luma(rgb, depth))
    if pixels.ndim == 3:  # RGB, or YBR already converted to RGB by pydicom
        depth = int(ds.get("BitsStored") or 8)
        return _unit_to_uint8(_luma(pixels, depth))
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    unit = _voi_unit(values, ds) if windowing == "dicom" else None
    if unit is None:
        low, high = float(values.min()), float(values.max())
        unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return _unit_to_uint8(unit)


def _unit_to_uint8(unit):
    import numpy as np

    return np.clip(np.rint(np.asarray(unit, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _luma(rgb, depth: int):
    """Luminance (ITU-R BT.601 weights) of RGB values of ``depth`` bits, in [0, 1]."""
    import numpy as np

    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb[..., :3].astype(np.float32) @ weights / float(2**depth - 1)


def dicom_image(
    ds,
    size: int,
    frame: int = 0,
    *,
    aspect: str = "stretch",
    windowing: str = "dicom",
    fast_decode: bool = True,
):
    """One frame of ``ds`` as the 8-bit grey PIL image ``size`` x ``size`` that ``transform.dicom_to_images`` writes.

    :func:`reduced_pixels` when ``fast_decode`` allows it, else a full decode; then :func:`to_uint8`
    and :func:`fit`. The defaults are ``transform.dicom_to_images``'s.
    """
    pixels = reduced_pixels(ds, size, windowing) if fast_decode else None
    if pixels is None:
        pixels = frame_pixels(ds, frame)
    return fit(to_uint8(ds, frame, windowing=windowing, pixels=pixels), size, aspect)


# --- fast decode: JPEG 2000 wavelet levels, JPEG DCT scaling --------------------------------------
def reduced_pixels(ds, size: int, windowing: str = "dicom"):
    """The first frame decoded at the smallest resolution whose sides are still at least ``size``, or None.

    JPEG 2000 keeps lower resolutions as wavelet levels and 8-bit JPEG can scale while it decodes
    (DCT scaling), so a thumbnail needs only part of the work of a full decode. Covers single-frame
    unsigned colour, and grayscale with a VOI LUT or window, JPEG 2000 and JPEG baseline; None
    (decode in full) for anything else (a min..max range from a reduced image would shift the grey
    levels), for files that need no reduction, and for codestreams Pillow cannot reduce.
    """
    syntax = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
    if size <= 0 or frame_count(ds) != 1 or syntax not in _J2K_SYNTAXES | {_JPEG_BASELINE}:
        return None
    colour = int(ds.get("SamplesPerPixel") or 1) > 1
    windowed = windowing == "dicom" and ("VOILUTSequence" in ds or "WindowWidth" in ds)
    if not (colour or windowed):
        return None
    if int(ds.get("PixelRepresentation") or 0) != 0 or min(int(ds.Rows), int(ds.Columns)) < 2 * size:
        return None
    import io

    import numpy as np
    from PIL import Image
    from pydicom.encaps import generate_frames

    try:
        stream = next(generate_frames(ds.PixelData, number_of_frames=1))
        if syntax == _JPEG_BASELINE:
            if colour:  # YBR handling stays with pydicom
                return None
            image = Image.open(io.BytesIO(stream))
            image.draft("L", (size, size))
            return np.asarray(image) if image.mode == "L" else None
        return _reduced_j2k(stream, int(ds.Rows), int(ds.Columns), size)
    except Exception:  # noqa: BLE001 - any doubt: decode in full with pydicom
        return None


def _reduced_j2k(stream: bytes, rows: int, columns: int, size: int):
    import io

    import numpy as np
    from PIL import Image

    header = _j2k_header(stream)
    if header is None or header["signed"] or header["offset"]:
        return None
    reduce = 0
    while reduce < header["levels"] and min(rows, columns) >> (reduce + 1) >= size:
        reduce += 1
    if reduce == 0:
        return None
    image = Image.open(io.BytesIO(stream))
    power = 1 << reduce
    # OpenJPEG rounds a reduced side up, Pillow (13) to nearest: give Pillow sides that round alike
    image._size = (-(-columns // power) * power, -(-rows // power) * power)
    image.reduce = reduce
    image.load()
    if image.mode not in ("L", "I;16", "RGB"):
        return None
    pixels = np.asarray(image)
    if image.mode == "I;16":  # Pillow widens the codestream's precision to 16 bits
        pixels = pixels >> (16 - header["precision"])
    return pixels


def _j2k_header(stream: bytes) -> dict | None:
    """Precision, sign, image offset (SIZ) and wavelet levels (COD, the smallest of any COC) of a codestream."""
    if stream[:4] != b"\xff\x4f\xff\x51":
        return None
    read = int.from_bytes
    components = read(stream[40:42], "big")
    signs = [stream[42 + 3 * i] for i in range(components)]
    header = {
        "precision": (signs[0] & 0x7F) + 1,
        "signed": any(s & 0x80 for s in signs),
        "offset": read(stream[16:20], "big") or read(stream[20:24], "big"),
        "levels": None,
    }
    position = 4 + read(stream[4:6], "big")
    while position + 4 <= len(stream):
        marker, length = read(stream[position : position + 2], "big"), read(stream[position + 2 : position + 4], "big")
        if marker == 0xFF90:  # first tile: the main header ends
            break
        if marker == 0xFF52:
            levels = stream[position + 9]
            header["levels"] = levels if header["levels"] is None else min(levels, header["levels"])
        elif marker == 0xFF53:  # COC: component index is 1 or 2 bytes, then Scoc, then the levels
            levels = stream[position + 4 + (1 if components < 257 else 2) + 1]
            header["levels"] = levels if header["levels"] is None else min(levels, header["levels"])
        position += 2 + length
    return header if header["levels"] else None


# --- image files, resize, network input -----------------------------------------------------------
def fit(pixels, size: int, aspect: str = "stretch"):
    """A PIL image of ``pixels`` (an array or a PIL image) resized to ``size`` x ``size`` (0 keeps the original size).

    The one resize filter: bilinear. ``stretch`` ignores the aspect ratio, ``pad`` fits the image
    inside and pads with black, ``crop`` cuts the centre square (of the longer side) before resizing.
    """
    from PIL import Image, ImageOps

    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if size <= 0:
        return image
    method = Image.Resampling.BILINEAR
    if aspect == "pad":
        return ImageOps.pad(image, (size, size), method=method, color=0)
    if aspect == "crop":
        return ImageOps.fit(image, (size, size), method=method)
    return image.resize((size, size), method, reducing_gap=3.0)


def image_pixels(source: Any, size: int, max_pixels: int | None = None):
    """8-bit grey pixels ``(size, size)`` of an image file (PNG, JPEG, ...): Pillow's ``convert("L")``, :func:`fit`.

    ``source``: the file's bytes or its path. With ``max_pixels``, FrameTooLarge when the image is larger
    (read from its header, before decoding); UnreadableImage when Pillow cannot read it.
    """
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            if max_pixels is not None:
                width, height = image.size
                check_frame_size(height, width, len(image.getbands()), max_pixels)
            return np.asarray(fit(image if image.mode == "L" else image.convert("L"), size))
    except Image.DecompressionBombError as exc:  # Pillow's own guard, at twice its MAX_IMAGE_PIXELS
        raise FrameTooLarge(f"more than max_pixels={max_pixels} ({exc})") from None
    except FrameTooLarge:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(f"not a readable image file ({exc.__class__.__name__})") from None


def gray(pixels):
    """uint8 grey ``(N, S, S)`` of pixel values 0..255 ``(N, S, S)``, ``(N, S, S, 1)`` or RGB ``(N, S, S, 3)``.

    RGB becomes its luminance exactly as Pillow's ``convert("L")`` computes it for an image file.
    """
    import numpy as np

    pixels = np.asarray(pixels)
    if pixels.ndim == 4 and pixels.shape[-1] == 3:
        wide = pixels.astype(np.uint32)
        red, green, blue = _LUMA_WEIGHTS_16
        luma = (wide[..., 0] * red + wide[..., 1] * green + wide[..., 2] * blue + 0x8000) >> 16
        return luma.astype(np.uint8)
    if pixels.ndim == 4:
        pixels = pixels[..., 0]
    return pixels.astype(np.uint8, copy=False)


def network_input(pixels):
    """uint8 grey ``(N, S, S)`` as the networks' input: float32 ``(N, S, S, 3)`` in [-1, 1] (``pixel / 127.5 - 1``)."""
    import numpy as np

    unit = np.asarray(pixels).astype(np.float32) / np.float32(INPUT_SCALE) - np.float32(INPUT_OFFSET)
    return np.repeat(unit[..., None], 3, axis=-1)


def input_to_unit(inputs):
    """Network input back to [0, 1] (what explanations and pictures show); the inverse of :func:`unit_to_input`."""
    return (inputs + INPUT_OFFSET) * (INPUT_SCALE / 255.0)


def unit_to_input(unit):
    """[0, 1] images (e.g. LIME's perturbed samples) as network input."""
    return unit * (255.0 / INPUT_SCALE) - INPUT_OFFSET
