"""Monitoring operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class NotificationEmailMonitoringOperator(ClaimedOperator):
    """E-mail the run's metrics and blessing outcome through an Airflow SMTP connection.

    The outcome is ``blessed`` when given (e.g. the blessing task's XCom), else ``condition``
    evaluated over the metrics, so the notification can run beside the blessing gate and report both
    outcomes. Sent with the smtp provider's ``SmtpHook`` (host, port, login/password and TLS from
    the connection).

    Runs the ``monitoring.notification_email`` component. Outputs (XCom keys): none.

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :type metrics: str
    :param to: Recipient addresses; none: nothing is sent (the outcome is still returned), so a DAG
        can take them from a param that is empty by default.
    :type to: list[str] | None
    :param conn_id: Airflow connection of type ``smtp``.
    :type conn_id: str
    :param fairness: Optional JSON of ``metric.fairness``, as for the blessing gate (values
        ``fairness_*``).
    :type fairness: str | None
    :param robustness: Optional JSON of ``metric.robustness``, as for the blessing gate (values
        ``robustness_*``).
    :type robustness: str | None
    :param blessed: The blessing outcome, if known.
    :type blessed: bool | None
    :param condition: Blessing condition to evaluate over the metrics when ``blessed`` is not given.
    :type condition: str | None
    :param model_uri: Deployed or candidate model to mention.
    :type model_uri: str | None
    :param deployment_url: URL of the deployed model to mention.
    :type deployment_url: str | None
    :param title: What the run is, e.g. ``{{ dag.dag_id }} {{ run_id }}``.
    :type title: str
    :param from_email: Sender; default the connection's ``from_email`` extra.
    :type from_email: str | None
    """

    component = "monitoring.notification_email"
    component_fields = (
        "metrics",
        "to",
        "conn_id",
        "fairness",
        "robustness",
        "blessed",
        "condition",
        "model_uri",
        "deployment_url",
        "title",
        "from_email",
    )
    ui_color = "#fffde7"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        metrics: str,
        to: list[str] | None = None,
        conn_id: str = "smtp_default",
        fairness: str | None = None,
        robustness: str | None = None,
        blessed: bool | None = None,
        condition: str | None = None,
        model_uri: str | None = None,
        deployment_url: str | None = None,
        title: str = "claimed-airflow run",
        from_email: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.to = to
        self.conn_id = conn_id
        self.fairness = fairness
        self.robustness = robustness
        self.blessed = blessed
        self.condition = condition
        self.model_uri = model_uri
        self.deployment_url = deployment_url
        self.title = title
        self.from_email = from_email
