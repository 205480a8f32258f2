"""Image and DICOM files in request bodies, read by ``core.imaging``'s rules (as ``train.mobilenet_v2`` and
``predict.images`` read them), with their size checked from the header before decoding."""

from __future__ import annotations

import io
import zlib

from claimed_airflow.core.imaging import (
    DEFAULT_MAX_PIXELS,
    FrameTooLarge,
    UnreadableImage,
    check_frame_size,
    dicom_image,
    frame_size,
    image_pixels,
)
from claimed_airflow.serving.documents import RequestError
from claimed_airflow.serving.limits import MAX_BODY_BYTES


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
