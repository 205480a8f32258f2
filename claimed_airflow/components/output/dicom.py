"""Write model predictions back as DICOM (Comprehensive SR or Secondary Capture) linked to the source images."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import inside

SCHEME = "99CLAIMED"  # a local coding scheme (PS3.16 8.2: designators starting with 99 are private)
SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902
# Type 2 attributes of the Patient and Study modules that the results copy from their source
TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def stable_uid(*parts: str) -> str:
    """A UID derived from ``parts`` (``2.25.<128-bit hash>``), so a retried task writes the same UIDs."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def code_value(text: str) -> str:
    """A code value (SH, at most 16 characters) for a class name."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_").upper() or "UNKNOWN"
    if len(value) > 16:
        value = value[:7] + "_" + hashlib.sha256(text.encode()).hexdigest()[:8].upper()
    return value


def build_sr(source, prediction: str, score: float | None, model_name: str, frame: int | None):
    """A Comprehensive SR (TID 1500 measurement report) with the predicted class, referencing ``source``."""
    import highdicom as hd
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=stable_uid("device", model_name), name=model_name[:64])
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    frames = [frame + 1] if frame is not None and int(source.get("NumberOfFrames") or 1) > 1 else None
    measurements = []
    if score is not None:
        measurements.append(
            hd.sr.Measurement(
                name=CodedConcept("SCORE", SCHEME, "Prediction score"),
                value=float(score),
                unit=CodedConcept("1", "UCUM", "no units"),
            )
        )
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid("tracking", source.SOPInstanceUID, str(frame), model_name), identifier="prediction"
        ),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source, frames)],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=CodedConcept("CLASS", SCHEME, "Predicted class"),
                value=CodedConcept(code_value(prediction), SCHEME, prediction[:64]),
            )
        ],
        measurements=measurements or None,
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=CodedConcept("CLASSIFY", SCHEME, "Image classification"),
        imaging_measurements=[group],
    )
    return hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=stable_uid("sr-series", source.StudyInstanceUID, model_name),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=stable_uid("sr", source.SOPInstanceUID, str(frame), model_name),
        instance_number=1,
        manufacturer="CLAIMED claimed-airflow",
        series_description=f"Predictions of {model_name}"[:64],
        is_complete=True,
    )


def build_sc(source, path: Path, prediction: str, score: float | None, model_name: str, frame: int | None):
    """A Secondary Capture of the source image (8-bit, as the model saw it) carrying the prediction."""
    import highdicom as hd
    import pydicom
    from pydicom.dataset import Dataset

    from claimed_airflow.core.imaging import to_uint8

    pixels = to_uint8(pydicom.dcmread(path), frame or 0)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation="MONOCHROME2",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=stable_uid("sc-series", source.StudyInstanceUID, model_name),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=stable_uid("sc", source.SOPInstanceUID, str(frame), model_name),
        instance_number=1,
        manufacturer="CLAIMED claimed-airflow",
        patient_orientation=("L", "P"),
    )
    text = f"{model_name}: {prediction}" + (f" (score {float(score):.4f})" if score is not None else "")
    sc.ImageComments = text[:10240]
    sc.DerivationDescription = f"Rendered from the source image for prediction by {model_name}"[:1024]
    sc.BurnedInAnnotation = "NO"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if frame is not None and int(source.get("NumberOfFrames") or 1) > 1:
        reference.ReferencedFrameNumber = frame + 1
    sc.SourceImageSequence = [reference]
    sc.ReferencedSeriesSequence = [_series_reference(source)]
    sc.Laterality = source.get("Laterality", "")  # Type 2C (General Series): empty when unknown
    return sc


def _series_reference(source):
    """A Common Instance Reference item: the source's series and, Type 1, the source instance in it."""
    from pydicom.dataset import Dataset

    instance = Dataset()
    instance.ReferencedSOPClassUID = source.SOPClassUID
    instance.ReferencedSOPInstanceUID = source.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    return series


def conformant_header(source):
    """``source``'s header made safe to copy into what we write: Type 2 patient/study attributes that
    files in the wild lack are added empty, and top-level values invalid for their VR (an age of
    ``62``, a date ``2020-01-01``) are repaired (``062Y``) or emptied, so the result passes an IOD check."""
    from pydicom import config
    from pydicom.valuerep import validate_value

    for keyword in TYPE2_COPIED:
        if keyword not in source:
            setattr(source, keyword, "")
    for elem in list(source):
        if elem.VR in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "UT", "UR") or elem.tag.group == 0x0002:
            continue
        values = elem.value if isinstance(elem.value, (list, tuple)) or elem.VM > 1 else [elem.value]
        try:
            for value in values:
                validate_value(elem.VR, value, config.RAISE)
        except (ValueError, TypeError):
            text = str(elem.value).strip()
            elem.value = f"{int(text):03d}Y" if elem.VR == "AS" and text.isdigit() and int(text) < 1000 else ""
    return source


