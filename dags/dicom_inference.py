"""
### DICOM inference

Production inference, run once per arriving study (the listener, `claimed-airflow listen`, or a PACS
watcher starts it with `study_instance_uid`, `source` and `arrived_at` in the run's conf). One task,
**study** (`predict.study`), runs the steps in one process, each the library component of its job with
its own folder and manifest (`<output root>/dicom_inference/<run>/study/<step>/manifest.json`): a task per
step cost a process start and the same imports again per step, most of a study's latency.

1. **resolve_model** pins the deployed model of the `model` param for this run: `chestxray_mobilenet_v2`
   (the newest version that `dicom_to_deployment` deployed to the model store `<output root>/models`),
   `chestxray_mobilenet_v2@3` (a pinned version), `kserve://<conn_id>/<model name>` (an Open Inference
   Protocol endpoint) or `watsonml://<conn_id>/<deployment id>?labels=chestxray_mobilenet_v2@3`,
2. **retrieve** fetches the study from `source` (QIDO-RS/WADO-RS, or C-FIND/C-GET for `dicom://`; a
   folder the listener landed it in); truncated or unreadable instances are set aside,
3. **select_series** keeps the series the model is for (`modalities`, `body_parts`, `sop_classes`,
   `series_description`); instances that are not images (an SR, ...) are set aside with their SOP class
   named; when nothing matches, the run ends here with a one-line reason and nothing is stored,
4. **dicom_to_images** decodes them at the model's image size, **predict** scores every image,
5. **dicom_results** writes one Comprehensive SR (TID 1500) per image, linked to its source image, and
   stores it in `destination` (default: back where the study came from); its UIDs derive from the
   source instance, the model and its version, so a retried run replaces its SRs instead of adding more,
6. **prediction_log** writes one row per image to `<output root>/prediction_log` (Parquet, one file per
   study and model version: a repeated run replaces its rows), once the SRs are stored,
7. **notify**: with `notify_to`, an e-mail (connection `smtp_default`) when the probability of `finding`
   reaches `notify_threshold` for an image.
"""

from __future__ import annotations

import re
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from claimed_airflow.operators import StudyPredictOperator

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
_UID = re.compile(UID_PATTERN)
_CONN = re.compile(r"^[A-Za-z0-9_.-]+$")
_PACS_SCHEMES = ("dicomweb://", "dicomweb+http://", "dicomweb+https://", "dicom://")


def check_uid(uid: str) -> str:
    """``uid`` when it is a DICOM UID (digits and dots, at most 64 characters); else one line naming it."""
    if not isinstance(uid, str) or len(uid) > 64 or not _UID.match(uid):
        raise ValueError(f"study_instance_uid: {str(uid)[:80]!r} is not a DICOM UID (digits and dots, at most 64)")
    return uid


def _is_pacs(source: str) -> bool:
    return source.lower().startswith(_PACS_SCHEMES)


def study_source(source: str, uid: str) -> str:
    """input.dicom's source for one study: a PACS query for ``uid``, or the folder/URI the study landed in."""
    check_uid(uid)
    source = source.strip()
    if _CONN.match(source):  # a DICOMweb connection id
        source = f"dicomweb://{source}"
    if not _is_pacs(source):
        return source  # a folder or object-storage prefix holding the study (the listener's landing area)
    return f"{source}{'&' if '?' in source else '?'}level=study&StudyInstanceUID={uid}"


def study_destination(destination: str, source: str) -> str:
    """Where the SRs go: ``destination``; empty: the PACS of ``source`` (none for a folder); ``none``: not stored."""
    destination, source = destination.strip(), source.strip()
    if destination.lower() == "none":
        return ""
    if destination:
        return destination
    if _CONN.match(source):
        return f"dicomweb://{source}"
    return source.split("?", 1)[0] if _is_pacs(source) else ""


with DAG(
    dag_id="dicom_inference",
    description="Each arriving study read by the deployed model; SR back to the PACS, a row per image logged.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=8,
    tags=["claimed", "dicom", "inference"],
    default_args={"owner": "claimed", "engine": "{{ params.engine }}"},
    user_defined_macros={"study_source": study_source, "study_destination": study_destination},
    params={
        "engine": Param(
            "default",
            type="string",
            enum=["default", "local", "kubernetes"],
            description="Where tasks run; default: Variable claimed_engine / [claimed] engine / local.",
        ),
        "study_instance_uid": Param(
            "0",
            type="string",
            pattern=UID_PATTERN,
            maxLength=64,
            description="StudyInstanceUID of the study to read (digits and dots, at most 64 characters).",
        ),
        "source": Param(
            "dicomweb_default",
            type="string",
            description="Where the study is: a DICOMweb connection id, dicomweb://<conn>, dicom://<conn> (C-FIND/"
            "C-GET), dicomweb+https://host/dicom-web, or a folder/URI the listener landed it in.",
        ),
        "model": Param(
            "chestxray_mobilenet_v2",
            type="string",
            description="The deployed model: <name> (newest version in the model store), <name>@<version>, "
            "kserve://<conn_id>/<model name> or watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>].",
        ),
        "destination": Param(
            "",
            type="string",
            description="Store the SRs here: dicomweb://<conn> or dicom://<conn>; empty: back to the source PACS "
            "(not stored for a folder source); none: not stored.",
        ),
        "modalities": Param(
            ["CR", "DX"], type="array", items={"type": "string"}, description="Series rule: modalities; empty: any."
        ),
        "body_parts": Param(
            [], type="array", items={"type": "string"}, description="Series rule: BodyPartExamined; empty: any."
        ),
        "sop_classes": Param(
            [], type="array", items={"type": "string"}, description="Series rule: SOP Class UIDs; empty: any image."
        ),
        "series_description": Param(
            "", type="string", description="Series rule: shell pattern over SeriesDescription; empty: any."
        ),
        "finding": Param("COVID-19", type="string", description="The class whose probability is a finding."),
        "notify_threshold": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="A finding: an image whose probability of `finding` is at least this.",
        ),
        "notify_to": Param(
            [],
            type="array",
            items={"type": "string"},
            description="E-mail these addresses when the study has a finding (connection smtp_default); empty: none.",
        ),
        "arrived_at": Param(
            "", type="string", description="When the study arrived (ISO 8601; set by the listener); logged."
        ),
    },
) as dag:
    StudyPredictOperator(
        task_id="study",
        source="{{ study_source(params.source, params.study_instance_uid) }}",
        model="{{ params.model }}",
        study_instance_uid="{{ params.study_instance_uid }}",
        modalities="{{ params.modalities }}",
        body_parts="{{ params.body_parts }}",
        sop_classes="{{ params.sop_classes }}",
        series_description="{{ params.series_description }}",
        destination="{{ study_destination(params.destination, params.source) }}",
        finding="{{ params.finding }}",
        threshold="{{ params.notify_threshold }}",
        arrived_at="{{ params.arrived_at }}",
        started_at="{{ dag_run.start_date.isoformat() if dag_run.start_date else '' }}",
        run_id="{{ run_id }}",
        notify_to="{{ params.notify_to }}",
        notify_title="dicom_inference {{ run_id }}",
    )
