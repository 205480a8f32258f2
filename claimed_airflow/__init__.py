"""claimed-airflow: the CLAIMED component library as an Apache Airflow provider.

This module stays light on purpose: it is imported by Airflow's provider manager and by every
DAG that uses our operators, so it holds only the version and the provider metadata.
"""

__version__ = "0.1.0"

_OPERATOR_MODULES = (
    "claimed_airflow.operators.base",
    "claimed_airflow.operators.deploy",
    "claimed_airflow.operators.filter",
    "claimed_airflow.operators.input",
    "claimed_airflow.operators.metric",
    "claimed_airflow.operators.predict",
    "claimed_airflow.operators.train",
    "claimed_airflow.operators.transform",
    "claimed_airflow.operators.tune",
    "claimed_airflow.operators.visualize",
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
        "extra-links": [
            "claimed_airflow.operators.links.ArtifactsLink",
            "claimed_airflow.operators.links.DeploymentLink",
        ],
        "hooks": [
            {"integration-name": "CLAIMED", "python-modules": ["claimed_airflow.hooks.copernicus"]},
        ],
        "connection-types": [
            {"hook-class-name": "claimed_airflow.hooks.copernicus.CopernicusHook", "connection-type": "copernicus"},
        ],
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
                    "cache": {
                        "description": "Default of the claimed operators' cache option: reuse outputs of an "
                        "earlier run with the same component version, parameters and input contents.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    },
                    "engine": {
                        "description": "Default engine of claimed operators (local).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "local",
                        "default": "local",
                    },
                },
            }
        },
    }
