"""Monitoring operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class FeedbackMonitoringOperator(ClaimedOperator):
    """Join a labels table to the model's prediction log by SOPInstanceUID; write the matches as feedback.

    The feedback lives beside the log
    (``<log_root>/prediction_feedback/model=<name>/labels-<hash>.parquet``), one file per label
    file, named by the hash of its content: importing the same label file again writes nothing
    (idempotent), a new one adds a file (append only); a later label of an image wins when read.
    Each row: SOPInstanceUID, label, the logged model_version and prediction, labelled_at, source
    (the hash). Labels of images the model never scored are counted, not written.

    Runs the ``monitoring.feedback`` component. Outputs (XCom keys): none.

    :param labels: Labels table of ``input.labels`` (columns SOPInstanceUID and ``label_column``).
    :type labels: str
    :param model_name: The model whose prediction log gets the feedback.
    :type model_name: str
    :param label_column: Column of the labels.
    :type label_column: str
    :param labelled_at: When the labels were given (ISO 8601); default now.
    :type labelled_at: str | None
    :param log_root: Root of the prediction log; default the output root.
    :type log_root: str | None
    """

    component = "monitoring.feedback"
    component_fields = ("labels", "model_name", "label_column", "labelled_at", "log_root")
    ui_color = "#fffde7"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        labels: str,
        model_name: str,
        label_column: str = "label",
        labelled_at: str | None = None,
        log_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.labels = labels
        self.model_name = model_name
        self.label_column = label_column
        self.labelled_at = labelled_at
        self.log_root = log_root


class ModelReportMonitoringOperator(ClaimedOperator):
    """Compare a window of the prediction log with the model's reference profile; ``alert`` when a threshold is crossed.

    Drift: a two-sample Kolmogorov-Smirnov test per image statistic (against the training images'
    sample), a chi-square test per DICOM header field and for the predicted classes (against the
    test split); the p-values are adjusted with Benjamini-Hochberg (false discovery rate ``alpha``)
    and a test whose adjusted p-value is below ``alpha`` is drift. Performance: accuracy and per-
    class recall on the window's predictions that have a radiologist's label
    (``monitoring.feedback``); an alert when it is ``max_accuracy_drop`` below the test split's.
    Fairness: error rate per group of PatientSex and age group; an alert when the gap between groups
    grows by more than ``max_gap_increase`` over the reference's. With two model versions in the
    window: champion/challenger on the images both scored. Plots per day over ``history_days``, an
    HTML report and a JSON summary.

    Runs the ``monitoring.model_report`` component. Outputs (XCom keys): report, summary, plots.

    :param model_name: The model (as in the prediction log and the model store).
    :type model_name: str
    :param window_end: End of the window (ISO 8601; the run's data interval end); default now.
    :type window_end: str | None
    :param window_days: Length of the window in days.
    :type window_days: int
    :param history_days: Days of the plots over time (ending at ``window_end``).
    :type history_days: int
    :param reference: Reference profile JSON; default the ``reference_profile.json`` in the model
        store of the version judged: ``champion``, else the window's newest.
    :type reference: str | None
    :param champion: The deployed version: judged against its reference, and against a challenger
        (another version scored on the same images); default the window's newest is judged, the
        oldest is champion.
    :type champion: str | None
    :param alpha: False discovery rate of the drift tests (Benjamini-Hochberg).
    :type alpha: float
    :param min_images: Fewer images in the window: no drift test.
    :type min_images: int
    :param min_labelled: Fewer labelled predictions: no accuracy alert.
    :type min_labelled: int
    :param max_accuracy_drop: Alert when the accuracy falls this far below the reference's.
    :type max_accuracy_drop: float
    :param max_gap_increase: Alert when a protected attribute's error-rate gap grows this much over
        the reference's.
    :type max_gap_increase: float
    :param min_group: Groups with fewer labelled predictions are left out of the fairness metrics.
    :type min_group: int
    :param log_root: Root of the prediction log and its feedback; default the output root.
    :type log_root: str | None
    :param models_root: Model store (for the default reference); default ``<output root>/models``.
    :type models_root: str | None
    """

    component = "monitoring.model_report"
    component_fields = (
        "model_name",
        "window_end",
        "window_days",
        "history_days",
        "reference",
        "champion",
        "alpha",
        "min_images",
        "min_labelled",
        "max_accuracy_drop",
        "max_gap_increase",
        "min_group",
        "log_root",
        "models_root",
    )
    ui_color = "#fffde7"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model_name: str,
        window_end: str | None = None,
        window_days: int = 1,
        history_days: int = 30,
        reference: str | None = None,
        champion: str | None = None,
        alpha: float = 0.01,
        min_images: int = 30,
        min_labelled: int = 20,
        max_accuracy_drop: float = 0.1,
        max_gap_increase: float = 0.15,
        min_group: int = 10,
        log_root: str | None = None,
        models_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.window_end = window_end
        self.window_days = window_days
        self.history_days = history_days
        self.reference = reference
        self.champion = champion
        self.alpha = alpha
        self.min_images = min_images
        self.min_labelled = min_labelled
        self.max_accuracy_drop = max_accuracy_drop
        self.max_gap_increase = max_gap_increase
        self.min_group = min_group
        self.log_root = log_root
        self.models_root = models_root


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
    :param verdict: Text of the subject and heading instead of the blessing outcome (e.g. ``2
        monitoring finding(s)`` from model monitoring): an e-mail that is not about a blessing does
        not say one.
    :type verdict: str | None
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
        "verdict",
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
        verdict: str | None = None,
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
        self.verdict = verdict
