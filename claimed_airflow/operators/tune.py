"""Tune operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class HyperparametersTuneOperator(ClaimedOperator):
    """Search the hyperparameters of a training component for the best value of one of its returned metrics.

    ``backend=local`` runs the trials in this process with Optuna (each trial is an ordinary run of
    the training component, with its own outputs and manifest under ``trial_root``).
    ``backend=kubernetes`` creates a Katib Experiment whose trials run the same component through
    the ``claimed-airflow run`` entrypoint in the component image, and waits for it. Both write a
    table of the trials, a plot of the objective and the Katib Experiment manifest, and return the
    best parameters. The search space maps parameter names to ``{"low": a, "high": b}`` (``"log":
    true``, ``"step": s``, ``"type": "int"``/``"float"``) or to a list of choices, e.g.
    ``{"learning_rate": {"low": 0.001, "high": 0.3, "log": true}, "epochs": [5, 10, 20]}``.

    Runs the ``tune.hyperparameters`` component. Outputs (XCom keys): results, plot, experiment.

    :param trainer: Training component (name such as train.mobilenet_v2, or module:function).
    :type trainer: str
    :param search_space: Parameters to search and their ranges or choices (JSON object).
    :type search_space: dict
    :param objective: Value returned by the trainer to optimise, e.g. accuracy.
    :type objective: str
    :param direction: maximize or minimize the objective.
    :type direction: str
    :param fixed: Other arguments of the trainer, the same in every trial (e.g. input URIs).
    :type fixed: dict | None
    :param trials: Number of trials.
    :type trials: int
    :param algorithm: Search algorithm: tpe (Bayesian), random or grid.
    :type algorithm: str
    :param seed: Random seed of the sampler (local backend), for reproducible searches.
    :type seed: int | None
    :param backend: Where the trials run: local (Optuna, in this process) or kubernetes (a Katib
        Experiment).
    :type backend: str
    :param parallel_trials: Trials run at the same time (kubernetes backend).
    :type parallel_trials: int
    :param katib_namespace: Kubernetes namespace of the Katib Experiment.
    :type katib_namespace: str
    :param trial_root: Root URI of the trials' outputs (default: beside this task's outputs; an
        object store URI such as s3://... for the kubernetes backend).
    :type trial_root: str | None
    :param conn_id: Airflow Kubernetes connection for the Katib Experiment (cncf.kubernetes
        provider); none: in-cluster or kubeconfig.
    :type conn_id: str | None
    :param timeout: Seconds to wait for the Katib Experiment.
    :type timeout: float
    :param poll_interval: Seconds between status checks of the Katib Experiment.
    :type poll_interval: float
    """

    component = "tune.hyperparameters"
    component_fields = (
        "trainer",
        "search_space",
        "objective",
        "direction",
        "fixed",
        "trials",
        "algorithm",
        "seed",
        "backend",
        "parallel_trials",
        "katib_namespace",
        "trial_root",
        "conn_id",
        "timeout",
        "poll_interval",
    )
    ui_color = "#fff8e1"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        trainer: str,
        search_space: dict,
        objective: str,
        direction: str = "maximize",
        fixed: dict | None = None,
        trials: int = 10,
        algorithm: str = "tpe",
        seed: int | None = 0,
        backend: str = "local",
        parallel_trials: int = 1,
        katib_namespace: str = "kubeflow",
        trial_root: str | None = None,
        conn_id: str | None = None,
        timeout: float = 86400.0,
        poll_interval: float = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trainer = trainer
        self.search_space = search_space
        self.objective = objective
        self.direction = direction
        self.fixed = fixed
        self.trials = trials
        self.algorithm = algorithm
        self.seed = seed
        self.backend = backend
        self.parallel_trials = parallel_trials
        self.katib_namespace = katib_namespace
        self.trial_root = trial_root
        self.conn_id = conn_id
        self.timeout = timeout
        self.poll_interval = poll_interval
