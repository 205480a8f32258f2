"""A reviewer's approval on Kubeflow: a step that passes when no approval is required and stops the run otherwise.

Kubeflow Pipelines has no step that waits for a person (Airflow 3.1+ has *Required Actions*, see
:mod:`claimed_airflow.operators.approval`). The export keeps a ``ModelApprovalOperator`` task as this step,
fed with the task's ``required`` value (the flagship's ``require_approval`` pipeline parameter): false lets
the steps after it run, as in Airflow; true fails the run at this step with a one-line error, so a model
that must be reviewed is never deployed unreviewed.
"""

from __future__ import annotations

from claimed_airflow.core.component import component
from claimed_airflow.core.errors import ClaimedError


@component("deploy", cpu="100m", memory="256Mi")
def kubeflow_approval(required: bool = False) -> dict:
    """Pass when no reviewer's approval is required; fail, saying why, when one is.

    :param required: Whether a reviewer must approve (the task's ``required``, e.g. ``require_approval``).
    """
    if required:
        raise ClaimedError(
            "required: a reviewer must approve this model, but Kubeflow Pipelines has no reviewer step; "
            "run the DAG in Airflow 3.1+ (the reviewer approves in Required Actions) or run the pipeline "
            "with require_approval false"
        )
    return {"reviewed": False}
