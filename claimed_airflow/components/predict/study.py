"""Read one study with the deployed model in one task: the inference steps run in sequence in one process."""

from __future__ import annotations

from claimed_airflow.core import component


@component("predict", gate=True)
def study(
    source: str,
    model: str,
    models_root: str | None = None,
    study_instance_uid: str = "",
    modalities: list[str] | None = None,
    body_parts: list[str] | None = None,
    sop_classes: list[str] | None = None,
    series_description: str = "",
    destination: str | None = None,
    finding: str = "",
    threshold: float = 0.5,
    arrived_at: str | None = None,
    started_at: str | None = None,
    run_id: str = "",
    log_root: str | None = None,
    notify_to: list[str] | None = None,
    notify_conn_id: str = "smtp_default",
    notify_title: str = "predict.study",
) -> dict:
    """Read one study with the deployed model and store the result: every step of production inference in one task.

    The steps run in this process in order, each one the library component of the same job with its own
    folder and manifest under this task's (``<task>/<step>/manifest.json``): ``resolve_model``
    (predict.resolve_model: the model version for the whole run), ``retrieve`` (input.dicom: truncated or
    unreadable instances set aside), ``select_series`` (filter.series: when no series matches, the run ends
    here with a one-line ``reason``, nothing stored, the gate false), ``dicom_to_images``, ``predict``
    (predict.deployed), ``dicom_results`` (output.dicom: one Comprehensive SR per image, UIDs derived from
    the source and the model version, stored in ``destination``), ``prediction_log`` (output.prediction_log,
    after the SRs are stored) and, when ``notify_to`` is given and ``finding`` reaches ``threshold`` for an
    image, ``notify`` (monitoring.notification_email). One task instead of one per step saves a process
    start and the imports per step. The XCom has the outcome and ``seconds`` (each step's).

    :param source: The study for input.dicom: a PACS query (``dicomweb://<conn>?level=study&StudyInstanceUID=...``,
        ``dicom://...``) or the folder/URI it landed in.
    :param model: The deployed model, as for predict.deployed: ``<name>``, ``<name>@<version>``,
        ``kserve://<conn_id>/<model name>`` or ``watsonml://<conn_id>/<deployment id>?labels=<name>[@<version>]``.
    :param models_root: Model store folder or URI; default ``<output root>/models``.
    :param study_instance_uid: Keep only this study's instances (filter.series); empty: every study of the source.
    :param modalities: Series rule: modalities, e.g. ``["CR", "DX"]``; empty: any.
    :param body_parts: Series rule: BodyPartExamined values; empty: any.
    :param sop_classes: Series rule: SOP Class UIDs; empty: any image.
    :param series_description: Series rule: shell pattern over SeriesDescription; empty: any.
    :param destination: Store the SRs in this PACS (dicomweb://<conn>, dicom://<conn>, ...); empty: not stored.
    :param finding: A class whose probability is a finding (e.g. ``COVID-19``); empty: none.
    :param threshold: A probability of ``finding`` at least this counts as a finding.
    :param arrived_at: When the study arrived (ISO 8601), logged.
    :param started_at: When the run started (ISO 8601), logged.
    :param run_id: The run, logged with each row.
    :param log_root: Root of the prediction log; default the output root.
    :param notify_to: E-mail these addresses when the study has a finding; empty: none.
    :param notify_conn_id: Airflow connection (type smtp) of the e-mail.
    :param notify_title: What the e-mail is about, e.g. ``dicom_inference {{ run_id }}``.
    """
    import time

    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.core.runner import run_step

    seconds: dict[str, float] = {}  # each step's, in the task's XCom and manifest

    def step(name: str, component: str, arguments: dict) -> dict:
        started = time.monotonic()
        try:
            return run_step(name, component, arguments)
        except ClaimedError as exc:  # one line that names the step
            raise ClaimedError(f"{name}: {exc}") from None
        finally:
            seconds[name] = round(time.monotonic() - started, 3)

    resolved = step("resolve_model", "predict.resolve_model", {"model": model, "models_root": models_root})
    read = step("retrieve", "input.dicom", {"source": source})
    rules = {
        "modalities": modalities,
        "body_parts": body_parts,
        "sop_classes": sop_classes,
        "series_description": series_description,
        "study_instance_uid": study_instance_uid,
    }
    chosen = step("select_series", "filter.series", {"metadata": read["metadata"], **rules})
    result = {
        "blessed": chosen["blessed"],
        "reason": chosen["reason"],
        "model": resolved["model"],
        "model_version": resolved["model_version"],
        "seconds": seconds,
    }
    if not chosen["blessed"]:
        return result  # filter.series said why in one line; nothing is predicted or stored
    images = step(
        "dicom_to_images",
        "transform.dicom_to_images",
        {"metadata": chosen["selected"], "files": read["files"], "size": resolved["image_size"]},
    )
    arguments = {"images": images["images"], "model": resolved["model"], "models_root": models_root}
    scored = step("predict", "predict.deployed", {**arguments, "finding": finding, "threshold": threshold})
    arguments = {"predictions": scored["predictions"], "files": read["files"], "kind": "sr"}
    arguments.update(model_name=scored["model_label"], destination=destination or None)
    written = step("dicom_results", "output.dicom", arguments)
    arguments = {"predictions": scored["predictions"], "arrived_at": arrived_at, "started_at": started_at}
    logged = step("prediction_log", "output.prediction_log", {**arguments, "run_id": run_id, "log_root": log_root})
    result.update(
        predicted=scored["predicted"],
        findings=scored["findings"],
        dicom_written=written["dicom_written"],
        instances_stored=written.get("instances_stored", 0),
        rows_logged=logged["rows_logged"],
        predictions=scored["predictions"],
        summary=scored["summary"],
        notified=0,
    )
    if notify_to and scored["findings"]:
        verdict = f"findings: {finding} in {scored['findings']} of {scored['predicted']} image(s)"
        arguments = {"metrics": scored["summary"], "to": notify_to, "conn_id": notify_conn_id}
        arguments.update(title=notify_title, verdict=verdict, model_uri=resolved["model"])
        result["notified"] = step("notify", "monitoring.notification_email", arguments)["recipients"]
    return result
