"""Searches: the query of a component or of a source URI (``dicomweb://<conn>?modality=CR``); instances."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.pacs.servers import check_allowed, origin, parse_address

log = logging.getLogger("claimed_airflow")


WEB_SCHEMES = ("dicomweb", "dicomweb+http", "dicomweb+https")


SCHEMES = (*WEB_SCHEMES, "dicom")


LEVELS = ("study", "series", "instance")


MAX_INSTANCES = 100_000  # instances of one retrieval unless max_instances says otherwise


NAMED_FILTERS = {
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "study_date": "StudyDate",
    "accession_number": "AccessionNumber",
    "patient_id": "PatientID",
}


STUDY_KEYS = ("StudyInstanceUID",)


SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID")


INSTANCE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


_UID = re.compile(r"[0-9]{1,64}(\.[0-9]{1,64}){0,63}")


_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$|^[0-9A-Fa-f]{8}$")


def is_pacs_uri(uri: str) -> bool:
    return "://" in uri and uri.split("://", 1)[0].lower() in SCHEMES


def instance_file(sop_instance_uid: str) -> str:
    """The file name of an instance: a hash of its UID (UIDs from a server never become paths)."""
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:32] + ".dcm"


@dataclass
class Query:
    """A search: the level it runs at and DICOM keyword -> value filters (wildcards, ranges as in PS3.4 C.2)."""

    level: str = "series"
    filters: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


def make_query(
    level: str = "series",
    modality: str | None = None,
    body_part: str | None = None,
    study_date: str | None = None,
    accession_number: str | None = None,
    patient_id: str | None = None,
    filters: dict | None = None,
    limit: int | None = None,
) -> Query:
    """A :class:`Query` from the components' named filters plus any attribute (keyword or 8-hex tag)."""
    if level not in LEVELS:
        raise ClaimedError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    named = {
        "modality": modality,
        "body_part": body_part,
        "study_date": study_date,
        "accession_number": accession_number,
        "patient_id": patient_id,
    }
    values = {NAMED_FILTERS[k]: v for k, v in named.items() if v not in (None, "")}
    for key, value in (filters or {}).items():
        if not _KEYWORD.match(str(key)):
            raise ClaimedError(f"filters: {key!r} is not a DICOM keyword or tag")
        if isinstance(value, (dict, list)):
            raise ClaimedError(f"filters: the value of {key} must be a string, got {value!r}")
        values[str(key)] = str(value)
    if study_date and not re.fullmatch(r"\d{8}(-\d{8})?|-\d{8}|\d{8}-", study_date.strip()):
        raise ClaimedError(f"study_date: expected YYYYMMDD or a range YYYYMMDD-YYYYMMDD, got {study_date!r}")
    if level == "study" and "BodyPartExamined" in values:
        raise ClaimedError("body_part: BodyPartExamined is a series attribute; search at level series or instance")
    if level == "study" and "Modality" in values:
        values["ModalitiesInStudy"] = values.pop("Modality")
    if limit is not None and limit < 1:
        raise ClaimedError(f"max_instances: must be positive, got {limit}")
    return Query(level=level, filters=values, limit=limit)


def parse_source(uri: str, param: str = "source") -> tuple[str, str | None, str | None, Query, dict]:
    """``(protocol, conn_id, url_or_address, query, options)`` of a PACS source URI (see the module doc).

    A URI naming a host instead of a connection id must name one of :func:`allowed_hosts`.
    Query keys: ``level``, the named filters (``modality``, ``body_part``, ``study_date``,
    ``accession_number``, ``patient_id``), ``max_instances``, ``concurrency``, ``transfer_syntax``,
    ``calling_ae_title``, and any DICOM keyword (``SeriesDescription=CHEST*``).
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ClaimedError(f"source: {uri!r} is not a dicomweb://, dicomweb+http(s):// or dicom:// URI")
    if "@" in parts.netloc and scheme != "dicom":
        raise ClaimedError("source: put credentials in an Airflow connection, not in the URI")
    params = dict(parse_qsl(parts.query, keep_blank_values=False))
    options = {k: params.pop(k) for k in ("concurrency", "transfer_syntax", "calling_ae_title") if k in params}
    level = params.pop("level", "series")
    limit = params.pop("max_instances", None)
    named = {k: params.pop(k) for k in list(params) if k in NAMED_FILTERS}
    try:
        limit_value = int(limit) if limit else None
    except ValueError:
        raise ClaimedError(f"source: max_instances={limit!r} is not a number") from None
    query = make_query(level=level, filters=params, limit=limit_value, **named)
    if scheme == "dicomweb":
        if not parts.netloc or parts.path.strip("/"):
            raise ClaimedError(f"source: {uri!r}: expected dicomweb://<connection id>?<filters>")
        return "dicomweb", parts.netloc, None, query, options
    if scheme.startswith("dicomweb+"):
        url = f"{scheme.split('+', 1)[1]}://{parts.netloc}{parts.path}"
        check_allowed("dicomweb", parts.hostname or "", origin(url)[2], uri, param)
        return "dicomweb", None, url, query, options
    if "@" in parts.netloc:
        peer = parse_address(parts.netloc)
        check_allowed("dicom", peer.host, peer.port, uri, param)
        return "dicom", None, parts.netloc, query, options
    return "dicom", parts.netloc or None, None, query, options


@dataclass(frozen=True)
class Instance:
    study: str
    series: str
    sop: str
    sop_class: str = ""

    @property
    def file(self) -> str:
        return instance_file(self.sop)