@component("output")
def dicom(
    predictions: InputPath,
    files: InputPath,
    kind: Literal["sr", "sc"] = "sr",
    model_name: str = "claimed-airflow classifier",
    file_column: str = "file",
    prediction_column: str = "prediction",
    score_column: str = "score",
    destination: str | None = None,
    dicom: OutputPath = "dicom",
) -> dict:
    """Write predictions back as DICOM that a PACS or viewer accepts, linked to the source study and images.

    ``sr``: one Comprehensive SR per prediction (TID 1500 measurement report built with highdicom):
    the predicted class as a qualitative evaluation, the score as a measurement, the model as the
    observer device, the source image as evidence (same StudyInstanceUID, the source SOP instance
    referenced). ``sc``: one Secondary Capture per prediction with the 8-bit image the model saw,
    the prediction in ImageComments and the source in SourceImageSequence. UIDs are derived from the
    source UIDs and the model name, so a retried task writes the same instances. Rows whose source
    file is missing or unreadable are reported and left out. Needs the ``dicom`` extra (highdicom).
    With a ``destination`` PACS the written instances are also stored there (as output.dicomweb or
    output.dicom_network do); storing them again replaces, never duplicates them.

    :param predictions: Prediction table (e.g. from ``predict.images``) with the source file and the prediction.
    :param files: Folder of the source DICOM files (``files`` of input.dicom or ``output`` of transform.deidentify).
    :param kind: ``sr`` (Comprehensive Structured Report) or ``sc`` (Secondary Capture image).
    :param model_name: Name of the model, recorded as the observer device / in the series description.
    :param file_column: Column of ``predictions`` with the source file name relative to ``files``.
    :param prediction_column: Column with the predicted class.
    :param score_column: Column with the prediction score (optional; left out when the column is absent).
    :param destination: Also store the written instances in this PACS: dicomweb://<connection>,
        dicomweb+https://host/dicom-web or dicom://<connection> (DIMSE); empty: only the folder.
    :param dicom: Folder of the written ``<SOPInstanceUID>.dcm`` files plus ``index.csv`` (file, source UIDs).
    """
    import pandas as pd
    import pydicom

    from claimed_airflow.core.tables import read_table, write_table

    try:
        import highdicom  # noqa: F401
    except ImportError:
        raise ClaimedError("kind: output.dicom needs highdicom; install claimed-airflow[dicom]") from None
    if destination:
        from claimed_airflow.components._pacs import destination_server

        destination_server(destination)  # a wrong destination fails before any work
    table = read_table(predictions, name="predictions")
    for column in (file_column, prediction_column):
        if column not in table.columns:
            raise ClaimedError(f"predictions: column {column!r} missing (columns: {', '.join(table.columns)})")
    out = Path(dicom)
    out.mkdir(parents=True)
    written = []
    progress = Progress("output.dicom", len(table))
    for row in table.to_dict("records"):
        progress.advance()
        name = str(row[file_column])
        try:  # the file name is a table value: it never leads out of the files folder
            path = inside(files, name)
        except ClaimedError as exc:
            reject(name, f"leads out of the files folder: {exc}")
            continue
        frame = row.get("frame")
        frame = None if frame is None or pd.isna(frame) else int(frame)
        score = row.get(score_column)
        score = None if score is None or pd.isna(score) else float(score)
        try:
            source = conformant_header(pydicom.dcmread(path, stop_before_pixels=True))  # highdicom copies it
            if kind == "sr":
                instance = build_sr(source, str(row[prediction_column]), score, model_name, frame)
            else:
                instance = build_sc(source, path, str(row[prediction_column]), score, model_name, frame)
        except Exception as exc:  # noqa: BLE001 - this prediction is set aside, the batch goes on
            reject(name, f"cannot write DICOM {kind.upper()} ({type(exc).__name__}: {exc})")
            continue
        target = f"{instance.SOPInstanceUID}.dcm"
        instance.save_as(out / target, enforce_file_format=True)
        written.append(
            {
                "file": target,
                "source_file": name,
                "SOPClassUID": str(instance.SOPClassUID),
                "SOPInstanceUID": str(instance.SOPInstanceUID),
                "StudyInstanceUID": str(source.StudyInstanceUID),
                "SeriesInstanceUID": str(instance.SeriesInstanceUID),
                "ReferencedSOPInstanceUID": str(source.SOPInstanceUID),
                "ReferencedSeriesInstanceUID": str(source.SeriesInstanceUID),
                "prediction": str(row[prediction_column]),
            }
        )
    if not written:
        raise ClaimedError(f"predictions: none of the {len(table)} predictions could be written as DICOM")
    write_table(pd.DataFrame(written), out / "index.csv")
    result = {"dicom_written": len(written), "kind": kind}
    if destination:
        from claimed_airflow.components import _pacs

        protocol, server = _pacs.destination_server(destination)
        rows = _pacs.store_folder(protocol, server, out)
        result["instances_stored"] = sum(r["outcome"] == "stored" for r in rows)
        result["server"] = server.name
    return result
