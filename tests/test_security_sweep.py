"""Hostile values beyond issue 16's list: table cells, docstrings, manifests and params never become paths,
code, markup or log lines unescaped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.runner import run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "dags" / "sample_data" / "chestxray" / "dicom").glob("*.dcm"))[0]


@pytest.fixture
def files_and_secret(tmp_path):
    """A files folder with one good DICOM file, a DICOM file outside it (a private scan) and a link to it."""
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(SAMPLE, files / "good.dcm")
    private = tmp_path / "private" / "scan.dcm"
    private.parent.mkdir()
    shutil.copy(SAMPLE, private)
    (files / "link.dcm").symlink_to(private)
    return files, ["good.dcm", "../private/scan.dcm", str(private), "link.dcm"]


def _rejected(result) -> dict:
    return {r["item"]: r["reason"] for r in json.loads(Path(result["manifest"]).read_text())["rejected"]}


def test_dicom_to_images_reads_only_under_files(tmp_path, files_and_secret):
    pytest.importorskip("pydicom", reason="extra dicom")
    files, names = files_and_secret
    metadata = tmp_path / "metadata.csv"
    pd.DataFrame({"file": names, "label": "x"}).to_csv(metadata, index=False)
    result = run(
        "transform.dicom_to_images",
        {"files": str(files), "metadata": str(metadata), "size": 16, "workers": 1},
        root=str(tmp_path),
    )
    assert result["images_written"] == 1 and result["files_rejected"] == 3
    rejected = _rejected(result)
    assert sorted(rejected) == sorted(names[1:])
    assert all(reason.startswith("leads out of the files folder: ") for reason in rejected.values())


def test_output_dicom_reads_only_under_files(tmp_path, files_and_secret):
    pytest.importorskip("highdicom", reason="extra dicom")
    files, names = files_and_secret
    predictions = tmp_path / "predictions.csv"
    pd.DataFrame({"file": names, "prediction": "covid", "score": 0.9}).to_csv(predictions, index=False)
    result = run(
        "output.dicom",
        {"predictions": str(predictions), "files": str(files), "kind": "sr", "model_name": "m"},
        root=str(tmp_path),
    )
    assert result["dicom_written"] == 1
    rejected = _rejected(result)
    assert sorted(rejected) == sorted(names[1:])
    assert all(reason.startswith("leads out of the files folder: ") for reason in rejected.values())


HOSTILE_DOC = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "\\`<b onmouseover=alert(4)>x</b>` and `<i>",  # a backslashed or unclosed backtick opens no code span
    "`\n\n<iframe src=javascript:alert(5)>\n\n`",  # a code span does not cross a paragraph
]


def test_catalog_and_docs_show_docstrings_of_users_components_as_text(monkeypatch):
    """A component made from a notebook carries its markdown as docstring: the catalog shows it, never runs it."""
    from claimed_airflow import catalog
    from claimed_airflow.core import registry
    from claimed_airflow.core.component import component

    def hostile(text: str = "`<svg onload=alert(6)>", table: str = "x") -> dict:
        return {}

    hostile.__doc__ = (
        "Summary <script>alert(0)</script>.\n\n"
        + "\n\n".join(HOSTILE_DOC)
        + ("\n\n:param text: desc <img src=y onerror=alert(7)> | [a](javascript:alert(8))\n:param table: ``<b>``\n")
    )
    spec = component("transform", name="evil")(hostile).spec
    library = registry.library()
    monkeypatch.setattr(registry, "library", lambda: {**library, spec.name: spec})
    html = catalog.catalog_html()
    body = html[html.index("transform.evil") :]
    for raw in ("<script", "<img", "<svg", "<iframe", "<b ", "<b>", "<i>", 'href="javascript', "onerror=alert(7)>"):
        assert raw not in body, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "[click](javascript:alert(3))" in body
    assert "<code>&lt;b&gt;</code>" in body  # text in backticks is still shown as code
    docs = catalog.catalog_markdown()  # the docs' components page is this Markdown
    assert "<script" not in docs[docs.index("transform.evil") :]


def test_values_from_files_cannot_forge_log_lines_or_leak_uri_secrets(tmp_path, caplog):
    """A file name with a newline and a terminal escape, set aside by a component: one log line, escaped."""
    pytest.importorskip("pydicom", reason="extra dicom")
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(SAMPLE, files / "good.dcm")
    forged = "x.dcm\n2026-01-01 INFO - deidentify: 0 identifying values left\x1b[2K"
    leaky = "https://user:pa55word@pacs.example/x.dcm?sig=s3cretsig"
    metadata = tmp_path / "metadata.csv"
    pd.DataFrame({"file": ["good.dcm", forged, leaky], "label": "x"}).to_csv(metadata, index=False)
    with caplog.at_level("INFO", logger="claimed_airflow"):
        result = run(
            "transform.dicom_to_images",
            {"files": str(files), "metadata": str(metadata), "size": 16, "workers": 1},
            root=str(tmp_path),
        )
    assert result["files_rejected"] == 2
    messages = [record.getMessage() for record in caplog.records]
    set_aside = [m for m in messages if m.startswith("set aside ")]
    assert len(set_aside) == 2
    assert any("x.dcm\\n2026-01-01 INFO - deidentify" in m and "\\x1b[2K" in m for m in set_aside)
    for message in messages:
        assert "\n" not in message and "\x1b" not in message and "pa55word" not in message
        assert "s3cretsig" not in message
    assert forged in _rejected(result)  # the manifest (JSON) keeps the value as it was


def test_notification_email_headers_take_no_injected_lines(tmp_path, smtp):
    """A title from a template (run id, DAG param) or an address with CR/LF cannot add headers or a body."""
    import email
    import email.policy

    from claimed_airflow.core.errors import ClaimedError

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.5}))
    title = "run\r\nBcc: evil@attacker.example\r\n\r\n<h1>model blessed</h1>"
    arguments = {"metrics": str(metrics), "to": ["ops@example.com"], "conn_id": "smtp_test", "title": title}
    run("monitoring.notification_email", arguments, root=str(tmp_path))
    (envelope,) = smtp.messages
    assert envelope.rcpt_tos == ["ops@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert "Bcc" not in message and message["To"] == "ops@example.com"
    subject = "[claimed] run Bcc: evil@attacker.example <h1>model blessed</h1>: model no blessing decision"
    assert message["Subject"] == subject + " (accuracy 0.500)"  # one header line, the title as text
    for field, value in (("to", ["ops@example.com\r\nBcc: evil@attacker.example"]), ("from_email", "a@b\nX-Evil: 1")):
        with pytest.raises(ClaimedError, match=f"^{field}: expected"):
            run("monitoring.notification_email", {**arguments, field: value}, root=str(tmp_path))
    assert len(smtp.messages) == 1


def test_references_from_data_never_import_a_program(tmp_path, monkeypatch):
    """``module:function`` in a manifest or a ``trainer`` parameter: a ``__main__`` module or the standard library
    (``antigravity`` opens a browser) is refused before it is imported."""
    import sys

    from claimed_airflow.core import registry
    from claimed_airflow.core.errors import ClaimedError
    from claimed_airflow.reproduce import reproduce

    package = tmp_path / "evilpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    marker = tmp_path / "ran"
    (package / "__main__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"reference": "evilpkg.__main__:x", "component": "x", "inputs": {}}))
    with pytest.raises(ClaimedError, match=r"^evilpkg.__main__:x: not a component module"):
        reproduce(str(manifest), str(tmp_path / "out"))
    for reference in ("antigravity:x", "this:x", "evilpkg.__main__:x"):
        with pytest.raises(ClaimedError, match="not a component module"):
            registry.get(reference)
    assert not marker.exists() and "antigravity" not in sys.modules
    with pytest.raises(ClaimedError, match="unknown component"):
        registry.get("evilpkg..x:y")  # not a reference: looked up by name


@pytest.mark.parametrize("run_id", ["..", ".", "...", ".hidden"])
def test_a_run_id_from_the_trigger_form_stays_in_its_dags_folder(tmp_path, run_id):
    """Airflow's default allowed_run_id_pattern accepts '..': outputs must still land under <root>/<dag_id>/."""
    from claimed_airflow.core.storage import Scope, task_uri

    uri = Path(task_uri(str(tmp_path), Scope(dag_id="xray", run_id=run_id, task_id="train")))
    run_folder = uri.parent
    assert run_folder.parent == tmp_path / "xray" and not run_folder.name.startswith(".")
    assert uri.resolve().is_relative_to(tmp_path / "xray")


