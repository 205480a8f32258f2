"""PACS access: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE).

Used by the PACS hooks (which turn an Airflow connection into a server) and by the components
(through :mod:`claimed_airflow.components._pacs`, which passes the hooks as connection readers), so
this package imports neither. Modules: :mod:`.servers` (servers, credentials bound to their origin,
hosts by allow-list), :mod:`.query` (queries and source URIs), :mod:`.dicomweb`, :mod:`.dimse`,
:mod:`.transfer` (a retrieval into a private folder).

Source URIs (``input.dicom`` and the flagship's ``dicom_source``)::

    dicomweb://<conn_id>?modality=CR&study_date=20200101-20201231
    dicomweb+https://host/dicom-web?level=instance&AccessionNumber=A123   (host in allowed_hosts)
    dicom://<conn_id>?modality=MR               dicom://PACS_AET@host:104?patient_id=P1

Instances are written as ``<sha256(SOPInstanceUID)[:32]>.dcm`` (never the UID itself as a path).
No heavy import at module level: pydicom, pynetdicom, requests and dicomweb-client load when used.
"""
