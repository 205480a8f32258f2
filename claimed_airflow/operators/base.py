"""The base operator: runs any claimed component through the shared core, on the engine configured.

Engines (``claimed_airflow.operators.engines``): ``local`` (in the worker), ``kubernetes`` (a pod of
the component image through KubernetesPodOperator), ``spark`` (spark-submit through SparkSubmitOperator).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from claimed_airflow.core import options
from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.operators.engines import ENGINES, EngineTask
from claimed_airflow.operators.links import ArtifactsLink
from claimed_airflow.version_compat import BaseOperator

__all__ = ["ENGINES", "ClaimedOperator", "KubernetesOptions", "SparkOptions", "default_output_root"]


def _task_deferred() -> type[BaseException]:
    from claimed_airflow.version_compat import TaskDeferred

    return TaskDeferred


def default_output_root() -> str:
    """The ``output_root`` setting (:mod:`claimed_airflow.core.settings`), else ``$AIRFLOW_HOME/claimed-artifacts``."""
    from claimed_airflow.core.settings import setting

    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return str(setting("output_root", os.path.join(home, "claimed-artifacts")))


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
    :param engine: Where the component runs: ``local`` (in the worker process), ``kubernetes`` (a pod) or
        ``spark`` (spark-submit). Unset (or ``default``): setting ``engine`` (Variable ``claimed_engine``,
        ``[claimed] engine``, ``$CLAIMED_ENGINE``: :mod:`claimed_airflow.core.settings`), else ``local``.
        A template, so ``"{{ params.engine }}"`` works.
    :type engine: str | None
    :param output_root: Root URI of outputs; default setting ``output_root``, else ``$AIRFLOW_HOME/claimed-artifacts``.
    :type output_root: str | None
    :param cache: Reuse the outputs of an earlier run with the same component version, parameters and
        input contents (outputs verified by hash); default setting ``cache`` (false). Set it DAG-wide
        with ``default_args={"cache": True}``. Applies to the local and kubernetes engines (a pod looks the
        cache up under the output root); spark tasks always run.
    :type cache: bool | str | None
    :param kubernetes: engine=kubernetes: how the pod runs, as ``KubernetesOptions(...)`` or a dict of its
        options: image, namespace, cpu, memory, gpus, node_selector, tolerations, image_pull_secrets, secrets,
        env_vars, conn_id, pod_options (see "Engine options" below). Unset options come from the component
        (resources) and the settings. Only here: ``KServeDeployOperator(cpu=...)`` is the predictor's CPU, the
        pod's is ``kubernetes={"cpu": ...}``. DAG-wide: ``default_args={"kubernetes": {...}}`` (a task's
        options win, option by option).
    :type kubernetes: KubernetesOptions | dict | None
    :param spark: engine=spark: how spark-submit runs, as ``SparkOptions(conn_id=..., conf={...})`` or a dict.
    :type spark: SparkOptions | dict | None
    :param deferrable: Wait in Airflow's triggerer instead of a worker slot: a component's long wait (KServe
        Ready, TFJob/PyTorchJob, Katib Experiment, Watson ML deployment) on the local engine, the pod on the
        kubernetes engine. Default ``[operators] default_deferrable`` (false).
    :type deferrable: bool | None
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
        engine: str | None = None,
        output_root: str | None = None,
        cache: bool | str | None = None,
        kubernetes: KubernetesOptions | dict[str, Any] | None = None,
        spark: SparkOptions | dict[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        if component:
            self.component = component
        if not self.component:
            raise ValueError(f"{self.task_id}: ClaimedOperator needs a component name, e.g. 'input.dicom'")
        self.arguments = dict(arguments or {})
        self.engine = engine
        self.output_root = output_root
        self.cache = cache
        self.claimed_result: dict[str, Any] | None = None
        self.kubernetes, self.spark = self._engine_options(kubernetes, spark, kwargs.get("default_args") or {})
        if deferrable is None:  # like the official providers: [operators] default_deferrable
            from claimed_airflow.version_compat import conf

            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = deferrable

    def _engine_options(
        self, kubernetes: Any, spark: Any, default_args: dict[str, Any]
    ) -> tuple[KubernetesOptions, SparkOptions]:
        """The task's options over the DAG's ``default_args`` (which Airflow also passes as the argument)."""
        given = {"kubernetes": kubernetes, "spark": spark}
        task = {name: value for name, value in given.items() if value is not default_args.get(name)}
        defaults = {name: value for name, value in default_args.items() if name in given}
        try:
            folded = options.fold(task, defaults)
        except ParameterError as exc:
            raise ParameterError(f"task {self.task_id!r}: {exc}") from None
        return folded["kubernetes"], folded["spark"]

    def component_arguments(self) -> dict[str, Any]:
        """The rendered parameter values; unset (None) ones are left to the component's defaults."""
        values = dict(self.arguments)
        values.update({name: getattr(self, name) for name in self.component_fields})
        return {name: value for name, value in values.items() if value is not None}

    def engine_task(self, spec, root: str, scope) -> EngineTask:
        """What the engine runs: the rendered arguments and the typed options (engines never see the operator)."""
        return EngineTask(
            task_id=self.task_id,
            spec=spec,
            arguments=self.component_arguments(),
            root=root,
            scope=scope,
            cache=self._cache_enabled(),
            deferrable=bool(self.deferrable),
            kubernetes=self.kubernetes,
            spark=self.spark,
            retries=int(self.retries or 0),
            timeout=self.execution_timeout,
        )

    def _run_engine(self, engine, context: Any, task: EngineTask) -> dict[str, Any]:
        """``engine.execute``; deferrable: a component's wait, or the engine's own operator, defers to the triggerer."""
        from claimed_airflow.core import waits

        self._engine, self._engine_task = engine, task
        resume, self._resume = getattr(self, "_resume", None), None
        try:
            if resume and "nested" in resume:
                nested = resume["nested"]
                return engine.resume(task, context, nested["method"], resume["event"], nested)
            if task.deferrable and engine.__name__.endswith(".local"):
                with waits.deferring(resume["journal"] if resume else None):
                    return engine.execute(task, context)
            return engine.execute(task, context)
        except waits.Deferral as deferral:
            from datetime import timedelta

            from claimed_airflow.triggers import PollTrigger

            poll = deferral.poll
            self.log.info("%s: waiting for %s in the triggerer (up to %g s)", self.task_id, poll.what, poll.timeout)
            trigger = PollTrigger(poll.to_dict(), deadline=time.time() + poll.timeout)
            backstop = timedelta(seconds=poll.timeout + poll.interval + 60)  # the trigger's own timeout comes first
            self.defer(
                trigger=trigger, method_name="execute_complete", kwargs={"journal": deferral.journal}, timeout=backstop
            )
        except _task_deferred() as deferred:  # the engine's own operator (KubernetesPodOperator) deferred
            nested = {"method": deferred.method_name, "kwargs": deferred.kwargs or {}}
            self.defer(
                trigger=deferred.trigger,
                method_name="execute_complete",
                kwargs={"nested": nested},
                timeout=deferred.timeout,
            )

    def execute_complete(
        self, context: Any, event: dict | None = None, journal: list | None = None, nested: dict | None = None
    ) -> dict[str, Any]:
        """Resume after the triggerer: run again with the journal of the first run (nothing is created twice)
        and the trigger's event, or hand the event back to the engine's own operator."""
        if nested is not None:
            self._resume = {"nested": nested, "event": event}
        else:
            self._resume = {"journal": [*(journal or []), {"event": event}]}
        return self.execute(context)

    def on_kill(self) -> None:
        """Stop what the task started: the pod (kubernetes), spark-submit (spark), worker processes (local)."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.kill(self._engine_task)

    def execute(self, context: Any) -> dict[str, Any]:
        from claimed_airflow.core import registry, storage
        from claimed_airflow.core.errors import ClaimedError
        from claimed_airflow.core.storage import Scope
        from claimed_airflow.operators import engines
        from claimed_airflow.version_compat import AirflowFailException

        engine_name = engines.resolve(self.engine)
        try:
            engine = engines.load(engine_name)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        ti = context["ti"]
        scope = Scope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        root = storage.normalize(self.output_root or default_output_root())
        self.log.info("%s: running %s on engine %s", self.task_id, self.component, engine_name)
        try:
            result = self._run_engine(engine, context, self.engine_task(registry.get(self.component), root, scope))
        except ClaimedError as exc:
            raise AirflowFailException(f"{self.component}: {exc}") from None
        self.claimed_result = result
        self._annotate_outlets(context, result)
        if self.gate and not result.get("blessed", True):
            self.log.info("%s: condition is false; skipping downstream tasks", self.task_id)
            self._skip_downstream(context, result)
        return result

    def _annotate_outlets(self, context: Any, result: dict[str, Any]) -> None:
        """Asset events of this task's outlets carry the run's small values and its manifest URI (credentials
        inside URIs redacted: events are shown in the UI)."""
        from claimed_airflow.core.storage import redact

        small = {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))}
        small = {k: redact(v) if isinstance(v, str) else v for k, v in small.items()}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(small)

    def _cache_enabled(self) -> bool:
        from claimed_airflow.core.settings import flag_setting

        return flag_setting("cache", False, value=self.cache)

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
            from claimed_airflow.version_compat import skip_tasks

            skip_tasks(self, context, tasks)
