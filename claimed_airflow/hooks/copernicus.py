"""Connection to the Copernicus Climate Data Store (CDS API): URL in ``host``, API key in ``password``."""

from __future__ import annotations

from typing import Any

from claimed_airflow.hooks import with_connection_form
from claimed_airflow.version_compat import BaseHook

DEFAULT_URL = "https://cds.climate.copernicus.eu/api"


@with_connection_form
class CopernicusHook(BaseHook):
    """Credentials of the Copernicus Climate Data Store (or another ECMWF data store, e.g. ADS).

    The connection's ``host`` is the API URL (default ``https://cds.climate.copernicus.eu/api``) and its
    ``password`` the personal access token shown on the CDS profile page. The token is never logged.

    :param copernicus_conn_id: Airflow connection id.
    """

    conn_name_attr = "copernicus_conn_id"
    default_conn_name = "copernicus_default"
    conn_type = "copernicus"
    hook_name = "Copernicus Climate Data Store"

    def __init__(self, copernicus_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.copernicus_conn_id = copernicus_conn_id

    def credentials(self) -> tuple[str, str]:
        """(url, key) of the connection; a missing key is a clear error naming the connection."""
        conn = self.get_connection(self.copernicus_conn_id)
        url = (conn.host or DEFAULT_URL).rstrip("/")
        if "://" not in url:
            url = f"https://{url}"
        if not conn.password:
            raise ValueError(f"connection {self.copernicus_conn_id!r} has no API key (set its password)")
        return url, conn.password
