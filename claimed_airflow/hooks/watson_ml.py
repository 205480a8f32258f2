"""Connection to IBM Watson Machine Learning (watsonx.ai runtime) through ``ibm-watsonx-ai``'s APIClient."""

from __future__ import annotations

from typing import Any

from claimed_airflow.hooks import with_connection_form
from claimed_airflow.version_compat import BaseHook


def _flag(value: Any) -> bool | str | None:
    """``verify`` extra: true/false, or the path of a CA bundle."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    return text or None


@with_connection_form
class WatsonMachineLearningHook(BaseHook):
    """Watson Machine Learning through ``ibm_watsonx_ai.APIClient``, credentials from an Airflow connection.

    Connection fields: **URL** (host, e.g. ``https://us-south.ml.cloud.ibm.com``, or the Cloud Pak for
    Data URL), **API key** (password), **Username** (login, Cloud Pak for Data only) and the extras
    ``space_id`` (deployment space), ``instance_id`` and ``version`` (Cloud Pak for Data) and ``verify``
    (true/false or a CA bundle path). The API key is registered with Airflow's secrets masker and never
    returned, logged or put in XCom.

    :param watson_ml_conn_id: Airflow connection id (type ``watson_ml``).
    :param space_id: Deployment space; default the connection's ``space_id`` extra.
    """

    conn_name_attr = "watson_ml_conn_id"
    default_conn_name = "watson_ml_default"
    conn_type = "watson_ml"
    hook_name = "IBM Watson Machine Learning"

    def __init__(self, watson_ml_conn_id: str = default_conn_name, space_id: str | None = None) -> None:
        super().__init__()
        self.watson_ml_conn_id = watson_ml_conn_id
        self._space_id = space_id

    def credentials(self):
        """``ibm_watsonx_ai.Credentials`` of the connection (the API key is masked in Airflow logs)."""
        from ibm_watsonx_ai import Credentials

        from claimed_airflow.core.errors import ClaimedError

        conn = self.get_connection(self.watson_ml_conn_id)
        extra = conn.extra_dejson
        if not conn.host:
            raise ClaimedError(f"conn_id: connection {self.watson_ml_conn_id!r} has no URL (host)")
        if not conn.password:
            raise ClaimedError(f"conn_id: connection {self.watson_ml_conn_id!r} has no API key (password)")
        _mask(conn.password)
        url = conn.host if "://" in conn.host else f"https://{conn.host}"
        return Credentials(
            url=url.rstrip("/"),
            api_key=conn.password,
            username=conn.login or None,
            instance_id=extra.get("instance_id") or None,
            version=extra.get("version") or None,
            verify=_flag(extra.get("verify")),
        )

    @property
    def space_id(self) -> str | None:
        return self._space_id or self.get_connection(self.watson_ml_conn_id).extra_dejson.get("space_id") or None

    def get_conn(self):
        """An authenticated ``APIClient`` with the deployment space set."""
        from ibm_watsonx_ai import APIClient

        return APIClient(self.credentials(), space_id=self.space_id)

    def test_connection(self) -> tuple[bool, str]:
        try:
            client = self.get_conn()
            return True, f"connected to Watson Machine Learning {client.version}"
        except Exception as exc:  # shown in the UI's Test button
            return False, str(exc)


def _mask(secret: str) -> None:
    from claimed_airflow.version_compat import mask_secret

    mask_secret(secret)
