"""Tell people how a run went: an e-mail with the metrics and the blessing outcome (or another verdict)."""

from __future__ import annotations

import html
import logging

from claimed_airflow.core import InputPath, component
from claimed_airflow.core.credentials import from_connection
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


def outcome_of(values: dict, blessed: bool | None, condition: str | None) -> bool | None:
    """The blessing outcome: ``blessed`` when given, else ``condition`` evaluated over the metrics."""
    if blessed is not None or not condition:
        return blessed
    from claimed_airflow.core.expressions import evaluate

    result = evaluate(condition, values, param="condition")
    if not isinstance(result, bool):
        raise ClaimedError(f"condition: {condition!r} gave {result!r}, expected true or false")
    return result


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())  # a header: no CR/LF


def render(
    values: dict,
    outcome: bool | None,
    condition: str | None,
    model_uri: str | None,
    url: str | None,
    title: str,
    verdict: str | None = None,
):
    """(subject, HTML body) of the notification; ``verdict`` replaces the blessing outcome's text."""
    if verdict is None:
        verdict = "model " + {True: "blessed", False: "NOT blessed", None: "no blessing decision"}[outcome]
    headline = f"accuracy {values['accuracy']:.3f}" if isinstance(values.get("accuracy"), float) else ""
    subject = f"[claimed] {_one_line(title)}: {_one_line(verdict)}" + (f" ({headline})" if headline else "")
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in values.items()
    )
    parts = [f"<h2>{html.escape(title)}: {html.escape(verdict)}</h2>"]
    if condition:
        parts.append(f"<p>Blessing condition: <code>{html.escape(condition)}</code></p>")
    if model_uri:
        parts.append(f"<p>Model: <code>{html.escape(model_uri)}</code></p>")
    if url:
        parts.append(f'<p>Deployment: <a href="{html.escape(url)}">{html.escape(url)}</a></p>')
    parts.append(f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
    return subject, "\n".join(parts)


@component("monitoring")
def notification_email(
    metrics: InputPath,
    to: list[str] | None = None,
    conn_id: str = "smtp_default",
    fairness: InputPath | None = None,
    robustness: InputPath | None = None,
    blessed: bool | None = None,
    condition: str | None = None,
    model_uri: str | None = None,
    deployment_url: str | None = None,
    title: str = "claimed-airflow run",
    from_email: str | None = None,
    verdict: str | None = None,
) -> dict:
    """E-mail the run's metrics and blessing outcome through an Airflow SMTP connection.

    The outcome is ``blessed`` when given (e.g. the blessing task's XCom), else ``condition`` evaluated
    over the metrics, so the notification can run beside the blessing gate and report both outcomes.
    Sent with the smtp provider's ``SmtpHook`` (host, port, login/password and TLS from the connection).

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :param to: Recipient addresses; none: nothing is sent (the outcome is still returned), so a DAG can
        take them from a param that is empty by default.
    :param conn_id: Airflow connection of type ``smtp``.
    :param fairness: Optional JSON of ``metric.fairness``, as for the blessing gate (values ``fairness_*``).
    :param robustness: Optional JSON of ``metric.robustness``, as for the blessing gate (values ``robustness_*``).
    :param blessed: The blessing outcome, if known.
    :param condition: Blessing condition to evaluate over the metrics when ``blessed`` is not given.
    :param model_uri: Deployed or candidate model to mention.
    :param deployment_url: URL of the deployed model to mention.
    :param title: What the run is, e.g. ``{{ dag.dag_id }} {{ run_id }}``.
    :param from_email: Sender; default the connection's ``from_email`` extra.
    :param verdict: Text of the subject and heading instead of the blessing outcome (e.g. ``2 monitoring
        finding(s)`` from model monitoring): an e-mail that is not about a blessing does not say one.
    """
    from claimed_airflow.components.deploy.condition_blessing import metric_values

    to = to or []
    bad = [address for address in to if "@" not in address or not address.isprintable()]
    if bad:
        raise ClaimedError(f"to: expected e-mail addresses, got {bad!r}")
    if from_email is not None and ("@" not in from_email or not from_email.isprintable()):
        raise ClaimedError(f"from_email: expected an e-mail address, got {from_email!r}")
    values = metric_values(metrics, fairness, robustness)
    outcome = outcome_of(values, blessed, condition)
    state = {True: "blessed", False: "not_blessed", None: "unknown"}[outcome]
    if not to:
        log.info("no recipients (to is empty): nothing sent; outcome %s", state)
        return {"recipients": 0, "outcome": state}
    subject, body = render(values, outcome, condition, model_uri, deployment_url, title, verdict or None)
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook
    except ImportError:
        raise ClaimedError(
            "conn_id: sending e-mail needs Airflow's smtp provider (pip install 'claimed-airflow[airflow]')"
        ) from None

    def send(name: str) -> None:
        with SmtpHook(smtp_conn_id=name) as hook:
            sender = from_email or hook.from_email or "claimed-airflow@localhost"
            hook.send_email_smtp(to=to, subject=subject, html_content=body, from_email=sender)

    # the connection through core.credentials: a missing one, an SMTP or Airflow error become one line naming it
    from_connection(conn_id, send, kind="SMTP", failure="send e-mail through SMTP connection")
    log.info("sent %r to %d recipient(s)", subject, len(to))
    return {"recipients": len(to), "outcome": state}
