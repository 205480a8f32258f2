"""A small study (chest phantoms of the bundled sample made one study), a non-image SR, a deployed tiny model."""

from __future__ import annotations

from pathlib import Path

from tests.tiny_model import make_onnx_model_folder

PHANTOMS = Path(__file__).resolve().parents[1] / "dags" / "sample_data" / "chestxray_phantoms" / "dicom"
STUDY_ROOT = "1.2.826.0.1.3680043.8.498.77"  # a test prefix: UIDs below it are made up here
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def make_study(folder: Path, count: int = 3, number: int = 1) -> tuple[str, list[Path]]:
    """``count`` phantom images rewritten as one CR study (one series); (StudyInstanceUID, files)."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    study = f"{STUDY_ROOT}.{number}"
    files = []
    for i, source in enumerate(sorted(PHANTOMS.glob("*.dcm"))[:count]):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.{i + 1}"
        ds.BodyPartExamined = "CHEST"
        path = folder / f"image{i + 1}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return study, files


def make_text_sr(folder: Path, study: str) -> Path:
    """A Basic Text SR (no pixel data) in ``study``: a non-image instance a model cannot read."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = BASIC_TEXT_SR, f"{study}.2.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = BASIC_TEXT_SR, f"{study}.2.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.2"
    ds.Modality, ds.PatientID, ds.PatientName = "SR", "TEST", "Test^Patient"
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    path = folder / "report.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def deploy_tiny(models_root: Path, name: str = "tiny", versions: int = 1) -> Path:
    """The tiny ONNX classifier (bright/dark) published as versions 1..n of ``name``, as deploy.local does."""
    for version in range(1, versions + 1):
        make_onnx_model_folder(models_root / name / str(version))
    return models_root / name
