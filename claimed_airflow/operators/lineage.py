"""OpenLineage for claimed tasks: datasets from artifact URIs, plus a facet naming the component.

Imported only when the OpenLineage provider asks a task for its lineage, so the provider package
works without OpenLineage installed.
"""

from __future__ import annotations

import attrs
from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.openlineage.extractors import OperatorLineage

from claimed_airflow.core.storage import dataset_name, read_json

SCHEMA_URL = "https://github.com/claimed-framework/claimed-airflow/blob/main/docs/ClaimedComponentRunFacet.json"


@attrs.define
class ClaimedComponentRunFacet(RunFacet):
    """The component that ran, its version and its parameters."""

    component: str
    version: str
    parameters: dict
    manifest: str

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def dataset(uri: str) -> Dataset:
    namespace, name = dataset_name(uri)
    return Dataset(namespace=namespace, name=name)


def lineage_of(result: dict) -> OperatorLineage:
    """Inputs and outputs recorded in the task's run manifest, as OpenLineage datasets."""
    record = read_json(result["manifest"])
    return OperatorLineage(
        inputs=[dataset(item["uri"]) for item in record["inputs"].values()],
        outputs=[dataset(item["uri"]) for item in record["outputs"].values()],
        run_facets={
            "claimed_component": ClaimedComponentRunFacet(
                component=record["component"],
                version=record["component_version"],
                parameters=record["parameters"],
                manifest=result["manifest"],
            )
        },
    )
