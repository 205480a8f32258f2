"""De-identify DICOM files after the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from claimed_airflow.core import InputPath, OutputPath, Progress, component, reject
from claimed_airflow.core.credentials import from_connection, mask
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.paths import inside
from claimed_airflow.core.tables import require_columns

log = logging.getLogger("claimed_airflow")

# PS3.15 Table E.1-1 comes from dicom-anonymizer (Kitware), which keeps the table of each edition of
# the standard; the newest edition it ships is used. Basic Profile actions: X remove, Z empty value,
# D dummy value, U new UID. Where the table allows several, the one that keeps the object valid
# whatever the attribute's type is used, as dicom-anonymizer does: X/Z -> Z, Z/D, X/D, X/Z/D -> D,
# X/Z/U* -> U (a sequence is kept and every UID in it replaced). Curves and overlays are masked tags.
_CATEGORIES = {
    "X_TAGS": "X",
    "Z_TAGS": "Z",
    "D_TAGS": "D",
    "U_TAGS": "U",
    "X_Z_TAGS": "Z",
    "Z_D_TAGS": "D",
    "X_D_TAGS": "D",
    "X_Z_D_TAGS": "D",
    "X_Z_U_STAR_TAGS": "U",
}


@functools.cache
def basic_profile() -> tuple[str, dict[int, str], list[tuple[int, int, int, int, str]]]:
    """(edition, {tag: action}, [(group, element, group mask, element mask, action)]) of Table E.1-1."""
    import importlib
    import pkgutil

    try:
        from dicomanonymizer import dicom_anonymization_databases as databases
    except ImportError:
        raise ClaimedError("deidentify: needs dicom-anonymizer (pip install dicom-anonymizer)") from None
    edition = max(module.name for module in pkgutil.iter_modules(databases.__path__))
    table = importlib.import_module(f"{databases.__name__}.{edition}")
    exact: dict[int, str] = {}
    masked = []
    for category, action in _CATEGORIES.items():
        for tag in getattr(table, category):
            if len(tag) == 4:
                masked.append((*tag, action))
            else:
                exact[(tag[0] << 16) | tag[1]] = action
    return edition.removeprefix("dicomfields_"), exact, masked


def profile_action(tag: int) -> str | None:
    """The Basic Profile action of ``tag`` (X, Z, D, U), or None when the profile keeps it."""
    _, exact, masked = basic_profile()
    if tag in exact:
        return exact[tag]
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, group_mask, element_mask, action in masked:
        if group & group_mask == g and element & element_mask == e:
            return action
    return None


BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
CLEAN_STRUCTURED_CONTENT_CODE = ("113104", "DCM", "Clean Structured Content Option")
MODIFIED_DATES_CODE = ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option")
RETAIN_CHARACTERISTICS_CODE = ("113108", "DCM", "Retain Patient Characteristics Option")
RETAIN_SAFE_PRIVATE_CODE = ("113111", "DCM", "Retain Safe Private Option")
DUMMY = {
    "PN": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
}
UID_ROOT = "2.25."
# The value representations that hold text: an element of one of these that the table gives no action
# is emptied unless its attribute is on SAFE_ATTRIBUTES (a text value kept is kept on purpose).
TEXT_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UR UT".split())
# Text attributes kept: image and pixel description, acquisition parameters, coded concepts of structured
# content, the flags of this profile. A value that does not fit its VR's strict form is emptied all the same.
SAFE_ATTRIBUTES = frozenset(
    """SpecificCharacterSet ImageType Modality ConversionType BodyPartExamined Laterality ImageLaterality
    ViewPosition PatientPosition PatientOrientation AnatomicalOrientationType PhotometricInterpretation
    PixelAspectRatio PixelSpacing ImagerPixelSpacing NominalScannedPixelSpacing PixelSpacingCalibrationType
    SliceThickness SpacingBetweenSlices ImagePositionPatient ImageOrientationPatient SliceLocation WindowCenter
    WindowWidth VOILUTFunction RescaleIntercept RescaleSlope RescaleType ModalityLUTType PresentationLUTShape
    PresentationIntentType LossyImageCompression LossyImageCompressionRatio LossyImageCompressionMethod
    NumberOfFrames InstanceNumber SeriesNumber AcquisitionNumber TemporalPositionIdentifier
    NumberOfTemporalPositions ImagesInAcquisition BurnedInAnnotation RecognizableVisualFeatures
    PatientIdentityRemoved LongitudinalTemporalInformationModified QualityControlImage KVP ExposureTime
    XRayTubeCurrent Exposure ExposureInuAs ConvolutionKernel ScanOptions ReconstructionDiameter FilterType
    FocalSpots GeneratorPower DataCollectionDiameter TableHeight RotationDirection EchoTime RepetitionTime
    InversionTime FlipAngle MagneticFieldStrength ScanningSequence SequenceVariant MRAcquisitionType
    EchoTrainLength NumberOfAverages ImagingFrequency ImagedNucleus PixelBandwidth Manufacturer
    ManufacturerModelName SoftwareVersions ValueType RelationshipType ContinuityOfContent CodeValue
    CodingSchemeDesignator CodingSchemeVersion CodeMeaning ContextIdentifier MappingResource TemplateIdentifier
    NumericValue CompletionFlag VerificationFlag PreliminaryFlag GraphicType ReferencedFrameNumber""".split()
)
# Strict forms of the kept values: CS codes, DS/IS numbers, AS ages, LO/SH within their length (each value).
_STRICT = {
    "CS": re.compile(r"[A-Z0-9 _]{0,16}"),
    "DS": re.compile(r" *[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)? *"),
    "IS": re.compile(r" *[-+]?[0-9]{1,12} *"),
    "AS": re.compile(r"[0-9]{3}[DWMY]"),
    "LO": re.compile(r"[^\x00-\x1f\\]{0,64}"),  # any text within the VR's length, no control characters
    "SH": re.compile(r"[^\x00-\x1f\\]{0,16}"),
}
# Date and time attributes of the table that the Modified Dates Option does not modify (PS3.15 Table E.1-1: no
# C in its column): birth date and time, GPS time stamp. Device dates (calibration, manufacture, installation)
# are the same for every patient of a device: moved per patient they are a shared anchor (one known real date
# gives another patient's shift), so they keep their Basic Profile action (removed) too.
NOT_SHIFTED = frozenset(
    """PatientBirthDate PatientBirthTime GPSTimeStamp DateOfLastCalibration TimeOfLastCalibration
    DateTimeOfLastCalibration CalibrationDate CalibrationTime CalibrationDateTime DateOfLastDetectorCalibration
    TimeOfLastDetectorCalibration DateOfInstallation DateOfManufacture BeamHoldTransitionDateTime""".split()
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UID_IN_TEXT = re.compile(r"(?<![0-9.])(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)){3,}(?![0-9.])")
_NAME = re.compile(r"2\.25\.[0-9]{1,39}\.dcm")
# Modalities whose images often carry identifying text in the pixels (patient name, dates burned in by the
# device or the capture): only an explicit BurnedInAnnotation NO clears them. US ultrasound, IVUS, SC/OT
# secondary capture and other, XC external camera, ES endoscopy, OP ophthalmic photography, GM/SM microscopy
# (slide labels), DOC scanned documents, XA/RF angiography and fluoroscopy (annotated runs).
BURNS_IN_TEXT = ("US", "IVUS", "SC", "OT", "XC", "ES", "OP", "GM", "SM", "DOC", "XA", "RF")
# The same for SOP classes, whatever the Modality says (or without one): Secondary Capture (screenshots, scans),
# VL and video (photographs, endoscopy, microscopy, slides), ultrasound, ophthalmic and dermoscopic photography.
BURNS_IN_TEXT_CLASSES = ("Secondary Capture", "VL ", "Video ", "Ultrasound", "US Volume", "Photograph", "Microscop")
MAX_DATE_SHIFT_DAYS = 3652
MIN_SALT_LENGTH = 16
MIN_SALT_DISTINCT = 8


def new_uid(uid: str, salt: bytes) -> str:
    """A new UID for ``uid``: ``2.25.<128-bit HMAC-SHA256 of the UID keyed by the salt>`` (same input, same output)."""
    digest = hmac.new(salt, uid.strip().encode(), hashlib.sha256).digest()
    return UID_ROOT + str(int.from_bytes(digest[:16], "big"))


def _registered(uid: str) -> bool:
    """True for UIDs defined by the standard (SOP classes, transfer syntaxes, coding schemes): kept."""
    from pydicom.uid import UID

    return bool(_UID.fullmatch(uid)) and UID(uid).name != uid


def dictionary_vr(tag: int) -> str | None:
    """The VR the DICOM dictionary gives ``tag`` (not the VR a file stored it with); None for unknown tags."""
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def date_shift_days(patient_id: str, salt: bytes) -> int:
    """Days (-3652..-1) every date of a patient moves: keyed by the salt, so the same patient always moves alike."""
    digest = hmac.new(salt, b"date-shift\0" + patient_id.strip().encode(), hashlib.sha256).digest()
    return -1 - int.from_bytes(digest[:8], "big") % MAX_DATE_SHIFT_DAYS


def shift_date(value: str, vr: str, days: int) -> str:
    """A DA or DT value (ranges and multiple values included) moved by ``days``; the time part of a DT is kept.
    A value that is not a full date (YYYYMMDD...) becomes empty, as it cannot be moved exactly."""
    out = []
    for single in str(value).split("\\"):
        parts = []
        for text in [p.strip() for p in (single.split("-") if vr == "DA" else [single])]:
            if not text:
                parts.append("")
                continue
            if len(text) < 8 or not text[:8].isdigit() or (vr == "DA" and len(text) != 8):
                return ""
            try:
                moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + timedelta(days=days)
            except (ValueError, OverflowError):
                return ""
            parts.append(f"{moved.year:04d}{moved.month:02d}{moved.day:02d}{text[8:]}")
        out.append("-".join(parts))
    return "\\".join(out)


def age_years(ds) -> str | None:
    """PatientAge as ``NNNY`` (aggregated to ``090Y`` from 90 on), from PatientAge or birth/study dates."""
    from claimed_airflow.components.input.dicom import age_in_years

    years = age_in_years(str(ds.get("PatientAge") or "") or None)
    if years is None:
        birth, study = str(ds.get("PatientBirthDate") or ""), str(ds.get("StudyDate") or "")
        if len(birth) >= 8 and len(study) >= 8 and birth[:8].isdigit() and study[:8].isdigit():
            years = int(study[:4]) - int(birth[:4]) - (study[4:8] < birth[4:8])
    if years is None or years < 0:
        return None
    return f"{min(int(years), 90):03d}Y"


class Deidentifier:
    """Applies the basic profile to datasets; one instance per run keeps the UID mapping consistent."""

    def __init__(
        self,
        salt: bytes,
        keep_patient_sex: bool,
        keep_patient_age: bool,
        shift_dates: bool = False,
        clean_structured_content: bool = True,
        retain_safe_private: list[str] | tuple[str, ...] = (),
    ):
        self.salt = salt
        self.keep = {"PatientSex"} if keep_patient_sex else set()
        self.keep_age = keep_patient_age
        self.shift_dates = shift_dates
        self.clean_structured_content = clean_structured_content
        self.safe_private = [parse_private(entry) for entry in retain_safe_private or ()]
        self.uids: dict[str, str] = {}

    def uid(self, value: str) -> str:
        value = str(value).strip()
        if value not in self.uids:
            self.uids[value] = new_uid(value, self.salt)
        return self.uids[value]

    def apply(self, ds) -> dict:
        """De-identify ``ds`` in place; returns the actions taken (attribute keywords, counts)."""
        from pydicom.dataset import FileMetaDataset

        actions = {
            "removed": set(),
            "emptied": set(),
            "dummy": set(),
            "uids_replaced": 0,
            "private_removed": 0,
            "private_kept": 0,
            "dates_shifted": 0,
        }
        age = age_years(ds) if self.keep_age else None
        days = date_shift_days(str(ds.get("PatientID") or ""), self.salt) if self.shift_dates else 0
        original = _text(ds.get("SOPInstanceUID") or "")
        sex = _text(ds.get("PatientSex") or "").upper()
        structured = self.clean_structured_content and any(e.tag == CONTENT_SEQUENCE for e in _walk(ds))
        self._private(ds, actions)
        self._scrub(ds, actions, days)
        # the instance UID names the output file: always a new 2.25 UID, whatever was stored (or missing)
        ds.SOPInstanceUID = self.uid(original) if original else new_uid(os.urandom(16).hex(), self.salt)
        if self.keep_age:  # the age in years, 090Y from 90 on; no age is kept that was not one
            if age is not None:
                ds.PatientAge = age
            elif "PatientAge" in ds:
                del ds.PatientAge
        if self.keep:  # PatientSex: one of the values the standard defines, else empty
            ds.PatientSex = sex if sex in ("M", "F", "O") else ""
        # the file meta: only what a Part 10 file needs, made by us (pydicom adds its implementation UID/name)
        meta = getattr(ds, "file_meta", None)
        new_meta = FileMetaDataset()
        new_meta.MediaStorageSOPClassUID = _text(ds.get("SOPClassUID") or "") or "1.2.840.10008.5.1.4.1.1.7"
        new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if meta is not None:
            if "TransferSyntaxUID" in meta:
                new_meta.TransferSyntaxUID = meta.TransferSyntaxUID
            actions["removed"] |= {e.keyword for e in meta if e.keyword not in new_meta and e.keyword not in _META}
        ds.file_meta = new_meta
        ds.preamble = b"\0" * 128  # 128 bytes a writer may fill with anything (names, IDs)
        self._mark(ds, structured)
        return {k: sorted(v) if isinstance(v, set) else v for k, v in actions.items()}

    def _private(self, ds, actions: dict) -> None:
        """Removes every private element, sequences included, except those of ``retain_safe_private``."""
        keep: set[int] = set()
        for group, offset, creator in self.safe_private:
            for item in [ds, *(i for e in _walk(ds) if e.VR == "SQ" for i in e.value or [])]:
                try:
                    block = item.private_block(group, creator)
                except KeyError:
                    continue
                keep |= {int(block.get_tag(offset)), (group << 16) | (block.block_start >> 8)}

        def remove(dataset) -> None:
            for tag in list(dataset.keys()):
                elem = dataset[tag]
                if tag.is_private and int(tag) not in keep:
                    del dataset[tag]
                    actions["private_removed"] += 1
                    continue
                if tag.is_private:
                    actions["private_kept"] += 1
                if elem.VR == "SQ":
                    for item in elem.value or []:
                        remove(item)

        remove(ds)

    def _scrub(self, ds, actions: dict, days: int) -> None:
        from pydicom import config
        from pydicom.dataelem import DataElement
        from pydicom.sequence import Sequence

        for tag in list(ds.keys()):
            elem = ds[tag]
            if tag.is_private:  # kept by retain_safe_private: its text may still quote a UID
                self._uids_in_text(ds, tag, elem)
                continue
            keyword = elem.keyword or f"({tag.group:04X},{tag.element:04X})"
            if keyword in self.keep or (keyword == "PatientAge" and self.keep_age):
                continue
            vr = dictionary_vr(int(tag))  # the standard's VR: a value stored under another VR is still a UID, a name
            action = profile_action(int(tag))
            if vr is None and action is None:  # a public tag the dictionary does not know: nothing says it is safe
                del ds[tag]
                actions["removed"].add(keyword)
                continue
            if vr in ("UI", *TEXT_VRS) and elem.VR != vr:
                # re-typed with the value it will get, never with the stored one (pydicom would log it as invalid)
                value = "" if elem.VM == 0 else elem.value if elem.VM > 1 else _text(elem.value)
                elem = ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
            if self.shift_dates and action is not None and keyword not in NOT_SHIFTED and vr in ("DA", "DT", "TM"):
                # an attribute the Modified Dates Option modifies: dates move, times of day stay (intervals exact)
                if vr != "TM" and elem.value not in (None, "", b""):
                    ds[tag] = DataElement(tag, vr, shift_date(_text(elem.value), vr, days))
                    actions["dates_shifted"] += 1
                continue
            if tag == CONTENT_SEQUENCE and action is not None:
                # Clean Structured Content: items kept, cleaned below (text values emptied, codes kept); else emptied
                action = None if self.clean_structured_content else "Z"
            if action is None and (vr in TEXT_VRS or elem.VR in TEXT_VRS) and not _safe(keyword, elem):
                action = "Z"  # the allow-list: text nobody said is safe is identifying
            if action == "X":
                del ds[tag]
                actions["removed"].add(keyword)
                continue
            if action == "Z":
                if elem.VR == "SQ":
                    elem.value = Sequence([])
                elif elem.value not in (None, "", b""):
                    ds[tag] = DataElement(tag, elem.VR, None if elem.VR in _NUMBER_VRS else "")
                actions["emptied"].add(keyword)
                continue
            if action == "D" and elem.VR != "SQ":
                dummy = DUMMY.get(elem.VR, "ANONYMIZED" if elem.VR in TEXT_VRS - {"UR"} else "")
                ds[tag] = DataElement(tag, elem.VR, dummy if elem.VR not in _NUMBER_VRS else 0)
                actions["dummy"].add(keyword)
                continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    self._scrub(item, actions, days)
            elif elem.VR == "UI" and elem.value not in (None, "", b""):
                values = [_text(v) for v in (elem.value if elem.VM > 1 else [elem.value])]
                # a registered UID (SOP class, transfer syntax) is kept; any other value, a UID or not, is replaced
                replaced = [v if _registered(v) else self.uid(v) for v in values]
                actions["uids_replaced"] += sum(a != b for a, b in zip(values, replaced, strict=True))
                ds[tag] = DataElement(tag, "UI", replaced if len(replaced) > 1 else replaced[0])
            else:
                self._uids_in_text(ds, tag, elem)

    def _uids_in_text(self, ds, tag, elem) -> None:
        """A UID quoted in a kept text value gets the same new UID as the attribute it came from."""
        from pydicom.dataelem import DataElement

        if elem.VR not in TEXT_VRS or not isinstance(elem.value, (str, list, tuple)) or not elem.value:
            return
        values = [str(v) for v in (elem.value if elem.VM > 1 else [elem.value])]
        mapped = [_UID_IN_TEXT.sub(lambda m: m[0] if _registered(m[0]) else self.uid(m[0]), v) for v in values]
        if mapped != values:
            ds[tag] = DataElement(tag, elem.VR, mapped if len(mapped) > 1 else mapped[0])

    def _mark(self, ds, structured: bool) -> None:
        from pydicom.dataset import Dataset

        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.shift_dates else "REMOVED"
        codes = [BASIC_PROFILE_CODE]
        codes += [CLEAN_STRUCTURED_CONTENT_CODE] if structured else []  # content items kept, cleaned
        codes += [MODIFIED_DATES_CODE] if self.shift_dates else []
        codes += [RETAIN_CHARACTERISTICS_CODE] if self.keep or self.keep_age else []
        codes += [RETAIN_SAFE_PRIVATE_CODE] if self.safe_private else []
        method = []
        for value, scheme, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
            method.append(item)
        ds.DeidentificationMethod = (
            f"PS3.15 {basic_profile()[0]} E.1 Basic Profile"
            + (
                "; retained: " + ", ".join(sorted(self.keep | ({"PatientAge"} if self.keep_age else set())))
                if self.keep or self.keep_age
                else ""
            )
            + ("; dates shifted per patient" if self.shift_dates else "")
        )
        ds.DeidentificationMethodCodeSequence = method
        if "PatientName" not in ds:
            ds.PatientName = ""
        if "PatientID" not in ds:
            ds.PatientID = ""


CONTENT_SEQUENCE = 0x0040A730
_NUMBER_VRS = ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV")
_META = {"FileMetaInformationGroupLength", "FileMetaInformationVersion", "ImplementationClassUID"}


def _safe(keyword: str, elem) -> bool:
    """True for an attribute of SAFE_ATTRIBUTES whose every value has its VR's strict form (where it has one)."""
    if keyword not in SAFE_ATTRIBUTES:
        return False
    strict = _STRICT.get(elem.VR)
    if strict is None or elem.value in (None, ""):
        return True
    values = elem.value if elem.VM > 1 else [elem.value]
    return all(strict.fullmatch(str(v)) for v in values)


