"""Kubeflow Pipelines adapter: claimed components as KFP v2 components, a DAG as a KFP pipeline.

Nothing here is imported by the operators or by DAGs, and ``kfp`` itself is imported only inside the
functions that need it: the adapter lives in its own environment (``claimed-airflow[kfp]``, see
README "Kubeflow Pipelines"), because kfp 2.17 caps ``kubernetes<31`` while the cncf.kubernetes
provider 10.6+ needs ``kubernetes>=32``.

- :mod:`claimed_airflow.kfp.step`: what a KFP step runs (the shared runner; no kfp, no Airflow).
- :mod:`claimed_airflow.kfp.components`: a component spec -> a KFP lightweight Python component.
- :mod:`claimed_airflow.kfp.ui`: the typed outputs a step shows in the Kubeflow UI.
- :mod:`claimed_airflow.kfp.plan`: a DAG of claimed operators -> an engine-neutral plan, or a clear
  refusal naming the task (no kfp needed).
- :mod:`claimed_airflow.kfp.approval`: the step a reviewer's approval task becomes (Kubeflow has no reviewer step).
- :mod:`claimed_airflow.kfp.pipeline`: the plan -> a KFP pipeline, compiled to IR YAML.
- :mod:`claimed_airflow.kfp.cli`: ``claimed-airflow export-kfp``.
"""
