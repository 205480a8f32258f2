"""The base operator: runs any claimed component through the shared core, on the engine configured.

Engines (``claimed_airflow.operators.engines``, one contract): ``local`` (in the worker), ``kubernetes`` (a pod
of the component image through KubernetesPodOperator), ``spark`` (spark-submit through SparkSubmitHook).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from claimed_airflow.core import options
from claimed_airflow.core.errors import ParameterError
from claimed_airflow.core.options import KubernetesOptions, SparkOptions
from claimed_airflow.operators.engines import ENGINES, Defer, Engine, EngineTask
from claimed_airflow.operators.links import ArtifactsLink
from claimed_airflow.version_compat import BaseOperator

__all__ = ["ENGINES", "ClaimedOperator", "KubernetesOptions", "SparkOptions"]


def _unrendered(value: Any) -> bool:
    """A value Airflow renders when the task runs (a template, an XComArg): checked after rendering."""
    return (isinstance(value, str) and ("{{" in value or "{%" in value)) or hasattr(value, "resolve")


def gpu_queue(component: str) -> str | None:
    """The ``gpu_queue`` setting when ``component`` asks for a GPU, else None (read while DAGs are parsed)."""
    from claimed_airflow.core import registry
    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.core.settings import setting

    queue = setting("gpu_queue")
    if not queue or not component:
        return None
    try:
        gpus = registry.get(component).resources.gpus
    except ClaimedError:  # an unknown component fails the task with its own message when it runs
        return None
    return str(queue).strip() if gpus else None


class ClaimedOperator(BaseOperator):
    """Run a CLAIMED component as an Airflow task.

    The component's outputs are written to ``<output_root>/<dag_id>/<run_id>/<task_id>/<output>``
    and returned as XCom, one key per output (``task.output["images"]``) plus the component's small
    returned values and ``manifest`` (the URI of the run manifest).

    Use the generated subclass of a component (e.g. ``DicomInputOperator``) to get typed, documented
    parameters; this class runs any component by name. A task of a component that asks for a GPU and sets no
    ``queue`` goes to the queue of the setting ``gpu_queue`` (e.g. the CeleryExecutor workers of GPU machines).

    :param component: Component name, e.g. ``input.dicom`` (``claimed-airflow list`` shows them).
    :type component: str
    :param arguments: Parameters and input URIs of the component; values may be templates or XComArgs.
    :type arguments: dict
    :param engine: Where the component runs: ``local`` (in the worker process), ``kubernetes`` (a pod) or
        ``spark`` (spark-submit). Unset (or ``default``): setting ``engine`` (Variable ``claimed_engine``,
        ``[claimed] engine``, ``$CLAIMED_ENGINE``: :mod:`claimed_airflow.core.settings`), else ``local``.
        A template, so ``"{{ params.engine }}"`` works.
    :type engine: str | None
    :param output_root: Root URI of outputs; default setting ``output_root``, else ``$AIRFLOW_HOME/claimed-artifacts``
        (:func:`claimed_airflow.core.storage.default_root`).
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
        options win, option by option). Templated: ``{"image": "{{ var.value.image }}"}`` is rendered when the
        task runs (option names are checked when the DAG is parsed, values once rendered).
    :type kubernetes: KubernetesOptions | dict | None
    :param spark: engine=spark: how spark-submit runs, as ``SparkOptions(conn_id=..., conf={...})`` or a dict;
        templated, and folded with ``default_args`` like ``kubernetes``.
    :type spark: SparkOptions | dict | None
    :param deferrable: Wait in Airflow's triggerer instead of a worker slot: a component's long wait (KServe
        Ready, TFJob/PyTorchJob, Katib Experiment, Watson ML deployment) on the local engine, the pod on the
        kubernetes engine (the spark engine waits in its worker slot). Default ``[operators] default_deferrable``
        (false).
    :type deferrable: bool | None
    """

    component: ClassVar[str] = ""
    component_fields: ClassVar[tuple[str, ...]] = ()
    gate: ClassVar[bool] = False
    template_fields: Sequence[str] = ("arguments", "engine", "output_root", "cache", "kubernetes", "spark")
    template_fields_renderers = {"arguments": "json", "kubernetes": "json", "spark": "json"}
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
        if "queue" not in kwargs and "queue" not in (kwargs.get("default_args") or {}):
            queue = gpu_queue(component or self.component)
            if queue:
                kwargs["queue"] = queue
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
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The task's options over the DAG's ``default_args`` (which Airflow also passes as the argument), as
        dicts that Airflow renders; what is not a template is checked now, so a bad option fails the parse."""
        given = {"kubernetes": kubernetes, "spark": spark}
        task = {name: value for name, value in given.items() if value is not default_args.get(name)}
        defaults = {name: value for name, value in default_args.items() if name in given}
        try:
            merged = options.merge(task, defaults)
            options.fold(merged, skip=_unrendered)
        except ParameterError as exc:
            raise ParameterError(f"task {self.task_id!r}: {exc}") from None
        return merged["kubernetes"], merged["spark"]

    def engine_options(self) -> tuple[KubernetesOptions, SparkOptions]:
        """The task's typed engine options (rendered when the task runs), checked."""
        try:
            folded = options.fold({"kubernetes": self.kubernetes, "spark": self.spark})
        except ParameterError as exc:
            raise ParameterError(f"task {self.task_id!r}: {exc}") from None
        return folded["kubernetes"], folded["spark"]  # type: ignore[return-value]

    def component_arguments(self) -> dict[str, Any]:
        """The rendered parameter values; unset (None) ones are left to the component's defaults."""
        values = dict(self.arguments)
        values.update({name: getattr(self, name) for name in self.component_fields})
        return {name: value for name, value in values.items() if value is not None}

    def engine_task(self, spec, root: str, scope) -> EngineTask:
        """What the engine runs: the rendered arguments and the typed options (engines never see the operator)."""
        kubernetes, spark = self.engine_options()
        return EngineTask(
            task_id=self.task_id,
            spec=spec,
            arguments=self.component_arguments(),
            root=root,
            scope=scope,
            cache=self._cache_enabled(),
            deferrable=bool(self.deferrable),
            kubernetes=kubernetes,
            spark=spark,
            retries=int(self.retries or 0),
            timeout=self.execution_timeout,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        return self._run(context, None, None)

    def execute_complete(
        self, context: Any, event: Any = None, engine: str | None = None, state: dict | None = None
    ) -> dict[str, Any]:
        """Resume after the triggerer: the engine that deferred continues from its ``state`` with the event."""
        return self._run(context, engine, {"state": state or {}, "event": event})

    def on_kill(self) -> None:
        """Stop what the task started: the pod (kubernetes), spark-submit (spark), worker processes (local)."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.kill(self._engine_task)

    def _run(self, context: Any, deferred_on: str | None, resumed: dict[str, Any] | None) -> dict[str, Any]:
        """Run (or resume) the component on its engine; an engine's :class:`Defer` defers the task."""
        from claimed_airflow.core import registry, storage
        from claimed_airflow.core.errors import ClaimedError
        from claimed_airflow.core.storage import Scope
        from claimed_airflow.operators import engines
        from claimed_airflow.version_compat import AirflowFailException

        engine_name = deferred_on or engines.resolve(self.engine)  # a resumed task stays on the engine it deferred on
        try:
            engine: Engine = engines.load(engine_name)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        ti = context["ti"]
        scope = Scope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        root = storage.normalize(self.output_root or storage.default_root())
        try:
            task = self.engine_task(registry.get(self.component), root, scope)
            if task.deferrable and not engine.defers:
                self.log.info(
                    "%s: engine %s cannot defer; the task waits in its worker slot", self.task_id, engine_name
                )
            self._engine, self._engine_task = engine, task
            if resumed is None:
                self.log.info("%s: running %s on engine %s", self.task_id, self.component, engine_name)
                result = engine.run(task, context)
            else:
                self.log.info("%s: resuming %s on engine %s", self.task_id, self.component, engine_name)
                result = engine.resume(task, context, resumed["state"], resumed["event"])
        except Defer as deferral:
            kwargs = {"engine": engine_name, "state": deferral.state}
            self.defer(
                trigger=deferral.trigger, method_name="execute_complete", kwargs=kwargs, timeout=deferral.timeout
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
        """Asset events of this task's outlets carry the run's small values and its manifest URI (credentials
        inside URIs redacted: events are shown in the UI)."""
        from claimed_airflow.core.storage import redact

        small = {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))}
        small = {k: redact(v) if isinstance(v, str) else v for k, v in small.items()}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(small)

    def _cache_enabled(self) -> bool:
        from claimed_airflow.core.settings import flag_setting

        return flag_setting("cache", value=self.cache)

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
