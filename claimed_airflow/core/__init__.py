"""Engine-agnostic core: component specs, typed parameters, artifacts, runner and manifest.

Nothing here imports Airflow; components run the same in an Airflow worker, a pod or a KFP step.
"""

from claimed_airflow.core.component import ComponentSpec, Parameter, UiOutputs, component
from claimed_airflow.core.context import Progress, reject
from claimed_airflow.core.errors import ClaimedError, ParameterError
from claimed_airflow.core.types import InputPath, OutputPath

__all__ = [
    "UiOutputs",
    "ClaimedError",
    "ComponentSpec",
    "InputPath",
    "OutputPath",
    "Parameter",
    "ParameterError",
    "Progress",
    "component",
    "reject",
]
