"""Deploy operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import SkipMixin

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.links import DeploymentLink


class ConditionBlessingOperator(ClaimedOperator, SkipMixin):
    """Evaluate ``condition`` over the values of metrics JSON files; false skips downstream tasks.

    In Airflow the tasks after the gate are skipped (not failed) when the model is not blessed. The
    values of ``metrics`` keep their names; those of the optional ``fairness`` and ``robustness``
    files are prefixed, e.g. ``fairness_biased``, ``fairness_attributes_PatientSex_biased``,
    ``robustness_min_accuracy``, so one condition can weigh accuracy, fairness and robustness
    together.

    Runs the ``deploy.condition_blessing`` component. Outputs (XCom keys): none.

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :type metrics: str
    :param condition: Boolean expression, e.g. ``accuracy >= 0.8 and fairness_biased == 0``.
    :type condition: str
    :param fairness: Optional JSON of ``metric.fairness``; its values get the prefix ``fairness_``.
    :type fairness: str | None
    :param robustness: Optional JSON of ``metric.robustness``; its values get the prefix
        ``robustness_``.
    :type robustness: str | None
    """

    component = "deploy.condition_blessing"
    component_fields = ("metrics", "condition", "fairness", "robustness")
    gate = True
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        metrics: str,
        condition: str = "accuracy >= 0.5",
        fairness: str | None = None,
        robustness: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.condition = condition
        self.fairness = fairness
        self.robustness = robustness


class LocalDeployOperator(ClaimedOperator):
    """Copy a model folder to ``<models_root>/<model_name>/<version>`` with the next version number.

    The copy is atomic: a reader sees either no new version or a complete one.

    Runs the ``deploy.local`` component. Outputs (XCom keys): none.

    :param model: Model folder to publish.
    :type model: str
    :param model_name: Name of the model in the registry folder (letters, digits, ``_.-``).
    :type model_name: str
    :param models_root: Registry folder or URI; default ``<output root>/models``.
    :type models_root: str | None
    """

    component = "deploy.local"
    component_fields = ("model", "model_name", "models_root")
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        model_name: str = "model",
        models_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.model_name = model_name
        self.models_root = models_root
