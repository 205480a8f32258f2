"""Deploy operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator
from claimed_airflow.operators.links import DeploymentLink
from claimed_airflow.version_compat import SkipMixin


class ConditionBlessingDeployOperator(ClaimedOperator, SkipMixin):
    """Evaluate ``condition`` over the values of metrics JSON files; false skips downstream tasks.

    In Airflow the tasks after the gate are skipped (not failed) when the model is not blessed. The
    values of ``metrics`` keep their names; those of the optional ``fairness`` and ``robustness``
    files are prefixed, e.g. ``fairness_biased``, ``fairness_attributes_PatientSex_biased``,
    ``robustness_min_accuracy``, so one condition can weigh accuracy, fairness and robustness
    together.

    Runs the ``deploy.condition_blessing`` component. Outputs (XCom keys): none.

    :param metrics: JSON file of metric values (nested objects are flattened to ``outer_inner``).
    :type metrics: str
    :param condition: Boolean expression, e.g. ``accuracy >= 0.8 and fairness_biased == 0``.
    :type condition: str
    :param fairness: Optional JSON of ``metric.fairness``; its values get the prefix ``fairness_``.
    :type fairness: str | None
    :param robustness: Optional JSON of ``metric.robustness``; its values get the prefix
        ``robustness_``.
    :type robustness: str | None
    """

    component = "deploy.condition_blessing"
    component_fields = ("metrics", "condition", "fairness", "robustness")
    gate = True
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        metrics: str,
        condition: str = "accuracy >= 0.5",
        fairness: str | None = None,
        robustness: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.condition = condition
        self.fairness = fairness
        self.robustness = robustness


class KServeDeployOperator(ClaimedOperator):
    """Create or update a KServe ``InferenceService`` for a published model and wait until it is Ready.

    Talks to the Kubernetes API through the cncf.kubernetes provider's ``KubernetesHook`` (Airflow
    connection ``conn_id``); without a connection (or without Airflow) the usual kubeconfig or in-
    cluster configuration is used. An existing service of the same name is replaced (its
    ``resourceVersion`` is kept), so re-running the task rolls out the new model.

    Runs the ``deploy.kserve`` component. Outputs (XCom keys): none.

    :param storage_uri: Model location the cluster can read (``s3://``, ``gs://``, ``pvc://``, ...),
        e.g. the ``model_uri`` of ``deploy.local`` with an object-storage ``models_root``.
    :type storage_uri: str
    :param service_name: Name of the InferenceService (lowercase letters, digits and ``-``).
    :type service_name: str
    :param namespace: Kubernetes namespace of the InferenceService; default the connection's
        namespace, else ``default``.
    :type namespace: str | None
    :param model_format: ``claimed`` (default: ``claimed-airflow serve`` as a custom predictor,
        reads ``model.keras``) or a KServe model format such as ``tensorflow`` (SavedModel) or
        ``onnx``.
    :type model_format: str
    :param runtime: KServe ServingRuntime to use with a model format (default: KServe picks one).
    :type runtime: str | None
    :param protocol_version: Inference protocol of a serving runtime: ``v1`` or ``v2``.
    :type protocol_version: str
    :param image: Container image of the ``claimed`` predictor.
    :type image: str
    :param service_account: Service account with the credentials to read ``storage_uri``.
    :type service_account: str | None
    :param cpu: CPU request of each predictor replica.
    :type cpu: str
    :param memory: Memory request and limit of each predictor replica.
    :type memory: str
    :param gpus: NVIDIA GPUs per predictor replica (``nvidia.com/gpu`` limit).
    :type gpus: int
    :param min_replicas: Minimum number of predictor replicas (0 allows scale to zero).
    :type min_replicas: int
    :param max_replicas: Maximum number of predictor replicas.
    :type max_replicas: int
    :param ready_timeout: Seconds to wait for the ``Ready`` condition before failing.
    :type ready_timeout: int
    :param poll_interval: Seconds between two status checks.
    :type poll_interval: float
    :param conn_id: Airflow Kubernetes connection (cncf.kubernetes provider); none: kubeconfig/in-
        cluster.
    :type conn_id: str | None
    """

    component = "deploy.kserve"
    component_fields = (
        "storage_uri",
        "service_name",
        "namespace",
        "model_format",
        "runtime",
        "protocol_version",
        "image",
        "service_account",
        "cpu",
        "memory",
        "gpus",
        "min_replicas",
        "max_replicas",
        "ready_timeout",
        "poll_interval",
        "conn_id",
    )
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        storage_uri: str,
        service_name: str,
        namespace: str | None = None,
        model_format: str = "claimed",
        runtime: str | None = None,
        protocol_version: str = "v2",
        image: str = "ghcr.io/claimed-framework/claimed-airflow",
        service_account: str | None = None,
        cpu: str = "1",
        memory: str = "2Gi",
        gpus: int = 0,
        min_replicas: int = 1,
        max_replicas: int = 1,
        ready_timeout: int = 600,
        poll_interval: float = 5.0,
        conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.storage_uri = storage_uri
        self.service_name = service_name
        self.namespace = namespace
        self.model_format = model_format
        self.runtime = runtime
        self.protocol_version = protocol_version
        self.image = image
        self.service_account = service_account
        self.cpu = cpu
        self.memory = memory
        self.gpus = gpus
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.conn_id = conn_id


class LocalDeployOperator(ClaimedOperator):
    """Copy a model folder to ``<models_root>/<model_name>/<version>`` with the next version number.

    The copy is atomic: a reader sees either no new version or a complete one, and concurrent runs
    get distinct versions (on local folders; see ``core.storage.commit_version`` for object
    storage).

    Runs the ``deploy.local`` component. Outputs (XCom keys): none.

    :param model: Model folder to publish.
    :type model: str
    :param model_name: Name of the model in the registry folder (letters, digits, ``_.-``).
    :type model_name: str
    :param models_root: Registry folder or URI; default ``<output root>/models``.
    :type models_root: str | None
    """

    component = "deploy.local"
    component_fields = ("model", "model_name", "models_root")
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        model_name: str = "model",
        models_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.model_name = model_name
        self.models_root = models_root


class WatsonMLDeployOperator(ClaimedOperator):
    """Store a model in Watson Machine Learning, create an online deployment, score a sample image.

    A Keras model is exported as a TensorFlow SavedModel, an ONNX model (``framework="torch"``) is
    sent as it is; the ``tar.gz`` is stored in the deployment space with ``model_type`` and the
    software specification ``software_spec``, and deployed online; the task waits until the
    deployment is ready, then scores one image to prove it answers. Credentials come from an Airflow
    connection of type ``watson_ml`` (the API key is never logged or returned); without one (no
    ``conn_id``, or no Airflow there) from ``WATSONX_URL``, ``WATSONX_APIKEY``, ``WATSONX_USERNAME``
    and ``WATSONX_SPACE_ID``.

    Runs the ``deploy.watson_ml`` component. Outputs (XCom keys): none.

    :param model: Model folder from ``train.mobilenet_v2`` (``model.keras`` or ``model.onnx`` +
        ``labels.json``).
    :type model: str
    :param deployment_name: Name of the online deployment.
    :type deployment_name: str
    :param model_name: Name of the stored model; default the deployment name.
    :type model_name: str | None
    :param model_type: Watson ML model type; default ``tensorflow_2.14`` for a Keras model,
        ``onnxruntime_1.16`` for an ONNX one.
    :type model_type: str | None
    :param software_spec: Software specification of the runtime; default ``runtime-24.1-py3.11``
        (Keras) or ``onnxruntime_opset_19`` (ONNX).
    :type software_spec: str | None
    :param space_id: Deployment space id; default the connection's ``space_id``.
    :type space_id: str | None
    :param sample: Image file, or image folder with ``index.csv``, whose first image is scored;
        default a blank image.
    :type sample: str | None
    :param deployment_timeout: Seconds to wait for the deployment to become ready.
    :type deployment_timeout: int
    :param poll_interval: Seconds between two deployment status checks.
    :type poll_interval: float
    :param conn_id: Airflow connection of type ``watson_ml`` (one not defined is an error); empty:
        ``WATSONX_*`` environment variables.
    :type conn_id: str | None
    """

    component = "deploy.watson_ml"
    component_fields = (
        "model",
        "deployment_name",
        "model_name",
        "model_type",
        "software_spec",
        "space_id",
        "sample",
        "deployment_timeout",
        "poll_interval",
        "conn_id",
    )
    ui_color = "#e0f7fa"
    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        model: str,
        deployment_name: str = "claimed-model",
        model_name: str | None = None,
        model_type: str | None = None,
        software_spec: str | None = None,
        space_id: str | None = None,
        sample: str | None = None,
        deployment_timeout: int = 600,
        poll_interval: float = 5.0,
        conn_id: str | None = "watson_ml_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.deployment_name = deployment_name
        self.model_name = model_name
        self.model_type = model_type
        self.software_spec = software_spec
        self.space_id = space_id
        self.sample = sample
        self.deployment_timeout = deployment_timeout
        self.poll_interval = poll_interval
        self.conn_id = conn_id
