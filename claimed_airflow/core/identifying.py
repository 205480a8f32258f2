"""Identifying values (patient identifiers used as query filters) kept out of logs and manifests.

Query values are shown by allow-list: only attributes that identify no one (modality, body part,
dates, ...) keep their value; any other (PatientID, PatientName, AccessionNumber, ...) becomes ``***``.
"""

from __future__ import annotations

from typing import Any

HIDDEN = "***"
# query attributes whose values identify no one
SHOWN = frozenset(
    {
        "Modality",
        "ModalitiesInStudy",
        "BodyPartExamined",
        "StudyDate",
        "SeriesDate",
        "StudyTime",
        "SeriesTime",
        "SOPClassUID",
        "SOPClassesInStudy",
        "SeriesNumber",
        "InstanceNumber",
        "QueryRetrieveLevel",
    }
)
# component parameters that hold identifying values (input.dicomweb, input.dicom_network)
PARAMETERS = frozenset({"patient_id", "accession_number"})


def redact_query(filters: dict) -> dict:
    """``filters`` (DICOM keyword -> value) with the value of every attribute not in ``SHOWN`` hidden."""
    return {key: value if key in SHOWN else HIDDEN for key, value in filters.items()}


def redact_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """Component parameters for logs and manifests: identifying ones hidden, ``filters`` by :func:`redact_query`."""
    shown = {}
    for name, value in values.items():
        if name in PARAMETERS and value not in (None, ""):
            value = HIDDEN
        elif name == "filters" and isinstance(value, dict):
            value = redact_query(value)
        shown[name] = value
    return shown
