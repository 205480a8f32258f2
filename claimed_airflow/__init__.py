"""claimed-airflow: the CLAIMED component library as an Apache Airflow provider.

This module stays light on purpose: it is imported by Airflow's provider manager and by every
DAG that uses our operators, so it holds only the version and the provider metadata.
"""

__version__ = "0.1.0"

_OPERATOR_MODULES = (
    "claimed_airflow.operators.analyze",
    "claimed_airflow.operators.base",
    "claimed_airflow.operators.deploy",
    "claimed_airflow.operators.filter",
    "claimed_airflow.operators.input",
    "claimed_airflow.operators.metric",
    "claimed_airflow.operators.predict",
    "claimed_airflow.operators.train",
    "claimed_airflow.operators.transform",
)


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "claimed-airflow",
        "name": "CLAIMED",
        "description": "CLAIMED components (AI, ML, ETL, data science, DICOM) as Airflow operators.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "CLAIMED",
                "external-doc-url": "https://github.com/claimed-framework",
                "tags": ["software"],
            }
        ],
        "operators": [
            {"integration-name": "CLAIMED", "python-modules": list(_OPERATOR_MODULES)},
        ],
        "hooks": [],
        "connection-types": [],
        "config": {
            "claimed": {
                "description": "Settings of the claimed-airflow provider.",
                "options": {
                    "output_root": {
                        "description": "Root URI (local folder, file:// or s3://) under which tasks write "
                        "their outputs as <root>/<dag_id>/<run_id>/<task_id>/<output>.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://bucket/claimed",
                        "default": None,
                    },
                    "engine": {
                        "description": "Default engine of claimed operators: local, kubernetes or spark "
                        "(an Airflow Variable claimed_engine wins; an operator's engine argument wins over both).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "kubernetes",
                        "default": "local",
                    },
                    "image": {
                        "description": "engine=kubernetes: component image (default "
                        "ghcr.io/claimed-framework/claimed-airflow:<version>); Variable claimed_image wins.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "registry.example.com/claimed-airflow:0.1.0",
                        "default": None,
                    },
                    "gpu_image": {
                        "description": "engine=kubernetes: image of GPU components (default <image>:<version>-gpu).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "registry.example.com/claimed-airflow:0.1.0-gpu",
                        "default": None,
                    },
                    "kubernetes_namespace": {
                        "description": "engine=kubernetes: namespace of the pods (default: the connection's).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "claimed",
                        "default": None,
                    },
                    "gpu_node_selector": {
                        "description": "engine=kubernetes: node selector (JSON) of GPU components; "
                        "node_selector, tolerations, gpu_tolerations and image_pull_secrets work alike.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": '{"nvidia.com/gpu.present": "true"}',
                        "default": None,
                    },
                },
            }
        },
    }