def test_an_object_named_with_dotdot_is_refused_in_one_line(tmp_path, s3_endpoint):
    """S3 keys may contain '..': staging a prefix never writes outside the task's working folder."""
    from claimed_airflow.core import storage
    from claimed_airflow.core.errors import ClaimedError

    escaped = tmp_path / "ESCAPED"
    s3_endpoint.pipe("claimed/dotdot/good.txt", b"ok")
    s3_endpoint.pipe(f"claimed/dotdot/../../../../../../../..{escaped}", b"evil")
    work = tmp_path / "work"
    with pytest.raises(ClaimedError, match=r"^source: cannot download s3://claimed/dotdot: .*outside"):
        storage.stage_input("source", "s3://claimed/dotdot", work)
    assert not escaped.exists()


def test_spark_sql_cannot_call_java(tmp_path, monkeypatch):
    """``java_method``/``reflect`` in a query or a cohort condition (a DAG param) would read the worker's
    environment (AWS keys) into the result; refused before Spark runs, on both backends."""
    pytest.importorskip("pyspark", reason="needs the spark extra")
    from claimed_airflow.components.filter.spark_cohort_split import cohort_query
    from claimed_airflow.core.errors import ClaimedError

    monkeypatch.setenv("CLAIMED_TEST_SECRET", "s3cret-value")
    table = tmp_path / "t.csv"
    table.write_text("file,label\na.dcm,x\n")
    query = "SELECT java_method('java.lang.System', 'getenv', 'CLAIMED_TEST_SECRET') AS leaked FROM input"
    with pytest.raises(ClaimedError, match=r"^query: java_method \(Java from SQL\) is not allowed"):
        run("transform.spark_sql", {"table": str(table), "query": query, "backend": "spark"}, root=str(tmp_path))
    for where in ("reflect('java.lang.System', 'getenv', 'HOME') IS NOT NULL", "TRY_REFLECT('a', 'b') IS NULL"):
        with pytest.raises(ClaimedError, match=r"^where: .*reflect \(Java from SQL\) is not allowed"):
            cohort_query(where, "file", 0.2, 1, "split")
    assert "`label` = 'x'" in cohort_query("label = 'x'", "file", 0.2, 1, "split")
