"""Train operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class FairnessMitigationTrainOperator(ClaimedOperator):
    """Train classifiers with and without AIF360 bias mitigation; report accuracy and fairness before/after.

    The table is split (seeded, stratified by label) into train and test rows. Reweighing: logistic
    regression without (before) and with (after) AIF360 Reweighing instance weights. Adversarial
    debiasing: AIF360's AdversarialDebiasing network without (before) and with (after) its
    adversary. Every model is measured on the test rows: accuracy and, for every protected column,
    the five metrics of ``metric.fairness`` with verdicts. Same data and seed give the same numbers.

    Runs the ``train.fairness_mitigation`` component. Outputs (XCom keys): report, models, plot, summary, predictions.

    :param table: Training table with the label, the protected columns and the features.
    :type table: str
    :param protected: Privileged group per protected column: a list of values (``{"sex":
        ["male"]}``) or an expression (``{"age": "age > 25"}``). Protected columns enter the models
        as 0/1.
    :type protected: dict
    :param label_column: Column with the true label.
    :type label_column: str
    :param favorable_label: Label value of the favorable outcome (e.g. ``1`` for good credit).
    :type favorable_label: str
    :param mitigate_for: Protected column the mitigation targets; default the first of
        ``protected``.
    :type mitigate_for: str | None
    :param categorical_columns: Columns to one-hot encode; default every non-numeric column.
    :type categorical_columns: list[str] | None
    :param drop_columns: Columns not used as features (e.g. ``personal_status``, which encodes sex).
    :type drop_columns: list[str] | None
    :param methods: Mitigations to run: ``reweighing`` and/or ``adversarial_debiasing`` (default
        both).
    :type methods: list[str] | None
    :param test_fraction: Share of rows held out for measuring (0 to 1).
    :type test_fraction: float
    :param epochs: Training epochs of the adversarial debiasing networks.
    :type epochs: int
    :param adversary_loss_weight: Weight of the adversary's loss in adversarial debiasing.
    :type adversary_loss_weight: float
    :param seed: Random seed of the split and the models.
    :type seed: int
    """

    component = "train.fairness_mitigation"
    component_fields = (
        "table",
        "protected",
        "label_column",
        "favorable_label",
        "mitigate_for",
        "categorical_columns",
        "drop_columns",
        "methods",
        "test_fraction",
        "epochs",
        "adversary_loss_weight",
        "seed",
    )
    ui_color = "#fff3e0"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        protected: dict,
        label_column: str = "label",
        favorable_label: str = "1",
        mitigate_for: str | None = None,
        categorical_columns: list[str] | None = None,
        drop_columns: list[str] | None = None,
        methods: list[str] | None = None,
        test_fraction: float = 0.3,
        epochs: int = 50,
        adversary_loss_weight: float = 0.1,
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.protected = protected
        self.label_column = label_column
        self.favorable_label = favorable_label
        self.mitigate_for = mitigate_for
        self.categorical_columns = categorical_columns
        self.drop_columns = drop_columns
        self.methods = methods
        self.test_fraction = test_fraction
        self.epochs = epochs
        self.adversary_loss_weight = adversary_loss_weight
        self.seed = seed


class MobileNetV2TrainOperator(ClaimedOperator):
    """Train MobileNetV2 (``weights=None``) to classify the labels of an image folder, on a GPU when one is present.

    Both frameworks train the same recipe: Adam with a one-cycle learning rate (warm-up to
    ``learning_rate``, then cosine annealing to zero), each epoch on a copy of the images mirrored
    and shifted at random (seeded; a small cohort is otherwise learnt by heart), and after the last
    epoch the batch-norm statistics are recomputed over the training images (the moving averages of
    a short training lag far behind the weights; Keras' MobileNetV2 keeps 99.9 % of them per step),
    so the saved, inference-mode network is the one trained. The saved model is then loaded as
    ``predict.images`` loads it and scored on the training images (``saved_train_accuracy``) and,
    with a held-out split, on the test images (``test_accuracy``); a saved model more than 5 points
    below the training accuracy is logged as a warning (``accuracy_gap``). ``framework="keras"``:
    Keras 3 (``model.keras``); seeded with deterministic TensorFlow ops, so the same data and
    parameters give the same model. ``framework="torch"``: torchvision's MobileNetV2 in channels-
    last layout, bf16 autocast on a GPU, a DataLoader with pinned memory feeding uint8 images that
    are normalised on the device. It writes ``model.onnx``, served with onnxruntime by
    ``predict.images``, ``deploy.local``/``serve``, KServe's ``onnx`` format and Watson ML's
    ``onnxruntime`` types, and ``model.pt`` (weights, for ``metric.robustness``). Needs the
    ``torch`` extra. Both take (N, size, size, 3) in [-1, 1] and output class probabilities.

    Runs the ``train.mobilenet_v2`` component. Outputs (XCom keys): model.

    :param images: Output of ``transform.dicom_to_images`` (``<label>/*.png`` and ``index.csv``).
    :type images: str
    :param epochs: Number of passes over the training images.
    :type epochs: int
    :param batch_size: Images per gradient step.
    :type batch_size: int
    :param image_size: Input width and height of the network in pixels (at least 32).
    :type image_size: int
    :param alpha: Width multiplier of MobileNetV2 (0.35, 0.5, 0.75, 1.0, ...).
    :type alpha: float
    :param learning_rate: Peak Adam learning rate of the one-cycle schedule.
    :type learning_rate: float
    :param seed: Random seed for weights initialisation and shuffling.
    :type seed: int
    :param framework: ``keras`` (TensorFlow/Keras 3) or ``torch`` (PyTorch, the fast path on GPUs).
    :type framework: str
    :param mixed_precision: ``torch`` on a GPU: compute in bfloat16 (autocast), keep weights in
        float32.
    :type mixed_precision: bool
    :param holdout: When ``index.csv`` has a ``split`` column (``filter.spark_cohort_split``), train
        on its ``train`` images only and score the saved model on its ``test`` images; false: train
        on every image.
    :type holdout: bool
    """

    component = "train.mobilenet_v2"
    component_fields = (
        "images",
        "epochs",
        "batch_size",
        "image_size",
        "alpha",
        "learning_rate",
        "seed",
        "framework",
        "mixed_precision",
        "holdout",
    )
    ui_color = "#fff3e0"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        images: str,
        epochs: int = 20,
        batch_size: int = 16,
        image_size: int = 64,
        alpha: float = 0.35,
        learning_rate: float = 0.001,
        seed: int = 42,
        framework: str = "keras",
        mixed_precision: bool = True,
        holdout: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.epochs = epochs
        self.batch_size = batch_size
        self.image_size = image_size
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.seed = seed
        self.framework = framework
        self.mixed_precision = mixed_precision
        self.holdout = holdout


class TfjobTrainOperator(ClaimedOperator):
    """Run a training component on N workers with GPUs as a Kubeflow TFJob or PyTorchJob and wait for it.

    Every replica runs the same ``claimed-airflow run <trainer>`` entrypoint in the component image;
    the Training Operator sets ``TF_CONFIG`` (TFJob) or ``MASTER_ADDR``/``RANK``/``WORLD_SIZE``
    (PyTorchJob), which the trainer's distribution strategy reads. Each replica writes its outputs
    under ``<job_root>/<job name>/<job name>/<pod name>/``; the chief's (TFJob ``Chief``, PyTorchJob
    ``Master``) are the result. Waits for Succeeded or Failed with a timeout; a failed job or a
    timeout fails the task with the operator's message.

    Runs the ``train.tfjob`` component. Outputs (XCom keys): job.

    :param trainer: Training component (name such as train.mobilenet_v2, or module:function).
    :type trainer: str
    :param job_root: Root URI shared by the replicas for their outputs, e.g. s3://bucket/training.
    :type job_root: str
    :param fixed: Arguments of the trainer (inputs as shared URIs, hyperparameters), as a JSON
        object.
    :type fixed: dict | None
    :param kind: TFJob (TensorFlow/Keras trainers) or PyTorchJob (PyTorch trainers).
    :type kind: str
    :param workers: Number of replicas in total (one chief plus workers - 1).
    :type workers: int
    :param gpus_per_worker: GPUs of each replica (default: the trainer's own GPU count).
    :type gpus_per_worker: int | None
    :param image: Container image of the replicas (default: the trainer's image).
    :type image: str | None
    :param job_name: Name of the job (default: the trainer's name with a random suffix); give a
        fixed name (e.g. from the run id) to re-attach to the same job when the task is retried.
    :type job_name: str | None
    :param job_namespace: Kubernetes namespace of the job.
    :type job_namespace: str
    :param job_node_selector: Node labels the replicas must run on (JSON object), e.g. a GPU type.
    :type job_node_selector: dict | None
    :param conn_id: Airflow Kubernetes connection (cncf.kubernetes provider); none: in-cluster or
        kubeconfig.
    :type conn_id: str | None
    :param timeout: Seconds to wait for the job to finish.
    :type timeout: float
    :param poll_interval: Seconds between status checks.
    :type poll_interval: float
    :param delete_on_timeout: Delete the job (and free its GPUs) when it times out.
    :type delete_on_timeout: bool
    """

    component = "train.tfjob"
    component_fields = (
        "trainer",
        "job_root",
        "fixed",
        "kind",
        "workers",
        "gpus_per_worker",
        "image",
        "job_name",
        "job_namespace",
        "job_node_selector",
        "conn_id",
        "timeout",
        "poll_interval",
        "delete_on_timeout",
    )
    ui_color = "#fff3e0"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        trainer: str,
        job_root: str,
        fixed: dict | None = None,
        kind: str = "TFJob",
        workers: int = 2,
        gpus_per_worker: int | None = None,
        image: str | None = None,
        job_name: str | None = None,
        job_namespace: str = "kubeflow",
        job_node_selector: dict | None = None,
        conn_id: str | None = None,
        timeout: float = 86400.0,
        poll_interval: float = 15.0,
        delete_on_timeout: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trainer = trainer
        self.job_root = job_root
        self.fixed = fixed
        self.kind = kind
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.image = image
        self.job_name = job_name
        self.job_namespace = job_namespace
        self.job_node_selector = job_node_selector
        self.conn_id = conn_id
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.delete_on_timeout = delete_on_timeout
