"""A hostile de-identification corpus: identifying values planted everywhere a DICOM file can hold them.

``build(folder)`` writes the files and returns ``{where: value}``, every planted value (each unique, so a value
found in any byte of any output is a leak). Needs only pydicom: the tool benchmark runs it in other
environments. Where the values go: every text VR (AE AS CS DA DS DT IS LO LT PN SH ST TM UC UR UT), both in
attributes of PS3.15 Table E.1-1 and in attributes the table does not list, at the top level and inside
sequences; a Basic Text SR (text content items, document title, contact name, a RetrieveURL with the original
StudyInstanceUID); private tags (also a private sequence); the 128-byte preamble; the file meta; device and
patient dates; a 95-year-old's age and dates; original UIDs; the pixel data of images that may show burned-in
text (the bytes of a name stand for text in the pixels: a tool that copies those pixels leaks it).
"""

from __future__ import annotations

from pathlib import Path

CT = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
US = "1.2.840.10008.5.1.4.1.1.6.1"
VIDEO_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
VIDEO_ENDOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
OPHTHALMIC_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
ROOT = "1.2.826.0.1.3680043.10.4711"  # original UIDs: each one planted too (it links back to the hospital's PACS)


def _dataset(planted: dict, name: str, sop_class: str, modality: str | None, number: int, pixels: bytes = b""):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = f"{ROOT}.3.{number}.0"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationVersionName = _plant(
        planted, f"{name}: file meta ImplementationVersionName", f"JSW{number:02d}SMITH"
    )
    ds.file_meta.SourceApplicationEntityTitle = _plant(planted, f"{name}: file meta SourceAET", f"AE{number:02d}SMITH")
    ds.preamble = _plant(planted, f"{name}: preamble", f"JOHN SMITHSON PRE{number:02d}X").encode().ljust(128, b"\0")
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _plant(planted, f"{name}: SOPInstanceUID", f"{ROOT}.3.{number}.0")
    ds.StudyInstanceUID = _plant(planted, "StudyInstanceUID", f"{ROOT}.1")
    ds.SeriesInstanceUID = _plant(planted, f"{name}: SeriesInstanceUID", f"{ROOT}.2.{number}.0")
    ds.PatientName = _plant(planted, "PatientName", "Smithson^Rowan")
    ds.PatientID = _plant(planted, "PatientID", "MRN884711")
    ds.PatientBirthDate = _plant(planted, "PatientBirthDate", "19310214")
    ds.PatientSex = "M"
    ds.StudyDate = _plant(planted, "StudyDate", "20260117")
    ds.StudyTime = "101500"
    ds.AccessionNumber = _plant(planted, "AccessionNumber", "ACC7734711")
    ds.InstitutionName = _plant(planted, "InstitutionName", "Saint Smithson Hospital")
    ds.ReferringPhysicianName = _plant(planted, "ReferringPhysicianName", "Welbyson^Marcus")
    ds.StudyID = _plant(planted, "StudyID", "STU4711")
    ds.SeriesNumber = "1"
    ds.InstanceNumber = str(number)
    if modality:
        ds.Modality = modality
    if pixels:
        ds.Rows, ds.Columns = 16, 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.ljust(256, b"\0")
    return ds


def _plant(planted: dict, where: str, value: str) -> str:
    planted[where] = value
    return value


