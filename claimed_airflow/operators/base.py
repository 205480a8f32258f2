"""The base operator: runs any claimed component through the shared core (engine ``local``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from claimed_airflow.operators.links import ArtifactsLink

ENGINES = ("local",)


def default_output_root() -> str:
    """``[claimed] output_root`` (env ``AIRFLOW__CLAIMED__OUTPUT_ROOT``), else ``$AIRFLOW_HOME/claimed-artifacts``."""
    from airflow.sdk.configuration import conf

    configured = conf.get("claimed", "output_root", fallback=None) or os.environ.get("CLAIMED_OUTPUT_ROOT")
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "claimed-artifacts")


class ClaimedOperator(BaseOperator):
    """Run a CLAIMED component as an Airflow task.

    The component's outputs are written to ``<output_root>/<dag_id>/<run_id>/<task_id>/<output>``
    and returned as XCom, one key per output (``task.output["images"]``) plus the component's small
    returned values and ``manifest`` (the URI of the run manifest).

    Use the generated subclass of a component (e.g. ``DicomInputOperator``) to get typed, documented
    parameters; this class runs any component by name.

    :param component: Component name, e.g. ``input.dicom`` (``claimed-airflow list`` shows them).
    :type component: str
    :param arguments: Parameters and input URIs of the component; values may be templates or XComArgs.
    :type arguments: dict
    :param engine: Where the component runs: ``local`` (in the worker process).
    :type engine: str
    :param output_root: Root URI of outputs; default ``[claimed] output_root`` or ``$AIRFLOW_HOME/claimed-artifacts``.
    :type output_root: str | None
    :param cache: Reuse the outputs of an earlier run with the same component version, parameters and
        input contents (outputs verified by hash); default ``[claimed] cache`` (false). Set it DAG-wide
        with ``default_args={"cache": True}``.
    :type cache: bool | str | None
    """

    component: ClassVar[str] = ""
    component_fields: ClassVar[tuple[str, ...]] = ()
    gate: ClassVar[bool] = False
    template_fields: Sequence[str] = ("arguments", "engine", "output_root", "cache")
    template_fields_renderers = {"arguments": "json"}
    ui_color = "#dcecf7"
    operator_extra_links = (ArtifactsLink(),)

    def __init__(
        self,
        *,
        component: str | None = None,
        arguments: dict[str, Any] | None = None,
        engine: str = "local",
        output_root: str | None = None,
        cache: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        if component:
            self.component = component
        if not self.component:
            raise ValueError(f"{self.task_id}: ClaimedOperator needs a component name, e.g. 'input.dicom'")
        self.arguments = arguments or {}
        self.engine = engine
        self.output_root = output_root
        self.cache = cache
        self.claimed_result: dict[str, Any] | None = None

    def component_arguments(self) -> dict[str, Any]:
        """The rendered parameter values; unset (None) ones are left to the component's defaults."""
        values = dict(self.arguments)
        values.update({name: getattr(self, name) for name in self.component_fields})
        return {name: value for name, value in values.items() if value is not None}

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from claimed_airflow.core.errors import ClaimedError
        from claimed_airflow.core.runner import run
        from claimed_airflow.core.storage import Scope

        if self.engine not in ENGINES:
            raise AirflowFailException(f"engine: {self.engine!r} is not available; choose one of {', '.join(ENGINES)}")
        ti = context["ti"]
        scope = Scope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        try:
            result = run(
                self.component,
                self.component_arguments(),
                root=self.output_root or default_output_root(),
                scope=scope,
                cache=self._cache_enabled(),
            )
        except ClaimedError as exc:
            raise AirflowFailException(f"{self.component}: {exc}") from None
        self.claimed_result = result
        self._annotate_outlets(context, result)
        if self.gate and not result.get("blessed", True):
            self.log.info("%s: condition is false; skipping downstream tasks", self.task_id)
            self._skip_downstream(context, result)
        return result

    def _annotate_outlets(self, context: Any, result: dict[str, Any]) -> None:
        """Asset events of this task's outlets carry the run's small values and its manifest URI."""
        small = {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(small)

    def _cache_enabled(self) -> bool:
        from airflow.sdk.configuration import conf

        from claimed_airflow.core.types import coerce

        if self.cache is None or self.cache == "":
            return conf.getboolean("claimed", "cache", fallback=False)
        return coerce("cache", self.cache, bool)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input and output datasets of the run (from its manifest) and the component facet."""
        if not self.claimed_result:
            return None
        from claimed_airflow.operators.lineage import lineage_of

        return lineage_of(self.claimed_result)

    def _skip_downstream(self, context: Any, result: dict[str, Any]) -> None:
        """Gate operators (which also inherit SkipMixin): keep the XComs, then skip what follows."""
        ti = context["ti"]
        for key, value in result.items():
            ti.xcom_push(key=key, value=value)
        ti.xcom_push(key="return_value", value=result)
        tasks = [t for t in context["task"].get_flat_relatives(upstream=False) if not t.is_teardown]
        if tasks:
            self.skip(ti=ti, tasks=tasks)
