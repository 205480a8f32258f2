"""
### German credit fairness

The AIF360 German credit example of the CLAIMED trusted-AI slides, built from claimed-airflow operators:

1. **german_credit** reads `german.data` (UCI Statlog) with AIF360's conventions: `credit` 1 = good
   (the favorable label), `sex` from `personal_status`, `age` numeric,
2. **mitigation** trains classifiers on 70 % of the rows (seeded split) and measures them on the rest:
   logistic regression without and with AIF360 **reweighing**, and AIF360's adversarial-debiasing
   network without and with its adversary (**adversarial debiasing**); it writes the before/after
   table (`before_after.md`), a JSON report, a CSV and a chart,
3. **fairness_before** / **fairness_after** measure the plain and the debiased network's test
   predictions with `metric.fairness` (five AIF360 metrics per protected attribute, with verdicts).

Privileged groups: `sex` male, `age > age_threshold` (AIF360's default 25). Outputs go to
`<output root>/german_credit_fairness/<run_id>/<task_id>/`; the default data is the bundled copy of
`german.data` (CC BY 4.0, see `sample_data/german/german.doc`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from claimed_airflow.operators import (
    FairnessMetricOperator,
    FairnessMitigationTrainOperator,
    GermanCreditInputOperator,
)

SAMPLE = Path(__file__).resolve().parent / "sample_data" / "german" / "german.data"
PROTECTED = {"sex": ["male"], "age": "age > {{ params.age_threshold }}"}

with DAG(
    dag_id="german_credit_fairness",
    description="AIF360 German credit: measure bias, mitigate (reweighing, adversarial debiasing), measure again.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["claimed", "trusted-ai", "fairness"],
    default_args={"owner": "claimed"},
    params={
        "data": Param(str(SAMPLE), type="string", description="german.data (UCI Statlog German Credit)."),
        "age_threshold": Param(25, type="integer", description="Privileged age group: age > this."),
        "mitigate_for": Param(
            "age", type="string", enum=["age", "sex"], description="Protected attribute to mitigate bias for."
        ),
        "epochs": Param(50, type="integer", minimum=1, maximum=500, description="Adversarial debiasing epochs."),
        "seed": Param(42, type="integer", description="Random seed of the split and the models."),
    },
) as dag:
    german = GermanCreditInputOperator(task_id="german_credit", source="{{ params.data }}")
    mitigation = FairnessMitigationTrainOperator(
        task_id="mitigation",
        table=german.output["table"],
        protected=PROTECTED,
        label_column="credit",
        favorable_label="1",
        mitigate_for="{{ params.mitigate_for }}",
        drop_columns=["personal_status"],
        epochs="{{ params.epochs }}",
        seed="{{ params.seed }}",
    )
    for task_id, model in (("fairness_before", "neural_network"), ("fairness_after", "adversarial_debiasing")):
        FairnessMetricOperator(
            task_id=task_id,
            predictions=mitigation.output["predictions"],
            protected=PROTECTED,
            favorable_label="1",
            label_column="credit",
            prediction_column=f"prediction_{model}",
        )
