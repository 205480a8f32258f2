"""One rule for the credentials of components: the Airflow connection named (a missing one is an error naming it),
else, with no connection named, the environment, else one error."""

from __future__ import annotations

import pytest

from claimed_airflow.core import credentials
from claimed_airflow.core.credentials import from_connection
from claimed_airflow.core.errors import ClaimedError


def _not_defined(conn_id: str):
    from claimed_airflow.version_compat import BaseHook

    return BaseHook.get_connection(conn_id)  # raises Airflow's AirflowNotFoundException


def test_connection_else_environment_else_one_error_naming_it(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CLAIMED_CREDS", '{"conn_type": "http", "password": "from-connection"}')
    read = lambda name: _not_defined(name).password  # noqa: E731
    assert from_connection("claimed_creds", read, kind="Test", environment=lambda: "env") == "from-connection"
    assert from_connection(None, read, kind="Test", environment=lambda: "env") == "env"
    with pytest.raises(ClaimedError, match="^salt_connection: no Test connection given$"):
        from_connection("", read, kind="Test", param="salt_connection")


def test_a_named_connection_that_is_not_defined_is_an_error_not_the_environment():
    """A typo in conn_id silently ran with the environment's credentials (another server, another account)."""
    read = lambda name: _not_defined(name).password  # noqa: E731
    for environment in (lambda: "env", lambda: None):
        with pytest.raises(ClaimedError) as caught:
            from_connection("claimed_missing", read, kind="Test", environment=environment, hint="or set X")
        assert str(caught.value) == "conn_id: Airflow connection 'claimed_missing' is not defined"


def test_the_running_components_default_connection_is_optional_and_no_other():
    """A component's own default connection (its declared ``conn_id`` default) need not exist: then its environment
    variables. Any other id, even one ending in ``_default``, must be defined."""
    from claimed_airflow.core.component import component
    from claimed_airflow.core.context import RunContext, active

    @component("test")
    def reads_a_service(conn_id: str | None = "claimed_default") -> dict:
        """Reads a service."""
        return {}

    read = lambda name: _not_defined(name).password  # noqa: E731
    with active(RunContext(component="reads_a_service", spec=reads_a_service.spec)):
        assert from_connection("claimed_default", read, kind="Test", environment=lambda: "env") == "env"
        with pytest.raises(ClaimedError, match="^conn_id: Airflow connection 'claimed_default' is not defined$"):
            from_connection("claimed_default", read, kind="Test", environment=lambda: None)
        with pytest.raises(ClaimedError, match="^conn_id: Airflow connection 'other_default' is not defined$"):
            from_connection("other_default", read, kind="Test", environment=lambda: "env")
        with pytest.raises(ClaimedError, match="^model: Airflow connection 'claimed_default' is not defined$"):
            from_connection("claimed_default", read, kind="Test", environment=lambda: "env", param="model")
    with pytest.raises(ClaimedError, match="'claimed_default' is not defined"):  # outside a component run
        from_connection("claimed_default", read, kind="Test", environment=lambda: "env")


def test_airflow_errors_are_recognised_by_type_not_by_name():
    class AirflowNotFoundException(Exception):  # same name, not Airflow's
        pass

    def read(name):
        raise AirflowNotFoundException(f"{name} is somewhere else")

    with pytest.raises(ClaimedError, match="^conn_id: cannot use Test connection 'c': c is somewhere else$"):
        from_connection("c", read, kind="Test", environment=lambda: "env")
    assert all(e.__module__.startswith("airflow") for e in credentials.airflow_errors())


def test_without_airflow_the_environment_is_used(monkeypatch):
    def no_airflow(name="AirflowNotFoundException"):
        raise ImportError("No module named 'airflow'")

    monkeypatch.setattr(credentials, "airflow_errors", no_airflow)
    never = lambda name: pytest.fail("read without Airflow")  # noqa: E731
    assert from_connection("c", never, kind="Test", environment=lambda: "env") == "env"
    with pytest.raises(ClaimedError, match="^conn_id: Airflow is needed to read connection 'c'; or set X$"):
        from_connection("c", never, kind="Test", hint="or set X")


def test_errors_never_carry_a_secret_and_secrets_are_masked(monkeypatch):
    def read(name):
        raise RuntimeError("cannot reach https://user:s3cr3t-token@pacs.example.org/dicom-web?token=abc123")

    with pytest.raises(ClaimedError) as caught:
        from_connection("pacs", read, kind="DICOMweb")
    assert "s3cr3t-token" not in str(caught.value) and "abc123" not in str(caught.value)
    assert "pacs.example.org" in str(caught.value)

    import claimed_airflow.version_compat as version_compat

    masked = []
    monkeypatch.setattr(version_compat, "mask_secret", masked.append)
    credentials.mask("a-secret", None, "")
    assert masked == ["a-secret"]


def test_deidentify_salt_falls_back_to_its_environment_variable_only_without_a_connection(monkeypatch):
    """No salt connection: salt_env; a salt connection that is not defined: an error naming it."""
    from claimed_airflow.components.transform.deidentify import read_salt

    monkeypatch.setenv("CLAIMED_TEST_SALT", "pepper")
    from_env = (b"pepper", "environment variable CLAIMED_TEST_SALT")
    assert read_salt(None, "CLAIMED_TEST_SALT") == from_env
    with pytest.raises(
        ClaimedError, match="^salt_connection: Airflow connection 'claimed_missing_salt' is not defined$"
    ):
        read_salt("claimed_missing_salt", "CLAIMED_TEST_SALT")
    monkeypatch.setenv("AIRFLOW_CONN_CLAIMED_SALT", '{"conn_type": "generic", "extra": {"salt": "from-conn"}}')
    assert read_salt("claimed_salt", "CLAIMED_TEST_SALT") == (b"from-conn", "Airflow connection claimed_salt")
    with pytest.raises(ClaimedError, match="^salt_connection: Airflow connection 'nope' is not defined$"):
        read_salt("nope", None)


def test_watson_ml_without_a_connection_uses_the_environment(monkeypatch):
    """deploy.watson_ml: no conn_id reads WATSONX_*; a connection that is not defined is an error naming it."""
    pytest.importorskip("ibm_watsonx_ai")
    import ibm_watsonx_ai

    from claimed_airflow.components.deploy import watson_ml

    made = []
    monkeypatch.setattr(ibm_watsonx_ai, "APIClient", lambda creds, space_id: made.append((creds, space_id)) or "client")
    monkeypatch.setenv("WATSONX_URL", "https://wml.example.org")
    monkeypatch.setenv("WATSONX_APIKEY", "key-from-env")
    monkeypatch.setenv("WATSONX_SPACE_ID", "space-from-env")
    assert watson_ml._client(None, None) == ("client", "key-from-env")
    assert made[0][0].url == "https://wml.example.org" and made[0][1] == "space-from-env"
    with pytest.raises(ClaimedError, match="^conn_id: Airflow connection 'claimed_missing_wml' is not defined$"):
        watson_ml._client("claimed_missing_wml", None)
    assert len(made) == 1
