"""claimed_airflow.preload: which processes import, and what."""

from claimed_airflow.preload import airflow_command, preload


def test_only_the_processes_that_fork_tasks_preload(monkeypatch):
    assert airflow_command(["/venv/bin/airflow", "scheduler", "--pid", "x"]) == ("scheduler",)
    assert airflow_command(["/venv/bin/airflow", "celery", "worker"]) == ("celery", "worker")
    assert airflow_command(["/lib/airflow/__main__.py", "api-server"]) == ("api-server",)
    assert airflow_command(["/venv/bin/pytest", "scheduler"]) == ()
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "triggerer"])
    assert preload(["json"]) == []
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "scheduler"])
    assert preload(["json", "no_such_module_here"]) == ["json"]  # one not installed is skipped
    monkeypatch.setattr("sys.argv", ["/venv/bin/python", "-c"])
    assert preload(["json"], always=True) == ["json"]