def parse_private(entry: str) -> tuple[int, int, str]:
    """``"gggg,xxee,CREATOR"`` (retain_safe_private) -> (group, element offset, private creator)."""
    parts = [p.strip() for p in str(entry).split(",", 2)]
    ok = (
        len(parts) == 3
        and re.fullmatch(r"[0-9A-Fa-f]{4}", parts[0])
        and re.fullmatch(r"[xX]{2}[0-9A-Fa-f]{2}", parts[1])
    )
    if not ok or not int(parts[0], 16) & 1 or not parts[2]:
        raise ClaimedError(
            f"retain_safe_private: {entry!r} is not 'gggg,xxee,CREATOR' (an odd group, e.g. '0019,xx0B,GEMS_ACQU_01')"
        )
    return int(parts[0], 16), int(parts[1][2:], 16), parts[2]


def _text(value) -> str:
    """A stored value as text (bytes of an element stored under an unexpected VR included)."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return str(value).strip()


@contextlib.contextmanager
def _quiet_pydicom():
    """pydicom warns about invalid values with the value in the message (and logs it): hostile values must not
    reach the task log, so it reads, sets and writes without validating (a kept value is kept as written)."""
    from pydicom import config

    before = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = before


def burned_in_text(ds) -> str:
    """Why the pixels of ``ds`` may show identifying text ('' when nothing says so). Only an explicit
    BurnedInAnnotation ``NO`` clears a modality or SOP class that often shows text; ``YES`` is never cleared."""
    flag = str(ds.get("BurnedInAnnotation") or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation = YES"
    if str(ds.get("RecognizableVisualFeatures") or "").strip().upper() == "YES":
        return "RecognizableVisualFeatures = YES"
    modality = str(ds.get("Modality") or "").strip().upper()
    name = _uid_name(_text(ds.get("SOPClassUID") or ""))
    if modality in BURNS_IN_TEXT:
        kind = f"a {modality} image"
    elif name.endswith(("Storage", "Storage - Trial")) and any(part in name for part in BURNS_IN_TEXT_CLASSES):
        kind = f"a {name} image"  # screenshots, scans, photographs, video, ultrasound
    else:
        return ""
    if flag == "NO":
        return ""
    # the value is named only when it is one the standard defines: a stored value is hostile
    return f"no BurnedInAnnotation flag on {kind}" if not flag else f"BurnedInAnnotation is not NO on {kind}"


OCR_COMMAND = "tesseract"


def redact_text(ds) -> int:
    """Blacks out every word Tesseract finds in each frame of ``ds``; the pixel data is rewritten uncompressed.
    Returns the number of words. The recognised text is never logged or kept."""
    import shutil
    import subprocess
    import tempfile

    import numpy as np
    from PIL import Image

    from claimed_airflow.core.imaging import check_frame_size, frame_count, frame_size, to_uint8

    if shutil.which(OCR_COMMAND) is None:
        raise ClaimedError("burned_in: 'redact' needs the tesseract command (e.g. apt-get install tesseract-ocr)")
    check_frame_size(*frame_size(ds))
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").upper()
    pixels = np.array(ds.pixel_array, copy=True)  # YBR is decoded to RGB
    frames = pixels if frame_count(ds) > 1 else pixels[None]
    words = 0
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "frame.png"
        for number, frame in enumerate(frames):
            gray = to_uint8(ds, number, windowing="range", pixels=frame)
            scale = 2 if max(gray.shape) < 1200 else 1  # Tesseract reads small burned-in fonts better enlarged
            Image.fromarray(gray).resize((gray.shape[1] * scale, gray.shape[0] * scale)).save(image)
            found = subprocess.run(
                [OCR_COMMAND, str(image), "-", "--psm", "11", "tsv"], capture_output=True, text=True, timeout=300
            )
            if found.returncode:
                raise RuntimeError(f"tesseract exited with {found.returncode}")
            fill = frame.max() if photometric == "MONOCHROME1" else frame.min()
            for line in found.stdout.splitlines()[1:]:
                fields = line.split("\t")
                if len(fields) != 12 or fields[0] != "5" or not fields[11].strip():
                    continue
                left, top, width, height = (int(v) // scale for v in fields[6:10])
                frame[max(top - 2, 0) : top + height + 3, max(left - 2, 0) : left + width + 3] = fill
                words += 1
    if photometric.startswith("YBR"):
        photometric = "RGB"
    ds.set_pixel_data(pixels, photometric, int(ds.get("BitsStored") or 8), generate_instance_uid=False)
    return words


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    return UID(uid).name if _registered(uid) else ""


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)


def read_salt(salt_connection: str | None, salt_env: str | None) -> tuple[bytes, str]:
    """The salt (bytes) and a description of where it came from (never the value itself).

    The connection ``salt_connection`` (password, or extra ``salt``), else (none given, or no Airflow
    here: :mod:`claimed_airflow.core.credentials`) the environment variable named by ``salt_env``.
    """

    def read(name: str) -> tuple[bytes, str]:
        from claimed_airflow.version_compat import BaseHook

        connection = BaseHook.get_connection(name)
        secret = connection.password or (connection.extra_dejson or {}).get("salt")
        if not secret:
            raise ClaimedError(f"salt_connection: connection {name!r} has no password or extra 'salt'")
        mask(str(secret))
        return str(secret).encode(), f"Airflow connection {name}"

    def environment() -> tuple[bytes, str] | None:
        secret = os.environ.get(salt_env) if salt_env else None
        if not secret:
            return None
        mask(secret)
        return secret.encode(), f"environment variable {salt_env}"

    if salt_connection:
        hint = f"and environment variable {salt_env} is not set" if salt_env else "or give salt_env"
        return from_connection(
            salt_connection, read, kind="salt", environment=environment, hint=hint, param="salt_connection"
        )
    if salt_env:
        found = environment()
        if found is None:
            raise ClaimedError(f"salt_env: environment variable {salt_env} is not set or empty")
        return found
    log.warning("deidentify: no salt_connection/salt_env given; new UIDs are random per run (not reproducible)")
    return os.urandom(32), "random per run"


def check_salt(salt: bytes, source: str) -> None:
    """A salt keys every new UID and date shift: one too short or too plain can be guessed from one known
    (original UID, new UID) pair, which undoes the mapping of every file. Raises naming where it came from."""
    param = "salt_connection" if source.startswith("Airflow connection") else "salt_env"
    if len(salt) < MIN_SALT_LENGTH or len(set(salt)) < MIN_SALT_DISTINCT:
        raise ClaimedError(
            f"{param}: the salt of {source} is too weak ({len(salt)} characters, {len(set(salt))} distinct); "
            f"use at least {MIN_SALT_LENGTH} characters with {MIN_SALT_DISTINCT} distinct ones, e.g. a random "
            "32-character string"
        )


@component("transform", data_parallel=True)
def deidentify(
    files: InputPath,
    metadata: InputPath | None = None,
    salt_connection: str | None = None,
    salt_env: str | None = None,
    keep_patient_sex: bool = False,
    keep_patient_age: bool = False,
    shift_dates: bool = False,
    clean_structured_content: bool = True,
    retain_safe_private: list[str] | None = None,
    burned_in: Literal["reject", "keep", "redact"] = "reject",
    shard_tables: InputPath | None = None,
    shard_index: int | None = None,
    output: OutputPath = "files",
    table: OutputPath = "metadata.parquet",
    report: OutputPath = "deidentification.json",
) -> dict:
    """De-identify DICOM files after the PS3.15 Annex E Basic Application Level Confidentiality Profile.

    Applies every attribute of Table E.1-1 in the newest edition of the standard that dicom-anonymizer
    ships (2026c here): removes, empties or replaces with dummy values the identifying attributes
    (names, IDs, dates, institutions, physicians, comments, ...), curves, overlays, all private tags
    and public tags the DICOM dictionary does not know. Then an allow-list: every other text element
    (VR AE, AS, CS, DA, DS, DT, IS, LO, LT, PN, SH, ST, TM, UC, UR, UT), sequences included, is
    emptied unless its attribute is a safe one (Modality, BodyPartExamined, pixel and acquisition
    description, coded concepts, ...) and its value has its VR's strict form. Structured content
    (Clean Structured Content Option, ``clean_structured_content``): text values emptied, coded
    concepts, numbers and references kept. UIDs quoted inside kept text get the same new UID; the
    128-byte preamble is zeroed and the file meta rebuilt. With ``shift_dates`` the dates of the
    attributes the Modified Dates Option modifies move by a number of days fixed per patient by the
    salt (times kept); birth dates and device dates keep their action (emptied or removed). Every UID
    attribute (by the dictionary's VR, whatever VR the file stored it with) that is not a registered
    UID is replaced by ``2.25.<HMAC-SHA256(salt, value)>``: the same input gets the same new UID,
    within a run and across runs with the same salt. The salt comes from an Airflow connection
    (password or extra ``salt``) or an environment variable, needs 16 characters (8 distinct) and is
    never logged or recorded. Files are written flat as ``<new SOPInstanceUID>.dcm``: a name made by
    us, never from an input value; PatientIdentityRemoved and the De-identification Method codes
    (113100, 113104, 113107, 113108, 113111 as applied) are set. Pixel text is not removed by default: files
    flagged BurnedInAnnotation or RecognizableVisualFeatures YES, and files of a modality (US, SC, OT,
    XC, ES, OP, GM, SM, DOC, XA, RF, IVUS) or SOP class (Secondary Capture, VL, video, ultrasound,
    ophthalmic photography, ...) that often burns text into the pixels unless flagged
    BurnedInAnnotation ``NO``, are set aside with the reason unless ``burned_in="keep"``, or
    ``burned_in="redact"``: the words OCR (Tesseract) finds in each frame are blacked out.

    :param files: Folder of DICOM files (e.g. the ``files`` output of ``input.dicom``), searched recursively.
    :param metadata: Optional metadata table from ``input.dicom``; rewritten with the new file names and UIDs. With
        ``shard_tables`` only its rows of the shard's files are read; without it the shard table's rows are.
    :param salt_connection: Airflow connection whose password (or extra ``salt``) keys the UID replacement.
    :param salt_env: Name of an environment variable holding the salt (no connection given).
    :param keep_patient_sex: Keep PatientSex M, F or O (Retain Patient Characteristics Option) for fairness checks.
    :param keep_patient_age: Keep the age in years (PatientAge ``NNNY``, from 90 on ``090Y``) for fairness checks.
    :param shift_dates: Move the study, series, acquisition and content dates by a per-patient number of days
        (1 to 3652 back) instead of removing them (Retain Longitudinal Temporal Information Modified Dates Option).
    :param clean_structured_content: Keep structured content (SR content items) cleaned: text values emptied,
        coded concepts, numbers and references kept (Clean Structured Content Option). Off: content emptied.
    :param retain_safe_private: Private attributes known to be safe, kept (Retain Safe Private Option), each
        ``"gggg,xxee,CREATOR"`` (e.g. ``"0019,xx0B,GEMS_ACQU_01"``); none by default: every private tag goes.
    :param burned_in: Files that may show identifying text in the pixels: ``reject`` them (set aside, the
        default), ``keep`` them (listed in the report; the pixels are not cleaned) or ``redact`` the text
        that OCR (the ``tesseract`` command) finds in every frame, then keep them (listed, with the number of
        words blacked out; OCR can miss text: review them). Files flagged RecognizableVisualFeatures YES
        are set aside unless ``keep``.
    :param shard_tables: Shard tables of input.dicom: de-identify only the files of shard ``shard_index`` (an
        empty shard, or one whose files are all set aside, writes empty outputs; transform.merge_shards joins them).
    :param shard_index: The shard of ``shard_tables`` to de-identify (0-based); none: every shard, merged.
    :param output: Folder of de-identified files ``<new SOPInstanceUID>.dcm``.
    :param table: Metadata table (Parquet) of the de-identified files: file, UIDs and the kept metadata columns.
    :param report: JSON report: profile, options, salt source (not value), per-file actions, burned-in list and
        ``uids_mapped`` (distinct UIDs replaced; a shard's report also lists its new UIDs, so that the merged
        report counts the distinct ones of all shards).
    """
    import json

    import pydicom

    from claimed_airflow.components.input.dicom import age_in_years, has_dicm_magic
    from claimed_airflow.core.tables import read_table, write_table

    salt, salt_source = read_salt(salt_connection, salt_env)
    check_salt(salt, salt_source)
    worker = Deidentifier(
        salt, keep_patient_sex, keep_patient_age, shift_dates, clean_structured_content, retain_safe_private or ()
    )
    base = Path(files)
    if shard_tables is None:  # (relative name, path) of every file
        found = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        candidates = [(p.name if base.is_file() else p.relative_to(base).as_posix(), p) for p in found]
    else:  # the shard's files only, in the order of the whole folder's listing (never listing the folder)
        from claimed_airflow.core import sharding

        wanted = dict.fromkeys(sharding.files_of(shard_tables, shard_index))
        if base.is_file():
            candidates = [(base.name, base)] if base.name in wanted else []
        else:
            candidates = sorted(((name, base / name) for name in wanted), key=lambda c: c[1])
        sharding.announce("deidentify", shard_index, len(candidates))
    out = Path(output)
    out.mkdir(parents=True)
    done: dict[str, dict] = {}  # original relative name -> new row
    entries, burned, names = [], [], set()
    progress = Progress("deidentify", len(candidates))
    with _quiet_pydicom():
        for number, (relative, path) in enumerate(candidates, 1):
            progress.advance()
            # original names may carry PHI: the log and manifest name a file by position and keyed hash
            item = f"input file {number} of {len(candidates)} (key {new_uid(relative, salt)[5:17]})"
            if path is not base and shard_tables is not None:  # a shard table's name is a table value
                try:
                    inside(base, relative)
                except ClaimedError:  # not quoted: original names may carry PHI
                    reject(item, "leads out of the files folder (absolute, '..' or a link out)")
                    continue
            if not path.is_file():
                reject(item, "file not found in the files folder")
                continue
            if not has_dicm_magic(path):
                reject(item, "not a DICOM file (no DICM magic)")
                continue
            try:
                ds = pydicom.dcmread(path)
                text_risk = burned_in_text(ds)
                actions = worker.apply(ds)
            except Exception as exc:  # noqa: BLE001 - this file is set aside, the batch goes on
                reject(item, f"not de-identifiable ({type(exc).__name__})")
                continue
            name = f"{ds.SOPInstanceUID}.dcm"  # a new 2.25 UID: digits and dots, never an input value
            if not _NAME.fullmatch(name) or (out / name).resolve().parent != out.resolve():
                raise ClaimedError(f"deidentify: internal error, unexpected output name {name!r}")
            if name in names:
                reject(item, f"duplicate SOPInstanceUID: the same instance as {name}, already written")
                continue
            names.add(name)
            redacted = None
            if text_risk and burned_in == "redact" and not text_risk.startswith("Recognizable"):
                try:
                    redacted = redact_text(ds)  # OCR: faces (RecognizableVisualFeatures) are not text
                except ClaimedError:
                    raise
                except Exception as exc:  # noqa: BLE001 - this file is set aside, the batch goes on
                    reject(item, f"{text_risk}: text in the pixels could not be redacted ({type(exc).__name__})")
                    continue
                log.warning("%s: %s; %d word(s) found by OCR blacked out", name, text_risk, redacted)
            elif text_risk:
                if burned_in != "keep":
                    reject(item, f"{text_risk}: pixel data may show identifying text (burned_in='keep' keeps it)")
                    continue
                log.warning("%s: %s; pixel data may show identifying text (not removed)", name, text_risk)
            burned += [name] if text_risk else []
            ds.save_as(out / name, enforce_file_format=True)
            entries.append({"file": name, "burned_in_annotation": bool(text_risk), **actions})
            if redacted is not None:
                entries[-1]["ocr_words_redacted"] = redacted
            done[relative] = {
                "file": name,
                "SOPInstanceUID": str(ds.get("SOPInstanceUID", "")),
                "StudyInstanceUID": str(ds.get("StudyInstanceUID", "")),
                "SeriesInstanceUID": str(ds.get("SeriesInstanceUID", "")),
                # the kept characteristics as written in the file (090Y from 90 on, a defined sex or empty)
                "PatientSex": _text(ds.get("PatientSex") or ""),
                "PatientAge": age_in_years(_text(ds.get("PatientAge") or "") or None),
            }
    if not entries and shard_tables is None:
        raise ClaimedError(f"files: no DICOM file could be de-identified in {files}")
    kept = {"PatientSex"} if keep_patient_sex else set()
    kept |= {"PatientAge"} if keep_patient_age else set()
    if shard_tables is not None:  # the shard's rows only: of metadata, else those its shard table carries
        rows = sharding.rows_of(shard_tables, shard_index, metadata)
    else:
        rows = read_table(metadata, name="metadata") if metadata else None
    frame = _rewrite_metadata(rows, done, worker, kept)

    write_table(frame, table)
    summary = {
        "profile": "DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile",
        "profile_edition": basic_profile()[0],
        "options": {
            "keep_patient_sex": keep_patient_sex,
            "keep_patient_age": keep_patient_age,
            "shift_dates": shift_dates,
            "clean_structured_content": clean_structured_content,
            "retain_safe_private": list(retain_safe_private or []),
            "burned_in": burned_in,
        },
        "salt_source": salt_source,
        "uid_root": UID_ROOT,
        "files": entries,
        "burned_in_annotation": burned,
        "uids_mapped": len(worker.uids),
    }
    if shard_tables is not None:  # shards share studies: the merge counts the distinct new UIDs of all of them
        summary[sharding.DISTINCT] = {"uids_mapped": sorted(worker.uids.values())}
    Path(report).write_text(json.dumps(summary, indent=2))
    return {"files_deidentified": len(entries), "burned_in_annotation": len(burned), "uids_mapped": len(worker.uids)}


def _new(worker: Deidentifier, value):
    return worker.uid(value) if isinstance(value, str) and value and not _registered(value) else value


def _rewrite_metadata(table, done: dict[str, dict], worker: Deidentifier, kept: set[str]):
    """The input metadata with new file names and UIDs; DICOM columns kept by the same rules as the files
    (allow-list; dates moved when ``shift_dates``; kept characteristics as written); or a new table."""
    import pandas as pd

    if table is None:
        return pd.DataFrame(
            [{k: v for k, v in row.items() if k not in _CHARACTERISTICS or k in kept} for row in done.values()]
        )
    require_columns(table, ["file"], param="metadata", hint="; expected the output of input.dicom")
    table = table[table["file"].astype(str).isin(done)].copy()
    rows = [done[str(f)] for f in table["file"]]
    table["file"] = [row["file"] for row in rows]
    patients = table["PatientID"] if "PatientID" in table.columns else [""] * len(table)
    days = [date_shift_days("" if pd.isna(p) else str(p), worker.salt) for p in patients]
    drop = []
    for column in table.columns:
        vr, action = _column_vr(column), _column_action(column)
        if column in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID") or column in kept:
            table[column] = [row[column] for row in rows]
        elif vr is None:  # not a DICOM attribute: file, label, HasPixelData
            continue
        elif vr == "UI" and action in (None, "U"):
            table[column] = [_new(worker, v) for v in table[column]]
        elif worker.shift_dates and vr in ("DA", "DT") and action is not None and column not in NOT_SHIFTED:
            table[column] = [
                "" if pd.isna(v) else shift_date(str(v), vr, d) for v, d in zip(table[column], days, strict=True)
            ]
        elif action is None and (vr not in TEXT_VRS or column in SAFE_ATTRIBUTES):
            strict = _STRICT.get(vr)
            if strict is not None and table[column].dtype == object:
                table[column] = [v if pd.isna(v) or strict.fullmatch(str(v)) else "" for v in table[column]]
        else:
            drop.append(column)
    return table.drop(columns=drop)


_CHARACTERISTICS = ("PatientSex", "PatientAge")


def _column_vr(column: str) -> str | None:
    """The dictionary VR of a metadata column named after a DICOM keyword (None for other columns)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(str(column))
    return dictionary_vr(tag) if tag is not None else None


def _column_action(column: str) -> str | None:
    """The profile action of a metadata column named after a DICOM keyword (None for other columns)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(str(column))
    return profile_action(tag) if tag is not None else None
