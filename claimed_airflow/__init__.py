"""claimed-airflow: the CLAIMED component library as an Apache Airflow provider.

This module stays light on purpose: it is imported by Airflow's provider manager and by every
DAG that uses our operators, so it holds only the version and the provider metadata.
"""

__version__ = "0.1.0"

_OPERATOR_MODULES = (
    "claimed_airflow.operators.analyze",
    "claimed_airflow.operators.approval",
    "claimed_airflow.operators.base",
    "claimed_airflow.operators.deploy",
    "claimed_airflow.operators.filter",
    "claimed_airflow.operators.input",
    "claimed_airflow.operators.metric",
    "claimed_airflow.operators.monitoring",
    "claimed_airflow.operators.output",
    "claimed_airflow.operators.predict",
    "claimed_airflow.operators.train",
    "claimed_airflow.operators.transform",
    "claimed_airflow.operators.tune",
    "claimed_airflow.operators.visualize",
)

_HOOK_MODULES = (
    "claimed_airflow.hooks.copernicus",
    "claimed_airflow.hooks.dicom",
    "claimed_airflow.hooks.dicomweb",
    "claimed_airflow.hooks.watson_ml",
)

_MODEL_URIS = {"schemes": ["claimed-model"], "handler": "claimed_airflow.assets.sanitize_uri"}


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from claimed_airflow.core.settings import OPTIONS

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
        "hooks": [{"integration-name": "CLAIMED", "python-modules": list(_HOOK_MODULES)}],
        "triggers": [
            {
                "integration-name": "CLAIMED",
                "python-modules": ["claimed_airflow.triggers.poll", "claimed_airflow.triggers.studies"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "claimed_airflow.hooks.copernicus.CopernicusHook",
                "hook-name": "Copernicus Climate Data Store",
                "connection-type": "copernicus",
                "conn-fields": {},
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "API URL", "password": "API key"},
                    "placeholders": {"host": "https://cds.climate.copernicus.eu/api"},
                },
            },
            {
                "hook-class-name": "claimed_airflow.hooks.watson_ml.WatsonMachineLearningHook",
                "hook-name": "IBM Watson Machine Learning",
                "connection-type": "watson_ml",
                "conn-fields": {
                    "space_id": {"label": "Deployment space id", "schema": {"type": ["string", "null"]}},
                    "instance_id": {
                        "label": "Instance id (Cloud Pak for Data)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "version": {
                        "label": "Version (Cloud Pak for Data, e.g. 5.1)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify": {
                        "label": "Verify TLS (true/false or CA bundle path)",
                        "schema": {"type": ["string", "null"], "default": "true"},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "URL",
                        "login": "Username (Cloud Pak for Data only)",
                        "password": "API key",
                    },
                    "placeholders": {
                        "host": "https://us-south.ml.cloud.ibm.com",
                        "login": "leave empty on IBM Cloud",
                        "password": "IBM Cloud or Cloud Pak for Data API key",
                    },
                },
            },
            {
                "hook-class-name": "claimed_airflow.hooks.dicomweb.DicomWebHook",
                "hook-name": "DICOMweb (PACS)",
                "connection-type": "dicomweb",
                "conn-fields": {
                    "auth_type": {
                        "label": "Authentication (basic or bearer)",
                        "schema": {"type": ["string", "null"], "enum": ["basic", "bearer", None]},
                    },
                    "verify": {
                        "label": "Verify TLS (true/false or CA bundle path)",
                        "schema": {"type": ["string", "null"], "default": "true"},
                    },
                    "timeout": {"label": "Timeout (seconds)", "schema": {"type": ["number", "null"]}},
                    "allow_http": {"label": "Credentials over plain http", "schema": {"type": ["boolean", "null"]}},
                    "allowed_hosts": {
                        "label": "Hosts a dicomweb+https:// URI may name (comma-separated)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Username (basic auth)",
                        "password": "Password or bearer token",
                    },
                    "placeholders": {
                        "host": "https://pacs.example.org/dicom-web",
                        "login": "empty for a bearer token",
                    },
                },
            },
            {
                "hook-class-name": "claimed_airflow.hooks.dicom.DicomHook",
                "hook-name": "DICOM (DIMSE, PACS)",
                "connection-type": "dicom",
                "conn-fields": {
                    "ae_title": {"label": "PACS AE title", "schema": {"type": ["string", "null"]}},
                    "calling_ae_title": {
                        "label": "Our (calling) AE title",
                        "schema": {"type": ["string", "null"], "default": "CLAIMED"},
                    },
                    "timeout": {"label": "Timeout (seconds)", "schema": {"type": ["number", "null"]}},
                    "retrieve": {
                        "label": "Retrieve with (get: C-GET, move: C-MOVE to our storage SCP)",
                        "schema": {"type": ["string", "null"], "enum": ["get", "move", None]},
                    },
                    "move_ae_title": {"label": "C-MOVE: our storage AE title", "schema": {"type": ["string", "null"]}},
                    "move_port": {"label": "C-MOVE: our storage port", "schema": {"type": ["integer", "null"]}},
                    "move_bind": {"label": "C-MOVE: address to listen on", "schema": {"type": ["string", "null"]}},
                    "allowed_hosts": {
                        "label": "Hosts a dicom://AET@host:port URI may name (comma-separated)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password"],
                    "placeholders": {"host": "pacs.example.org", "port": "104"},
                },
            },
        ],
        # model Assets (Datasets on 2.11, which reads dataset-uris): claimed-model://<name>
        "asset-uris": [_MODEL_URIS],
        "dataset-uris": [_MODEL_URIS],
        "config": {
            "claimed": {
                "description": "Settings of the claimed-airflow provider (lookup order: task argument, Variable "
                "claimed_<option>, this section, environment CLAIMED_<OPTION>, default).",
                "options": {name: option.config for name, option in OPTIONS.items()},
            }
        },
    }
