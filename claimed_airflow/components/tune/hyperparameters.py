"""Hyperparameter search over the parameters of a training component: Optuna in process, or Katib."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Literal

from claimed_airflow.core import OutputPath, component
from claimed_airflow.core.errors import ClaimedError, ParameterError

log = logging.getLogger("claimed_airflow")
KATIB = "kubeflow.org/v1beta1"
METRICS_FORMAT = r'"([\w-]+)":\s*([+-]?\d+(?:\.\d+)?(?:[Ee][+-]?\d+)?)'  # our CLI prints its values as JSON


@component("tune")
def hyperparameters(
    trainer: str,
    search_space: dict,
    objective: str,
    direction: Literal["maximize", "minimize"] = "maximize",
    fixed: dict | None = None,
    trials: int = 10,
    algorithm: Literal["tpe", "random", "grid"] = "tpe",
    seed: int | None = 0,
    backend: Literal["local", "kubernetes"] = "local",
    parallel_trials: int = 1,
    katib_namespace: str = "kubeflow",
    trial_root: str | None = None,
    conn_id: str | None = None,
    timeout: float = 86400.0,
    poll_interval: float = 15.0,
    results: OutputPath = "trials.csv",
    plot: OutputPath = "trials.png",
    experiment: OutputPath = "experiment.json",
) -> dict:
    """Search the hyperparameters of a training component for the best value of one of its returned metrics.

    ``backend=local`` runs the trials in this process with Optuna (each trial is an ordinary run of the
    training component, with its own outputs and manifest under ``trial_root``). ``backend=kubernetes``
    creates a Katib Experiment whose trials run the same component through the ``claimed-airflow run``
    entrypoint in the component image, and waits for it. Both write a table of the trials, a plot of
    the objective and the Katib Experiment manifest, and return the best parameters.

    The search space maps parameter names to ``{"low": a, "high": b}`` (``"log": true``, ``"step": s``,
    ``"type": "int"``/``"float"``) or to a list of choices, e.g.
    ``{"learning_rate": {"low": 0.001, "high": 0.3, "log": true}, "epochs": [5, 10, 20]}``.

    :param trainer: Training component (name such as train.mobilenet_v2, or module:function).
    :param search_space: Parameters to search and their ranges or choices (JSON object).
    :param objective: Value returned by the trainer to optimise, e.g. accuracy.
    :param direction: maximize or minimize the objective.
    :param fixed: Other arguments of the trainer, the same in every trial (e.g. input URIs).
    :param trials: Number of trials.
    :param algorithm: Search algorithm: tpe (Bayesian), random or grid.
    :param seed: Random seed of the sampler (local backend), for reproducible searches.
    :param backend: Where the trials run: local (Optuna, in this process) or kubernetes (a Katib Experiment).
    :param parallel_trials: Trials run at the same time (kubernetes backend).
    :param katib_namespace: Kubernetes namespace of the Katib Experiment.
    :param trial_root: Root URI of the trials' outputs (default: beside this task's outputs; an
        object store URI such as s3://... for the kubernetes backend).
    :param conn_id: Airflow Kubernetes connection for the Katib Experiment (cncf.kubernetes provider);
        none: in-cluster or kubeconfig.
    :param timeout: Seconds to wait for the Katib Experiment.
    :param poll_interval: Seconds between status checks of the Katib Experiment.
    :param results: Table of the trials (CSV): number, state, objective, parameters.
    :param plot: Objective per trial and the best so far (PNG).
    :param experiment: The Katib Experiment manifest (JSON, valid for kubectl apply).
    """
    from claimed_airflow.core import registry
    from claimed_airflow.core.context import current

    spec = registry.get(trainer)
    space = parse_space(search_space, spec)
    if trials < 1:
        raise ClaimedError(f"trials: expected at least 1, got {trials}")
    root = trial_root or _default_root(current().root)
    manifest = katib_experiment(
        spec,
        trainer,
        space,
        objective=objective,
        direction=direction,
        fixed=fixed or {},
        trials=trials,
        algorithm=algorithm,
        parallel_trials=parallel_trials,
        namespace=katib_namespace,
        trial_root=root,
    )
    Path(experiment).write_text(json.dumps(manifest, indent=2))
    if backend == "local":
        rows = _local(spec, space, objective, direction, fixed or {}, trials, algorithm, seed, root)
    else:
        rows = _katib(manifest, katib_namespace, objective, conn_id, timeout, poll_interval)
    return _report(rows, space, objective, direction, results, plot)


def _default_root(task_root: str) -> str:
    from claimed_airflow.core import storage

    return storage.join(task_root or storage.default_root(), "tune-trials")


def parse_space(search_space: dict, spec) -> dict[str, dict]:
    """Normalise the search space to ``{name: {"type": float|int|categorical, ...}}``; checks names and types."""
    params = {p.name: p for p in spec.params}
    if not search_space:
        raise ClaimedError("search_space: give at least one parameter to search")
    space = {}
    for name, value in search_space.items():
        if name not in params:
            raise ClaimedError(f"search_space: {name!r} is not a parameter of {spec.name} (has {', '.join(params)})")
        ptype = params[name].type.replace(" | None", "")
        if isinstance(value, list) or (isinstance(value, dict) and "choices" in value):
            choices = value if isinstance(value, list) else value["choices"]
            if not choices:
                raise ClaimedError(f"search_space: {name}: empty list of choices")
            space[name] = {"type": "categorical", "choices": list(choices)}
        elif isinstance(value, dict) and "low" in value and "high" in value:
            low, high = value["low"], value["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise ClaimedError(f"search_space: {name}: low and high must be numbers with low < high, got {value}")
            kind = value.get("type") or ("int" if ptype == "int" else "float")
            if kind not in ("int", "float") or (ptype == "int" and kind != "int") or ptype not in ("int", "float"):
                raise ClaimedError(f"search_space: {name}: a {kind} range does not fit the {ptype} parameter")
            entry = {"type": kind, "low": low, "high": high, "log": bool(value.get("log", False))}
            if value.get("step") is not None:
                entry["step"] = value["step"]
            space[name] = entry
        else:
            raise ClaimedError(
                f'search_space: {name}: expected {{"low": .., "high": ..}} or a list of choices, got {value!r}'
            )
    return space


def _grid(space: dict) -> dict[str, list]:
    grid = {}
    for name, entry in space.items():
        if entry["type"] == "categorical":
            grid[name] = entry["choices"]
        elif entry["type"] == "int" or entry.get("step"):
            step = entry.get("step") or 1
            count = int(round((entry["high"] - entry["low"]) / step)) + 1
            grid[name] = [entry["low"] + i * step for i in range(count)]
        else:
            raise ClaimedError(f"search_space: {name}: the grid algorithm needs choices, an int range or a step")
    return grid


def _local(spec, space, objective, direction, fixed, trials, algorithm, seed, root) -> list[dict]:
    import optuna

    from claimed_airflow.core.runner import run
    from claimed_airflow.core.storage import Scope

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if algorithm == "grid":
        sampler = optuna.samplers.GridSampler(_grid(space), seed=seed)
    elif algorithm == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    rows: list[dict] = []

    def trial_function(trial) -> float:
        params = {}
        for name, entry in space.items():
            if entry["type"] == "categorical":
                params[name] = trial.suggest_categorical(name, entry["choices"])
            elif entry["type"] == "int":
                params[name] = trial.suggest_int(
                    name, entry["low"], entry["high"], step=entry.get("step") or 1, log=entry["log"]
                )
            else:
                params[name] = trial.suggest_float(
                    name, entry["low"], entry["high"], step=entry.get("step"), log=entry["log"]
                )
        started = time.monotonic()
        row = {"trial": trial.number, **{f"param_{k}": v for k, v in params.items()}}
        rows.append(row)
        try:
            result = run(
                spec,
                {**fixed, **params},
                root=root,
                scope=Scope(dag_id="trials", run_id=f"{trial.number:04d}", task_id=spec.name),
            )
        except ClaimedError as exc:
            row.update(state="failed", error=str(exc), seconds=time.monotonic() - started)
            if isinstance(exc, ParameterError) and ("unknown parameter" in str(exc) or "required by" in str(exc)):
                raise  # a mistake in the fixed arguments fails every trial: stop now
            log.warning("trial %d failed: %s", trial.number, exc)
            return math.nan
        if objective not in result or not isinstance(result[objective], (int, float)):
            raise ClaimedError(
                f"objective: {objective!r} is not a number returned by {spec.name} "
                f"(it returned {', '.join(k for k in result if k != 'manifest')})"
            )
        row.update(
            state="complete",
            value=float(result[objective]),
            seconds=time.monotonic() - started,
            manifest=result["manifest"],
        )
        log.info("trial %d: %s -> %s=%g", trial.number, params, objective, result[objective])
        return float(result[objective])

    study.optimize(trial_function, n_trials=trials)
    return rows


def katib_experiment(
    spec, trainer, space, *, objective, direction, fixed, trials, algorithm, parallel_trials, namespace, trial_root
) -> dict:
    """The Katib Experiment whose trials run ``claimed-airflow run <trainer>`` in the component image."""
    from claimed_airflow.components._kubernetes import dns_name

    name = dns_name(f"tune-{spec.name}")
    parameters, trial_parameters = [], []
    for pname, entry in space.items():
        if entry["type"] == "categorical":
            feasible = {"list": [str(c) for c in entry["choices"]]}
            ptype = "categorical"
        else:
            feasible = {"min": str(entry["low"]), "max": str(entry["high"])}
            if entry.get("step"):
                feasible["step"] = str(entry["step"])
            if entry["log"]:
                feasible["distribution"] = "logUniform"
            ptype = "int" if entry["type"] == "int" else "double"
        parameters.append({"name": pname, "parameterType": ptype, "feasibleSpace": feasible})
        trial_parameters.append({"name": pname, "reference": pname, "description": f"{spec.name} {pname}"})
    command = [
        "claimed-airflow",
        "run",
        trainer,
        "--output-root",
        trial_root,
        "--dag-id",
        name,
        "--run-id",
        "${trialSpec.Name}",
        "--task-id",
        dns_name(spec.name),
    ]
    for key, value in fixed.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    for pname in space:
        command += [f"--{pname}", f"${{trialParameters.{pname}}}"]
    resources = {"requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory}, "limits": {}}
    if spec.resources.gpus:
        resources["limits"]["nvidia.com/gpu"] = spec.resources.gpus
    return {
        "apiVersion": KATIB,
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "claimed-airflow"},
        },
        "spec": {
            "objective": {"type": direction, "objectiveMetricName": objective},
            "algorithm": {"algorithmName": algorithm, **({"algorithmSettings": []} if algorithm != "grid" else {})},
            "parallelTrialCount": parallel_trials,
            "maxTrialCount": trials,
            "maxFailedTrialCount": trials,
            "parameters": parameters,
            "metricsCollectorSpec": {
                "collector": {"kind": "StdOut"},
                "source": {"filter": {"metricsFormat": [METRICS_FORMAT]}},
            },
            "trialTemplate": {
                "primaryContainerName": "trainer",
                "trialParameters": trial_parameters,
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "trainer",
                                        "image": spec.image,
                                        "command": command,
                                        "resources": resources,
                                        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
                                    }
                                ],
                            },
                        }
                    },
                },
            },
        },
    }


def _katib(manifest, namespace, objective, conn_id, timeout, poll_interval) -> list[dict]:
    from claimed_airflow.components._kubernetes import KubeApi, KubeError, condition, wait_condition
    from claimed_airflow.core import waits

    api = KubeApi(KATIB, conn_id)
    name = manifest["metadata"]["name"]

    def submit() -> str:
        try:
            api.create(namespace, "experiments", manifest)
        except KubeError as exc:
            if exc.status != 409:
                raise ClaimedError(
                    f"katib_namespace: cannot create the Katib Experiment {name} in {namespace}: {exc}"
                ) from None
            log.info("Katib Experiment %s exists already; waiting for it", name)
            return "attached"
        log.info("created Katib Experiment %s/%s; waiting up to %g s", namespace, name, timeout)
        return "created"

    waits.once("submit", submit)
    state, obj = wait_condition(
        api, conn_id, namespace, "experiments", name, ("Succeeded", "Failed"), timeout, poll_interval
    )
    if state == "Failed":
        message = next((c.get("message", "") for c in obj["status"]["conditions"] if c["type"] == "Failed"), "")
        raise ClaimedError(f"backend: Katib Experiment {namespace}/{name} failed: {message}")
    listing = api.list(namespace, "trials", label_selector=f"katib.kubeflow.org/experiment={name}")
    rows = []
    for number, trial in enumerate(sorted(listing.get("items", []), key=lambda t: t["metadata"]["name"])):
        params = {p["name"]: _number(p["value"]) for p in trial["spec"].get("parameterAssignments", [])}
        metrics = {m["name"]: m for m in trial.get("status", {}).get("observation", {}).get("metrics", []) or []}
        done = condition(trial, "Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped")
        row = {"trial": number, "name": trial["metadata"]["name"], **{f"param_{k}": v for k, v in params.items()}}
        if done == "Succeeded" and objective in metrics:
            row.update(state="complete", value=float(metrics[objective]["latest"]))
        else:
            row.update(state="failed", error=done or "unfinished")
        rows.append(row)
    return rows


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _report(rows, space, objective, direction, results, plot) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(rows)
    if "value" not in frame:
        frame["value"] = float("nan")
    frame = frame.rename(columns={"value": objective})
    frame.to_csv(results, index=False)
    complete = frame[frame["state"] == "complete"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.plot(complete["trial"], complete[objective], "o", label=objective)
        best_so_far = complete[objective].cummax() if direction == "maximize" else complete[objective].cummin()
        ax.step(complete["trial"], best_so_far, where="post", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(objective)
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.savefig(plot, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    if complete.empty:
        errors = "; ".join(sorted({str(e) for e in frame.get("error", [])}))[:500]
        raise ClaimedError(f"trainer: all {len(frame)} trials failed: {errors}")
    best = complete.loc[complete[objective].idxmax() if direction == "maximize" else complete[objective].idxmin()]
    best_params = {name: _plain(best[f"param_{name}"]) for name in space}
    return {
        "best_params": best_params,
        "best_value": float(best[objective]),
        "best_trial": int(best["trial"]),
        "trials_complete": int(len(complete)),
        "trials_failed": int(len(frame) - len(complete)),
    }


def _plain(value):
    return value.item() if hasattr(value, "item") else value