def _everywhere(planted: dict):
    """A CT with a value in every text VR, in table and non-table attributes, sequences and private tags."""
    from pydicom.dataset import Dataset

    ds = _dataset(planted, "ct", CT, "CT", 1, b"")
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b"\0" * 512
    ds.BurnedInAnnotation = "NO"
    p = planted
    # attributes the table lists
    ds.OtherPatientNames = _plant(p, "OtherPatientNames (PN, table)", "Smithson^Ada")
    ds.PatientAddress = _plant(p, "PatientAddress (LO, table)", "12 Smithson Lane, Springfield")
    ds.PatientTelephoneNumbers = _plant(p, "PatientTelephoneNumbers (SH, table)", "555-4711-99")
    ds.StationName = _plant(p, "StationName (SH, table)", "SMITHCT01")
    ds.DeviceSerialNumber = _plant(p, "DeviceSerialNumber (LO, table)", "SN-47114711")
    ds.StudyDescription = _plant(p, "StudyDescription (LO, table)", "CT chest for Rowan Smithson")
    ds.ImageComments = _plant(p, "ImageComments (LT, table)", "patient Smithson moved")
    ds.PatientAge = _plant(p, "PatientAge (AS, table)", "095Y")
    ds.PatientWeight = _plant(p, "PatientWeight (DS, table)", "81.4711")
    ds.AdditionalPatientHistory = _plant(p, "AdditionalPatientHistory (LT, table)", "Smithson family history")
    ds.StationAETitle = _plant(p, "StationAETitle (AE, table)", "SMITHSONAE")
    ds.InstanceCreationDate = _plant(p, "InstanceCreationDate (DA, table)", "20260118")
    ds.AcquisitionDateTime = _plant(p, "AcquisitionDateTime (DT, table)", "20260116093412")
    ds.AcquisitionTime = _plant(p, "AcquisitionTime (TM, table)", "093413")
    ds.DateOfLastCalibration = _plant(p, "DateOfLastCalibration (device date)", "20250611")
    ds.DateOfManufacture = _plant(p, "DateOfManufacture (device date)", "20190309")
    # attributes the table does not list: one per text VR
    # AE without an action exist only in the file meta and command groups
    ds.file_meta.ReceivingApplicationEntityTitle = _plant(p, "file meta ReceivingAET (AE, no action)", "SMITHMOVE")
    ds.SeriesType = _plant(p, "SeriesType (CS, no action)", "SMITHSERIES")
    ds.SecondaryReviewDate = _plant(p, "SecondaryReviewDate (DA, no action)", "20260120")
    ds.PatientBodyMassIndex = _plant(p, "PatientBodyMassIndex (DS, no action)", "4711.0815")
    ds.ExpirationDateTime = _plant(p, "ExpirationDateTime (DT, no action)", "20310117114711")
    ds.StageNumber = _plant(p, "StageNumber (IS, no action)", "7730219")
    ds.PatientBirthDateInAlternativeCalendar = _plant(p, "BirthDateInAlternativeCalendar (LO)", "5691-11-14")
    ds.PatientSpeciesDescription = _plant(p, "PatientSpeciesDescription (LO, no action)", "Rowena Smithfield")
    ds.DetectorDescription = _plant(p, "DetectorDescription (LT, no action)", "Smithson wing detector")
    ds.SequenceName = _plant(p, "SequenceName (SH, no action)", "SEQSMITH")
    ds.EvaluatorName = _plant(p, "EvaluatorName (PN, no action)", "Evalson^Eve")
    ds.PartialViewDescription = _plant(p, "PartialViewDescription (ST, no action)", "view of Smithson")
    ds.SecondaryReviewTime = _plant(p, "SecondaryReviewTime (TM, no action)", "174711")
    ds.StrainDescription = _plant(p, "StrainDescription (UC, no action)", "Smithson strain")
    ds.RetrieveURL = _plant(
        p, "RetrieveURL (UR) with the original StudyInstanceUID", f"https://pacs.smithson.example/wado?s={ROOT}.1"
    )
    ds.ProtocolDesignRationale = _plant(p, "ProtocolDesignRationale (UT, no action)", "requested by Dr Welbyson")
    # inside sequences: a table attribute and non-table text, two levels deep
    request = Dataset()
    request.RequestedProcedureID = _plant(p, "RequestAttributesSequence > RequestedProcedureID", "RP-4711")
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "T-D3000", "SRT", "Chest"
    inner.ExtendedCodeValue = _plant(p, "sequence > sequence > ExtendedCodeValue (LO)", "SMITHCODE")
    region = Dataset()
    region.AnatomicRegionModifierSequence = [inner]
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-D3000", "SRT", "Chest"
    region.MappingResourceName = _plant(p, "AnatomicRegionSequence > MappingResourceName (LO)", "Smithson map")
    ds.AnatomicRegionSequence = [region]
    ds.RequestAttributesSequence = [request]
    reference = Dataset()
    reference.ReferencedSOPClassUID = CT
    reference.ReferencedSOPInstanceUID = _plant(p, "ReferencedImageSequence > original UID", f"{ROOT}.3.99")
    reference.PurposeOfReferenceCodeSequence = []
    reference.InterventionDescription = _plant(p, "ReferencedImageSequence > InterventionDescription", "Smithson stent")
    ds.ReferencedImageSequence = [reference]
    # private tags, a private sequence, an unknown public tag
    block = ds.private_block(0x0019, "SMITH_PRIVATE", create=True)
    block.add_new(0x10, "LO", _plant(p, "private LO", "PRIVSMITH4711"))
    nested = Dataset()
    nested.add_new(0x00291010, "LO", "SMITH_PRIVATE")
    nested.add_new(0x00291011, "LO", _plant(p, "private sequence > private LO", "PRIVNESTED4711"))
    block.add_new(0x11, "SQ", [nested])
    ds.add_new(0x00731234, "LO", _plant(p, "unknown public tag", "UNKNOWNSMITH"))
    ds.add_new(0x60004000, "LT", _plant(p, "overlay comment", "overlay Smithson"))
    return ds


