"""
### DICOM to deployment

The CLAIMED health-care computer-vision pipeline, built from claimed-airflow operators:

1. **dicom_input** reads a folder of DICOM files and a labels table (unreadable files are set aside
   and listed in the task's manifest); with `extra_sources` (retraining on the union: the studies
   radiologists labelled since, see `model_retraining`) more sources with their labels into the same table,
2. **cohort** selects the cohort with a Spark SQL condition (`cohort` param) and splits it into train
   and test by a seeded hash of each SOPInstanceUID (`test_fraction`, `seed`: the same split on every
   engine and backend); a hospital's metadata table has millions of rows, so with `cohort_engine`
   `spark` it runs through spark-submit, else in-process (DuckDB for small tables, Spark for large ones);
   **dicom_to_images** decodes the selected files into normalised PNGs per label (the `split` column
   goes into its `index.csv`): with the `shards` param N, `dicom_input` cuts its files into N shards,
   `dicom_to_images_shard` decodes each in its own task (its own pod on Kubernetes, a `dsl.ParallelFor` step
   on Kubeflow) and `dicom_to_images` merges them into the one folder (N = 1: the same folder as unsharded),
3. **train** fits a MobileNetV2 (no pretrained weights, seeded) on the **train** split with Keras 3, or
   with PyTorch when the `framework` param is `torch` (bf16 on a GPU; the model is exported as ONNX),
   and scores the saved model in inference mode on both splits (a warning when it falls short of the
   training accuracy),
4. every evaluation uses the held-out **test** split only: **predict** scores its images; in parallel
   **confusion_matrix** measures accuracy and the majority-class rate, **fairness**
   measures five AIF360 bias metrics by PatientSex and PatientAge (rows without an age are left out
   of the age metrics), **lime** explains a few predictions (superpixel overlays) and **robustness**
   measures accuracy under ART's FGSM and PGD attacks,
5. **blessing** checks accuracy, fairness and robustness together (`accuracy >= min_accuracy and
   accuracy - majority_accuracy >= min_over_majority and fairness_biased <= max_biased and
   robustness_min_accuracy >= min_robust_accuracy`: a model no better than always answering the test
   split's most frequent label is refused); when false, **deploy** is skipped; beside it **notify** e-mails the
   metrics and the outcome to `notify_to` (Airflow connection `smtp_default`; empty: nothing sent),
6. **reference_profile** records what the model was trained on (image statistics, DICOM header mix,
   test-split predictions, error rate per PatientSex and age group) in a copy of the model folder, and
   **deploy** publishes that folder (the `model_monitoring` DAG's reference) to a versioned model folder
   and updates the Asset `claimed-model-chestxray_mobilenet_v2`, so DAGs scheduled on it run after each
   deployment; the `deploy_target` param then serves it: `local` (the folder only), `kserve` (an
   InferenceService through the Kubernetes connection `kubernetes_default`) or `watson_ml` (a Watson ML
   online deployment through the connection `watson_ml_default`). The choice is a gate per target
   (`to_kserve`, `to_watson_ml`), so the other target's task is skipped, in Airflow and on Kubeflow.

**dicom_results** writes the blessed model's predictions (test split) as DICOM (`results_kind`: `sr` Comprehensive
SR linked to the source images, or `sc` Secondary Capture) and, with `results_destination` (e.g.
`dicomweb://pacs_default` or `dicom://pacs_dimse`), stores them in the PACS. `dicom_source` may be a PACS
query too: `dicomweb://pacs_default?modality=CR&study_date=20200101-20201231` (DICOMweb, Airflow connection
`pacs_default`) or `dicom://<connection>?...` (C-FIND/C-GET); join the labels on `label_key` SOPInstanceUID then.

With `require_approval` (Airflow 3.1+), **approval** waits after the gate for a reviewer's decision in the
Airflow UI (*Required Actions*: accuracy, fairness and robustness numbers, links to the confusion matrix,
fairness plot and LIME overlays); *Reject* skips **deploy**, no answer within three days fails the task.

Outputs go to `<output root>/dicom_to_deployment/<run_id>/<task_id>/`; the default data is the
bundled sample `sample_data/chestxray_phantoms`: 400 synthetic chest phantoms (CR, 64 px, written by
`tests/synthetic_chestxray.py`; `COVID-19` images carry bright opacities in the lungs), a cohort the
default Params learn (about 80 test images). `sample_data/chestxray` holds 10 real chest X-rays, too few
to learn from.

The `engine` param picks where the tasks run: `local` (the worker), `kubernetes` (one pod per task
from the component image; **train** asks for an `nvidia.com/gpu`), or `default`: the Airflow Variable
`claimed_engine`, else `[claimed] engine`, else local. The DAG itself does not change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from claimed_airflow.assets import model_asset
from claimed_airflow.components.input._union import EXTRA_SOURCE_SCHEMA, MAX_SOURCES
from claimed_airflow.operators import (
    ConditionBlessingDeployOperator,
    ConfusionMatrixMetricOperator,
    DicomInputOperator,
    DicomOutputOperator,
    DicomToImagesTransformOperator,
    FairnessMetricOperator,
    ImagesPredictOperator,
    KServeDeployOperator,
    LimeMetricOperator,
    LocalDeployOperator,
    MergeShardsTransformOperator,
    MobileNetV2TrainOperator,
    NotificationEmailMonitoringOperator,
    ReferenceProfileMetricOperator,
    RobustnessMetricOperator,
    SparkCohortSplitFilterOperator,
    WatsonMLDeployOperator,
)
from claimed_airflow.operators.approval import ModelApprovalOperator
from claimed_airflow.operators.sharding import shard_indexes

SAMPLE = Path(__file__).resolve().parent / "sample_data" / "chestxray_phantoms"
BLESSING = (
    "accuracy >= {{ params.min_accuracy }} and accuracy - majority_accuracy >= {{ params.min_over_majority }}"
    " and fairness_biased <= {{ params.max_biased }} and robustness_min_accuracy >= {{ params.min_robust_accuracy }}"
)

with DAG(
    dag_id="dicom_to_deployment",
    description="DICOM in, MobileNetV2 trained, evaluated, blessed and deployed.",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["claimed", "dicom", "computer-vision"],
    default_args={"owner": "claimed", "cache": "{{ params.cache }}", "engine": "{{ params.engine }}"},
    params={
        "engine": Param(
            "default",
            type="string",
            enum=["default", "local", "kubernetes"],
            description="Where tasks run; default: Variable claimed_engine / [claimed] engine / local.",
        ),
        "cohort_engine": Param(
            "",
            type="string",
            enum=["", "local", "kubernetes", "spark"],
            description="Engine of the cohort step; spark: spark-submit; empty: as engine.",
        ),
        "cohort": Param(
            "label IS NOT NULL AND Modality IN ('CR', 'DX')",
            type="string",
            description="Cohort: Spark SQL condition over the DICOM metadata (PatientAge, PatientSex, Modality, ...).",
        ),
        "test_fraction": Param(
            0.2, type="number", minimum=0, maximum=1, description="Share of the cohort in the test split."
        ),
        "deploy_target": Param(
            "local",
            type="string",
            enum=["local", "kserve", "watson_ml"],
            description="Where the blessed model goes: local (model folder), kserve or watson_ml.",
        ),
        "dicom_source": Param(
            str(SAMPLE / "dicom"),
            type="string",
            description="Folder, glob or URI of DICOM files, or a PACS query: dicomweb://<conn>?modality=CR&...",
        ),
        "labels": Param(str(SAMPLE / "labels.csv"), type="string", description="Labels table (column file, label)."),
        "extra_sources": Param(
            [],
            type="array",
            maxItems=MAX_SOURCES,
            items=EXTRA_SOURCE_SCHEMA,
            description="Retraining on the union: more DICOM sources, each with its labels table "
            "[{source, labels, label_key (default SOPInstanceUID)}], read with dicom_source (see model_retraining).",
        ),
        "label_key": Param(
            "file",
            type="string",
            description="Column joining labels to the DICOM metadata: file, or SOPInstanceUID for a PACS source.",
        ),
        "results_kind": Param(
            "sr", type="string", enum=["sr", "sc"], description="Results as DICOM SR or Secondary Capture."
        ),
        "results_destination": Param(
            "",
            type="string",
            description="Store the DICOM results in this PACS: dicomweb://<conn> or dicom://<conn>; empty: not stored.",
        ),
        "image_size": Param(64, type="integer", minimum=32, maximum=512, description="Image width/height in pixels."),
        "epochs": Param(20, type="integer", minimum=1, maximum=200, description="Training epochs."),
        "seed": Param(42, type="integer", description="Random seed of the training."),
        "shards": Param(
            1,
            type="integer",
            minimum=1,
            maximum=1024,
            description="Decode the cohort in this many shards, one task (one pod) each, then merge them.",
        ),
        "framework": Param(
            "keras",
            type="string",
            enum=["keras", "torch"],
            description="Training framework: keras (model.keras) or torch (PyTorch, model.onnx; fast on GPUs).",
        ),
        "cache": Param(
            False, type="boolean", description="Reuse outputs of earlier runs with the same inputs and parameters."
        ),
        "min_accuracy": Param(
            0.8,
            type="number",
            minimum=0,
            maximum=1,
            description="Blessing: deploy if the accuracy on the test split >= this.",
        ),
        "min_over_majority": Param(
            0.05,
            type="number",
            minimum=-1,
            maximum=1,
            description="Blessing: accuracy must beat always answering the test split's majority label by this.",
        ),
        "favorable_label": Param("COVID-19", type="string", description="Fairness: the favorable prediction."),
        "max_biased": Param(
            10.0,
            type="number",
            minimum=0,
            maximum=10,
            description="Blessing: at most this many biased metrics (of 10).",
        ),
        "epsilons": Param(
            [0.05],
            type="array",
            items={"type": "number"},
            description="Robustness: FGSM/PGD L-inf sizes, images in [-1, 1].",
        ),
        "min_robust_accuracy": Param(
            0.0, type="number", minimum=0, maximum=1, description="Blessing: minimum accuracy under attack."
        ),
        "require_approval": Param(
            False,
            type="boolean",
            description="A reviewer approves the model in Required Actions before deploy (Airflow 3.1+).",
        ),
        "notify_to": Param(
            [],
            type="array",
            items={"type": "string"},
            description="E-mail the metrics and the blessing outcome to these addresses (connection smtp_default).",
        ),
        "models_root": Param(
            "", type="string", description="Model store deploy publishes to; empty: <output root>/models."
        ),
    },
) as dag:
    dicom = DicomInputOperator(
        task_id="dicom_input",
        source="{{ params.dicom_source }}",
        labels="{{ params.labels }}",
        label_key="{{ params.label_key }}",
        label_column="label",
        extra_sources="{{ params.extra_sources }}",
        shards="{{ params.shards }}",
    )
    cohort = SparkCohortSplitFilterOperator(
        task_id="cohort",
        table=dicom.output["metadata"],
        where="{{ params.cohort }}",
        key="SOPInstanceUID",
        test_fraction="{{ params.test_fraction }}",
        seed="{{ params.seed }}",
        engine="{{ params.cohort_engine or params.engine }}",
    )
    # one task (one pod) per shard of the input's files, merged into the folder one task would write
    shards = DicomToImagesTransformOperator.partial(
        task_id="dicom_to_images_shard",
        metadata=cohort.output["output"],
        files=dicom.output["files"],
        shard_tables=dicom.output["shard_tables"],
        size="{{ params.image_size }}",
    ).expand(shard_index=shard_indexes(dicom))
    images = MergeShardsTransformOperator(task_id="dicom_to_images", parts=shards.output["images"])
    train = MobileNetV2TrainOperator(
        task_id="train",
        images=images.output["merged"],
        epochs="{{ params.epochs }}",
        image_size="{{ params.image_size }}",
        seed="{{ params.seed }}",
        framework="{{ params.framework }}",
    )
    # every evaluation on the held-out test split; train used the train split only
    predict = ImagesPredictOperator(
        task_id="predict", model=train.output["model"], images=images.output["merged"], split="test"
    )
    metrics = ConfusionMatrixMetricOperator(task_id="confusion_matrix", predictions=predict.output["predictions"])
    fairness = FairnessMetricOperator(
        task_id="fairness",
        predictions=predict.output["predictions"],
        protected={"PatientSex": ["M"], "PatientAge": "PatientAge >= 40"},
        favorable_label="{{ params.favorable_label }}",
    )
    lime = LimeMetricOperator(
        task_id="lime",
        model=train.output["model"],
        data=images.output["merged"],
        num_explained=2,
        num_samples=40,
        split="test",
        seed="{{ params.seed }}",
    )
    robustness = RobustnessMetricOperator(
        task_id="robustness",
        model=train.output["model"],
        data=images.output["merged"],
        epsilons="{{ params.epsilons }}",
        max_samples=8,
        pgd_steps=5,
        num_examples=2,
        split="test",
        seed="{{ params.seed }}",
    )
    predict >> [lime, robustness]  # explain and attack the model that was evaluated
    blessing = ConditionBlessingDeployOperator(
        task_id="blessing",
        metrics=metrics.output["metrics"],
        fairness=fairness.output["metrics"],
        robustness=robustness.output["metrics"],
        condition=BLESSING,
    )
    # beside the gate, not after it: the outcome is reported whether the model is blessed or not
    NotificationEmailMonitoringOperator(
        task_id="notify",
        metrics=metrics.output["metrics"],
        fairness=fairness.output["metrics"],
        robustness=robustness.output["metrics"],
        condition=BLESSING,
        to="{{ params.notify_to }}",
        title="dicom_to_deployment",
    )
    # what the model was trained on (image statistics, header mix, test-split predictions, error rate per
    # group), stored in the deployed model folder: the reference of the model_monitoring DAG
    profile = ReferenceProfileMetricOperator(
        task_id="reference_profile",
        model=train.output["model"],
        images=images.output["merged"],
        predictions=predict.output["predictions"],
        favorable_label="{{ params.favorable_label }}",
    )
    deploy = LocalDeployOperator(
        task_id="deploy",
        model=profile.output["profiled_model"],
        model_name="chestxray_mobilenet_v2",
        models_root="{{ params.models_root }}",
        outlets=[model_asset("chestxray_mobilenet_v2")],
    )
    approval = ModelApprovalOperator(
        task_id="approval",
        required="{{ params.require_approval }}",
        subject="Deploy chestxray_mobilenet_v2 of run {{ run_id }}?",
        metrics=metrics.output["metrics"],
        fairness=fairness.output["metrics"],
        robustness=robustness.output["metrics"],
        links={
            "confusion matrix": metrics.output["plot"],
            "fairness plot": fairness.output["plot"],
            "LIME overlays": lime.output["explanations"],
        },
        response_timeout=timedelta(days=3),
    )
    blessing >> approval >> deploy
    # the blessed model's predictions as DICOM, stored in the PACS when results_destination is set
    results = DicomOutputOperator(
        task_id="dicom_results",
        predictions=predict.output["predictions"],
        files=dicom.output["files"],
        kind="{{ params.results_kind }}",
        model_name="chestxray_mobilenet_v2",
        destination="{{ params.results_destination }}",
    )
    blessing >> results
    # serving: one gate per target, true for the chosen deploy_target only (skips the other targets)
    target = "'{{ params.deploy_target }}' == "
    to_kserve = ConditionBlessingDeployOperator(
        task_id="to_kserve", metrics=metrics.output["metrics"], condition=target + "'kserve'"
    )
    to_watson_ml = ConditionBlessingDeployOperator(
        task_id="to_watson_ml", metrics=metrics.output["metrics"], condition=target + "'watson_ml'"
    )
    kserve = KServeDeployOperator(
        task_id="kserve",
        storage_uri=train.output["model"],  # the blessed model (a URI the cluster reads: object-storage root)
        service_name="chestxray-mobilenet-v2",
        conn_id="kubernetes_default",
    )
    watson_ml = WatsonMLDeployOperator(
        task_id="watson_ml",
        model=train.output["model"],
        deployment_name="chestxray_mobilenet_v2",
        conn_id="watson_ml_default",
    )
    deploy >> to_kserve >> kserve
    deploy >> to_watson_ml >> watson_ml
