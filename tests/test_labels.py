"""Radiologists' labels back: input.labels reads Cloud Annotations, Label Studio and CSV exports;
output.label_studio_tasks writes the least confident predictions as Label Studio tasks; a round trip."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

DATA = Path(__file__).parent / "data" / "labels"
METADATA = DATA / "metadata.csv"
UIDS = pd.read_csv(METADATA, dtype=str).set_index("file")["SOPInstanceUID"].to_dict()


def read_labels(tmp_path, source, **arguments) -> tuple[pd.DataFrame, dict]:
    result = run("input.labels", {"source": str(source), **arguments}, root=str(tmp_path / "out"))
    return pd.read_csv(result["labels"], dtype=str), result


def table(key: str, rows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({key: list(rows), "label": list(rows.values())})


@pytest.mark.parametrize(
    ("export", "arguments", "expected", "counts"),
    [
        (
            "_annotations.json",
            {"metadata": str(METADATA)},
            {"1.2.826.0.1.1": "PNEUMONIA", "1.2.826.0.1.2": "NORMAL", "1.2.826.0.1.4": "NORMAL"},
            {"tool": "cloud_annotations", "unlabelled": 1, "duplicates": 0},
        ),
        (  # ground truth decides task 11, task 12 is keyed by its local-files image, 13 cancelled, 14 not done
            "label_studio_export.json",
            {"metadata": str(METADATA)},
            {"1.2.826.0.1.1": "PNEUMONIA", "1.2.826.0.1.3": "NORMAL"},
            {"tool": "label_studio", "unlabelled": 2, "duplicates": 0},
        ),
        (  # no metadata needed: the CSV is keyed by SOPInstanceUID; the repeated row is kept once
            "labels.csv",
            {},
            {"1.2.826.0.1.1": "PNEUMONIA", "1.2.826.0.1.2": "NORMAL", "1.2.826.0.1.4": "NORMAL"},
            {"tool": "csv", "unlabelled": 1, "duplicates": 1},
        ),
    ],
)
def test_each_export_gives_exactly_the_expected_labels_table(tmp_path, export, arguments, expected, counts):
    labels, result = read_labels(tmp_path, DATA / export, **arguments)
    pd.testing.assert_frame_equal(labels, table("SOPInstanceUID", expected))
    assert {k: result[k] for k in counts} == counts and result["labelled"] == len(expected)


def test_labels_keyed_by_file_join_to_the_flagships_metadata(tmp_path):
    """label_key=file gives input.dicom's file column: the table joins where the flagship's labels Param goes."""
    from claimed_airflow.components.input.dicom import _join_labels

    labels, _ = read_labels(tmp_path, DATA / "_annotations.json", metadata=str(METADATA), label_key="file")
    pd.testing.assert_frame_equal(
        labels, table("file", {"study1/a.dcm": "PNEUMONIA", "study1/b.dcm": "NORMAL", "study2/d.dcm": "NORMAL"})
    )
    metadata = pd.read_csv(METADATA).drop(columns=["label"])
    joined = _join_labels(metadata, labels, "file", "label")
    assert joined.set_index("file")["label"].dropna().to_dict() == dict(labels.values)


def predictions(tmp_path) -> Path:
    """predict.images' columns: image, label, prediction, score, p_<class>, then the index's metadata."""
    rows = [  # (file, p_NORMAL, p_PNEUMONIA): margins 0.9, 0.1, 0.3, 0.02, 0.5, 0.06
        ("study1/a.dcm", 0.95, 0.05),
        ("study1/b.dcm", 0.45, 0.55),
        ("study2/c.dcm", 0.65, 0.35),
        ("study2/d.dcm", 0.49, 0.51),
        ("study3/e f#.dcm", 0.25, 0.75),
        ("study3/g.dcm", 0.53, 0.47),
    ]
    uids = {**UIDS, "study3/e f#.dcm": "1.2.826.0.1.5", "study3/g.dcm": "1.2.826.0.1.6"}
    sexes = {"study1/a.dcm": "F", "study1/b.dcm": "M", "study2/c.dcm": "F", "study2/d.dcm": "M"}
    frame = pd.DataFrame(
        [
            {
                "image": "_unlabelled/" + file.replace("/", "__").replace(".dcm", ".png"),
                "label": "_unlabelled",
                "prediction": "NORMAL" if normal > pneumonia else "PNEUMONIA",
                "score": max(normal, pneumonia),
                "p_NORMAL": normal,
                "p_PNEUMONIA": pneumonia,
                "file": file,
                "SOPInstanceUID": uids[file],
                "PatientSex": sexes.get(file, "F"),
                "PatientAge": 50.0,
            }
            for file, normal, pneumonia in rows
        ]
    )
    path = tmp_path / "predictions.csv"
    frame.to_csv(path, index=False)
    return path


def write_tasks(tmp_path, **arguments) -> list[dict]:
    values = {"predictions": str(predictions(tmp_path)), "base_url": "https://viewer.example/images", **arguments}
    result = run("output.label_studio_tasks", values, root=str(tmp_path / "out"))
    tasks = json.loads(Path(result["tasks"]).read_text())
    assert result["written"] == len(tasks)
    return tasks


def test_tasks_are_the_least_confident_first_with_escaped_urls_and_the_models_prediction(tmp_path):
    tasks = write_tasks(tmp_path, limit=4, model_version="v7")
    assert [t["data"]["file"] for t in tasks] == ["study2/d.dcm", "study3/g.dcm", "study1/b.dcm", "study2/c.dcm"]
    first = tasks[0]
    assert first["data"] == {
        "image": "https://viewer.example/images/_unlabelled/study2__d.png",
        "SOPInstanceUID": "1.2.826.0.1.4",
        "file": "study2/d.dcm",
    }
    assert first["predictions"] == [
        {
            "model_version": "v7",
            "score": 0.51,
            "result": [
                {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["PNEUMONIA"]}}
            ],
        }
    ]
    everything = write_tasks(tmp_path, limit=100)
    assert len(everything) == 6
    escaped = next(t for t in everything if t["data"]["file"] == "study3/e f#.dcm")
    assert escaped["data"]["image"] == "https://viewer.example/images/_unlabelled/study3__e%20f%23.png"


def test_stratified_tasks_take_turns_over_the_groups(tmp_path):
    """PatientSex F: g (margin 0.06), c (0.3), e (0.5), a (0.9); M: d (0.02), b (0.1). Round robin, groups sorted."""
    tasks = write_tasks(tmp_path, limit=5, group_by="PatientSex")
    assert [(t["data"]["PatientSex"], t["data"]["file"]) for t in tasks] == [
        ("F", "study3/g.dcm"),
        ("M", "study2/d.dcm"),
        ("F", "study2/c.dcm"),
        ("M", "study1/b.dcm"),
        ("F", "study3/e f#.dcm"),
    ]


def test_hostile_rows_and_urls_are_refused(tmp_path):
    path = predictions(tmp_path)
    frame = pd.read_csv(path)
    frame.loc[0, "image"] = "../../etc/passwd"
    frame["p_NORMAL"] = frame["p_NORMAL"].astype(object)
    frame.loc[1, "p_NORMAL"] = "not a number"
    frame.loc[1, "p_PNEUMONIA"] = None
    frame.to_csv(path, index=False)
    result = run(
        "output.label_studio_tasks",
        {"predictions": str(path), "base_url": "/data/local-files/?d=images/"},
        root=str(tmp_path / "out"),
    )
    tasks = json.loads(Path(result["tasks"]).read_text())
    files = {t["data"]["file"] for t in tasks}
    assert files == {"study2/c.dcm", "study2/d.dcm", "study3/e f#.dcm", "study3/g.dcm"}
    assert all(t["data"]["image"].startswith("/data/local-files/?d=images/_unlabelled/") for t in tasks)
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert sorted(r["item"] for r in manifest["rejected"]) == ["../../etc/passwd", "_unlabelled/study1__b.png"]
    for url in ("javascript:alert(1)//", "file:///etc/", "images/", "https://x.example/a b"):
        with pytest.raises(ClaimedError, match=r"^base_url: "):
            run("output.label_studio_tasks", {"predictions": str(path), "base_url": url}, root=str(tmp_path / "o"))


def test_round_trip_tasks_answered_in_label_studio_come_back_as_the_radiologists_labels(tmp_path):
    """Tasks written, imported (ids given), answered by a radiologist who keeps or changes the pre-annotation,
    exported in Label Studio's JSON export format, read back: exactly the radiologist's labels."""
    tasks = write_tasks(tmp_path, limit=3, group_by="PatientSex")
    answers = {"study3/g.dcm": "PNEUMONIA", "study2/d.dcm": "NORMAL", "study2/c.dcm": "NORMAL"}
    export = []
    for n, task in enumerate(tasks):
        prediction = task["predictions"][0]
        choice = {**prediction["result"][0], "id": f"r{n}", "origin": "manual"}
        choice["value"] = {"choices": [answers[task["data"]["file"]]]}
        annotation = {"id": 500 + n, "completed_by": 3, "was_cancelled": False, "ground_truth": False}
        export.append(
            {
                "id": 40 + n,
                "data": task["data"],
                "annotations": [{**annotation, "result": [choice]}],
                "predictions": [{**prediction, "id": 900 + n}],
                "meta": {},
                "project": 2,
            }
        )
    source = tmp_path / "project-2-at-2026-12-06.json"
    source.write_text(json.dumps(export))
    labels, result = read_labels(tmp_path, source)
    uids = {t["data"]["file"]: t["data"]["SOPInstanceUID"] for t in tasks}
    expected = {uids[file]: label for file, label in answers.items()}
    pd.testing.assert_frame_equal(
        labels.sort_values("SOPInstanceUID", ignore_index=True), table("SOPInstanceUID", dict(sorted(expected.items())))
    )
    assert result["tool"] == "label_studio"
    # the predictions' own table maps the URLs back too, when a task carries only its image
    for task in export:
        task["data"] = {"image": task["data"]["image"]}
    source.write_text(json.dumps(export))
    again, _ = read_labels(tmp_path, source, metadata=str(predictions(tmp_path)), label_key="file")
    assert dict(again.values) == answers


def ls_task(choices=("NORMAL",), **fields) -> dict:
    result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}]
    return {
        "id": 7,
        "data": {"SOPInstanceUID": "1.2.826.0.1.1"},
        "annotations": [{"id": 70, "result": result}],
        **fields,
    }


def ca(annotations, **fields) -> dict:
    return {
        "version": "1.0",
        "type": "classification",
        "labels": ["NORMAL", "PNEUMONIA"],
        "annotations": annotations,
        **fields,
    }


MALFORMED = {
    "not_json": ("export.json", "[{'id': 1,", r"export\.json: not JSON \(Expecting"),
    "ca_missing_annotations": ("_annotations.json", {"version": "1.0"}, r"_annotations\.json: neither a Label Studio"),
    "ca_missing_label": (
        "_annotations.json",
        ca({"study1__a.png": [{"x": 0.1}]}),
        r"_annotations\.json: annotations\['study1__a\.png'\]\[0\]: 'label' missing",
    ),
    "ca_label_not_text": (
        "_annotations.json",
        ca({"study1__a.png": [{"label": 3}]}),
        r"annotations\['study1__a\.png'\]\[0\]: label must be text, got int",
    ),
    "ca_not_a_list": (
        "_annotations.json",
        ca({"study1__a.png": {"label": "NORMAL"}}),
        r"annotations\['study1__a\.png'\]: must be a list of annotations, got dict",
    ),
    "ca_localization": (
        "_annotations.json",
        ca({}, type="localization"),
        r"type 'localization': only a classification",
    ),
    "ca_undeclared_label": (
        "_annotations.json",
        ca({"study1__a.png": [{"label": "COVID"}]}),
        r"annotations\['study1__a\.png'\]\[0\]: label 'COVID' is not among the project's labels",
    ),
    "ca_unknown_image": (
        "_annotations.json",
        ca({"elsewhere.png": [{"label": "NORMAL"}]}),
        r"_annotations\.json: annotations\['elsewhere\.png'\]: unknown image \(image 'elsewhere\.png' is not in the",
    ),
    "ca_conflict_in_one_image": (
        "_annotations.json",
        ca({"study1__a.png": [{"label": "NORMAL"}, {"label": "PNEUMONIA"}]}),
        r"annotations\['study1__a\.png'\]: conflicting labels NORMAL, PNEUMONIA",
    ),
    "ca_conflict_across_names": (  # one image under its PNG name and its DICOM file name
        "_annotations.json",
        ca({"study1__a.png": [{"label": "NORMAL"}], "study1/a.dcm": [{"label": "PNEUMONIA"}]}),
        r"annotations\['study1/a\.dcm'\]: label 'PNEUMONIA' conflicts with 'NORMAL' for SOPInstanceUID "
        r"'1\.2\.826\.0\.1\.1' \(annotations\['study1__a\.png'\]\)",
    ),
    "ls_not_a_list": ("export.json", {"tasks": []}, r"export\.json: neither a Label Studio export \(a list of tasks\)"),
    "ls_missing_data": (
        "export.json",
        [{"id": 7, "annotations": []}],
        r"export\.json: task 0 \(id 7\): 'data' missing",
    ),
    "ls_missing_result": (
        "export.json",
        [{**ls_task(), "annotations": [{"id": 70}]}],
        r"export\.json: task 0 \(id 7\) annotation 70: 'result' missing",
    ),
    "ls_two_choices": (
        "export.json",
        [ls_task(choices=("NORMAL", "PNEUMONIA"))],
        r"task 0 \(id 7\) annotation 70: value\.choices must be a list of one label",
    ),
    "ls_no_key": (
        "export.json",
        [{**ls_task(), "data": {"text": "x"}}],
        r"task 0 \(id 7\): 'data' has no SOPInstanceUID",
    ),
    "ls_bad_uid": (
        "export.json",
        [{**ls_task(), "data": {"SOPInstanceUID": "../../x"}}],
        r"task 0 \(id 7\): SOPInstanceUID '\.\./\.\./x' is not a DICOM UID",
    ),
    "ls_unknown_uid": (
        "export.json",
        [{**ls_task(), "data": {"SOPInstanceUID": "1.2.3"}}],
        r"task 0 \(id 7\): unknown image \(SOPInstanceUID '1\.2\.3'",
    ),
    "ls_hostile_label": (
        "export.json",
        [ls_task(choices=("../../x\n<script>",))],
        r"task 0 \(id 7\) annotation 70: label '\.\./\.\./x\\n<script>' not allowed",
    ),
    "ls_annotators_disagree": (
        "export.json",
        [{**ls_task(), "annotations": [*ls_task()["annotations"], *ls_task(("PNEUMONIA",))["annotations"]]}],
        r"task 0 \(id 7\): conflicting labels NORMAL, PNEUMONIA \(mark one ground truth\)",
    ),
    "ls_duplicate_conflicting_tasks": (
        "export.json",
        [ls_task(), {**ls_task(("PNEUMONIA",)), "id": 8}],
        r"task 1 \(id 8\): label 'PNEUMONIA' conflicts with 'NORMAL' for SOPInstanceUID '1\.2\.826\.0\.1\.1' "
        r"\(task 0 \(id 7\)\)",
    ),
    "csv_missing_column": (
        "labels.csv",
        'image,"diag\nnosis"\na.png,NORMAL\n',
        r"labels\.csv: needs a column 'label' and one of SOPInstanceUID, file, image \(has 'image', 'diag\\nnosis'\)",
    ),
    "csv_hostile_label": (
        "labels.csv",
        "SOPInstanceUID,label\n1.2.826.0.1.1,_shards\n",
        r"labels\.csv: line 2: label '_shards'",
    ),
    "csv_duplicate_conflict": (
        "labels.csv",
        "SOPInstanceUID,label\n1.2.826.0.1.1,NORMAL\n1.2.826.0.1.2,NORMAL\n1.2.826.0.1.1,PNEUMONIA\n",
        r"labels\.csv: line 4: label 'PNEUMONIA' conflicts with 'NORMAL' for SOPInstanceUID '1\.2\.826\.0\.1\.1' "
        r"\(line 2\)",
    ),
    "csv_not_csv": ("labels.csv", b"\xff\xfe\x00\x01binary", r"labels\.csv: not a readable CSV"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_export_fails_with_one_line_naming_file_and_entry(tmp_path, case):
    name, content, message = MALFORMED[case]
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ClaimedError) as failure:
        run("input.labels", {"source": str(source), "metadata": str(METADATA)}, root=str(tmp_path / "out"))
    text = str(failure.value)
    assert "\n" not in text and str(tmp_path) not in text
    assert re.search(message, text), text
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("labels.csv"))


def test_image_names_need_metadata_for_a_sopinstanceuid_key(tmp_path):
    source = tmp_path / "_annotations.json"
    shutil.copy(DATA / "_annotations.json", source)
    with pytest.raises(ClaimedError, match=r"annotations\['study1__a\.png'\]: image given; metadata is needed"):
        read_labels(tmp_path, source)
    labels, _ = read_labels(tmp_path, source, label_key="file")  # without metadata the names are the keys
    assert labels["file"].tolist() == ["study1__a.png", "study1__b.png", "study2__d.png"]


def test_an_export_written_by_label_studio_itself_reads_back(tmp_path):
    """tests/data/labels/label_studio_1.23_export.json: Label Studio 1.23.2's JSON export of 5 tasks that
    output.label_studio_tasks wrote (limit 5, group_by PatientSex), each answered through its API."""
    labels, result = read_labels(tmp_path, DATA / "label_studio_1.23_export.json")
    expected = {
        "1.2.826.0.1.6": "PNEUMONIA",
        "1.2.826.0.1.4": "NORMAL",
        "1.2.826.0.1.3": "PNEUMONIA",
        "1.2.826.0.1.2": "NORMAL",
        "1.2.826.0.1.5": "PNEUMONIA",
    }
    pd.testing.assert_frame_equal(labels, table("SOPInstanceUID", expected))
    assert result["labelled"] == 5 and result["unlabelled"] == 0


@pytest.mark.e2e
def test_real_label_studio_imports_the_tasks_and_its_export_reads_back(tmp_path):
    """Against a real Label Studio on loopback (``$LABEL_STUDIO``: its ``label-studio`` command, e.g. from
    ``pip install label-studio`` in a separate environment): a project with the documented labelling config
    imports the tasks with their predictions; answers posted through the API come back from its JSON export."""
    import os
    import subprocess
    import time
    import urllib.request

    from tests.smtp_server import free_port

    command = os.environ.get("LABEL_STUDIO")
    if not command:
        pytest.skip("set LABEL_STUDIO to a label-studio command to run against a real Label Studio")
    port, token = free_port(), "0123456789abcdef0123456789abcdef01234567"
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    arguments = ["start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port), "--data-dir"]
    arguments += [str(tmp_path / "ls"), "--username", "rad@example.org", "--password", "radpass123"]
    arguments += ["--user-token", token, "--enable-legacy-api-token"]
    environment = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "ls")}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([command, *arguments], stdout=log, stderr=subprocess.STDOUT, env=environment)

    def call(method: str, path: str, body=None, raw: bool = False):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            content = answer.read()
        return content if raw else json.loads(content or b"null")

    try:
        for _ in range(300):
            try:
                call("GET", "/health")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(1)
        tasks = write_tasks(tmp_path, limit=5, group_by="PatientSex", model_version="v7")
        module = Path(__file__).parents[1] / "claimed_airflow" / "components" / "output" / "label_studio_tasks.py"
        documented = module.read_text().split("::\n\n", 1)[1].split('"""')[0]
        config = "\n".join(line[4:] for line in documented.splitlines())
        project = call("POST", "/api/projects/", {"title": "claimed round trip", "label_config": config})["id"]
        imported = call("POST", f"/api/projects/{project}/import", tasks)
        assert (imported["task_count"], imported["prediction_count"]) == (5, 5)
        listed = call("GET", f"/api/tasks/?project={project}&page_size=100")
        answers = {}
        for n, task in enumerate(listed["tasks"] if isinstance(listed, dict) else listed):
            answers[task["data"]["SOPInstanceUID"]] = choice = ("PNEUMONIA", "NORMAL")[n % 2]
            result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
            call("POST", f"/api/tasks/{task['id']}/annotations/", {"result": result, "was_cancelled": False})
        export = tmp_path / "export.json"
        export.write_bytes(call("GET", f"/api/projects/{project}/export?exportType=JSON", raw=True))
        assert [t["annotations"][0]["prediction"]["model_version"] for t in json.loads(export.read_text())] == [
            "v7"
        ] * 5
        labels, _ = read_labels(tmp_path, export)
        assert dict(labels.values) == answers and len(answers) == 5
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