def _report(planted: dict):
    """A Basic Text SR: the report text in content items, a person, a date, a UID reference."""
    from pydicom.dataset import Dataset

    ds = _dataset(planted, "sr", BASIC_TEXT_SR, "SR", 2)
    p = planted

    def code(value: str, scheme: str, meaning: str) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        return item

    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ContentDate = _plant(p, "SR ContentDate", "20260119")
    ds.ContentTime = "120000"
    ds.DocumentTitle = _plant(p, "SR DocumentTitle (ST)", "Report for Rowan Smithson")
    findings = Dataset()
    findings.RelationshipType, findings.ValueType = "CONTAINS", "TEXT"
    findings.ConceptNameCodeSequence = [code("121071", "DCM", "Finding")]
    findings.TextValue = _plant(p, "SR TextValue", "Findings for Jon Smithsen (MRN5550123): no acute disease")
    observer = Dataset()
    observer.RelationshipType, observer.ValueType = "HAS OBS CONTEXT", "PNAME"
    observer.ConceptNameCodeSequence = [code("121008", "DCM", "Person Observer Name")]
    observer.PersonName = _plant(p, "SR content PersonName", "Radson^Rita")
    when = Dataset()
    when.RelationshipType, when.ValueType = "CONTAINS", "DATETIME"
    when.ConceptNameCodeSequence = [code("111526", "DCM", "DateTime Started")]
    when.DateTime = _plant(p, "SR content DateTime", "20260115084711")
    diagnosis = Dataset()
    diagnosis.RelationshipType, diagnosis.ValueType = "CONTAINS", "CODE"
    diagnosis.ConceptNameCodeSequence = [code("121071", "DCM", "Finding")]
    diagnosis.ConceptCodeSequence = [code("233604007", "SCT", "Pneumonia")]  # a coded concept: kept by design
    study = Dataset()
    study.RelationshipType, study.ValueType = "CONTAINS", "UIDREF"
    study.ConceptNameCodeSequence = [code("110180", "DCM", "Study Instance UID")]
    study.UID = _plant(p, "SR content UIDREF", f"{ROOT}.5.7")
    ds.ContentSequence = [findings, observer, when, diagnosis, study]
    ds.ContactDisplayName = _plant(p, "ContactDisplayName (LO)", "Rowan Smithson (daughter)")
    ds.RetrieveURL = _plant(p, "SR RetrieveURL", f"https://pacs.smithson.example/studies/{ROOT}.1/x")
    return ds


def build(folder: Path) -> dict[str, str]:
    """Writes the corpus into ``folder`` (created); returns {where: planted value}."""
    import warnings

    from pydicom import config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    planted: dict[str, str] = {}
    files = {"John_Smithson_MRN884711_ct.dcm": _everywhere(planted), "report_smithson.dcm": _report(planted)}
    # images that may show text in the pixels; the pixel bytes carry a name as burned-in text would
    burned = {
        "us_unknown.dcm": (US, "US", "UNKNOWN"),
        "us_n.dcm": (US, "US", "N"),
        "us_unflagged.dcm": (US, "US", None),
        "video_photographic.dcm": (VIDEO_PHOTOGRAPHIC, None, None),
        "video_endoscopic.dcm": (VIDEO_ENDOSCOPIC, None, None),
        "ultrasound_no_modality.dcm": (US, None, None),
        "ophthalmic_photo.dcm": (OPHTHALMIC_8BIT, "OP", None),
        "flagged_yes.dcm": (CT, "CT", "YES"),
    }
    for number, (name, (sop_class, modality, flag)) in enumerate(burned.items(), 10):
        text = _plant(planted, f"{name}: pixel text", f"BURNED IN SMITHSON {number}")
        ds = _dataset(planted, name, sop_class, modality, number, text.encode())
        if flag:
            ds.BurnedInAnnotation = flag
        files[name] = ds
    with warnings.catch_warnings():  # pydicom warns about the hostile values it is asked to write
        warnings.simplefilter("ignore")
        before = config.settings.writing_validation_mode
        config.settings.writing_validation_mode = config.IGNORE
        try:
            for name, ds in files.items():
                ds.save_as(folder / name, enforce_file_format=True)
        finally:
            config.settings.writing_validation_mode = before
    return planted


CATEGORIES = (
    ("pixel text", "pixels of images that may show text"),
    ("preamble", "128-byte preamble"),
    ("file meta", "file meta (group 0002)"),
    ("SR ", "structured report content"),
    ("ContactDisplayName", "structured report content"),
    ("private", "private tags"),
    ("unknown public", "unknown public tag, overlay"),
    ("overlay", "unknown public tag, overlay"),
    (">", "inside sequences"),
    ("URL", "URLs, original UIDs"),
    ("UID", "URLs, original UIDs"),
    ("device date", "device dates"),
    ("no action", "text VRs the table does not list"),
    ("table", "text VRs the table lists"),
)


def category(where: str) -> str:
    """The kind of place a planted value is at (for the benchmark's table)."""
    return next((name for key, name in CATEGORIES if key in where), "patient and study attributes")


def overlaps(planted: dict[str, str]) -> list[tuple[str, str]]:
    """(a, b) where the value planted at a is part of the value at b (case-insensitive): a leak of b would
    count a twice. Only the original StudyInstanceUID inside the URLs that quote it should be here."""
    return [(a, b) for a, x in planted.items() for b, y in planted.items() if a != b and x.upper() in y.upper()]


def leaks(planted: dict[str, str], blobs: list[bytes]) -> dict[str, str]:
    """The planted values found (as written, or upper-cased) in any of ``blobs``."""
    found = {}
    for where, value in planted.items():
        forms = {value.encode(), value.upper().encode(), value.encode("utf-16-le")}
        if any(form in blob for form in forms for blob in blobs):
            found[where] = value
    return found


if __name__ == "__main__":  # python corpus.py FOLDER: write the corpus there, print what was planted
    import json
    import sys

    print(json.dumps(build(Path(sys.argv[1])), indent=2))
