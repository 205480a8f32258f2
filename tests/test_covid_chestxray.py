"""input.covid_chestxray on the ieee8023 layout built from the shared chest X-ray images."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

COLUMNS = (
    "patientid offset sex age finding RT_PCR_positive survival intubated intubation_present went_icu in_icu "
    "needed_supplemental_O2 extubated temperature pO2_saturation leukocyte_count neutrophil_count "
    "lymphocyte_count view modality date location folder filename doi url license clinical_notes other_notes"
).split()
FINDINGS = {"COVID-19": "Pneumonia/Viral/COVID-19", "No Finding": "No Finding"}


@pytest.fixture
def dataset(tmp_path, shared_data) -> Path:
    """metadata.csv + images/ in the ieee8023 layout; two rows get another view / modality for the filters."""
    labels = pd.read_csv(shared_data / "chestxray" / "labels.csv")
    root = tmp_path / "covid-chestxray-dataset"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, row in labels.iterrows():
        shutil.copy(shared_data / "chestxray" / row["filename"], root / "images" / row["filename"])
        record = dict.fromkeys(COLUMNS, "")
        record.update(
            patientid=str(100 + i),
            sex=row["sex"],
            age=row["age"],
            finding=FINDINGS[row["finding"]],
            view="AP Supine" if i == 2 else row["view"],
            modality="CT" if i == 3 else row["modality"],
            folder="images",
            filename=row["filename"],
            url=row["url"],
            license=row["license"],
        )
        rows.append(record)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "metadata.csv", index=False)
    return root


def _expected(dataset: Path, views=None, modalities=None, finding=None) -> pd.DataFrame:
    frame = pd.read_csv(dataset / "metadata.csv")
    if views:
        frame = frame[frame["view"].isin(views)]
    if modalities:
        frame = frame[frame["modality"].isin(modalities)]
    if finding:
        frame = frame[frame["finding"].str.split("/").apply(lambda parts: finding in parts)]
    return frame


def test_local_folder_filtered_by_view_modality_and_finding(dataset, tmp_path):
    result = run(
        "input.covid_chestxray",
        {"source": str(dataset), "views": "PA", "modalities": "X-ray", "findings": "COVID-19,No Finding"},
        root=str(tmp_path / "out"),
    )
    expected = _expected(dataset, ["PA"], ["X-ray"])
    table = pd.read_csv(result["metadata"])
    assert sorted(table["filename"]) == sorted(expected["filename"]) and len(table) == 8
    assert result["labels"] == {
        "COVID-19": int(expected["finding"].str.endswith("COVID-19").sum()),
        "No Finding": int((expected["finding"] == "No Finding").sum()),
    }
    images = Path(result["images"])
    for _, row in table.iterrows():
        assert (images / row["image"]).read_bytes() == (dataset / "images" / row["filename"]).read_bytes()
        assert row["image"].startswith(row["label"].replace(" ", "_") + "/")


def test_findings_match_a_part_of_the_hierarchy_and_output_feeds_images_to_dicom(dataset, tmp_path):
    result = run("input.covid_chestxray", {"source": f"file://{dataset}", "findings": "covid-19"}, root=str(tmp_path))
    table = pd.read_csv(result["metadata"])
    assert set(table["label"]) == {"covid-19"} and len(table) == len(_expected(dataset, finding="COVID-19"))
    dicom = run(
        "input.images_to_dicom",
        {"images": result["images"], "labels": result["metadata"], "filename_column": "image", "max_size": 64},
        root=str(tmp_path),
    )
    assert len(list(Path(dicom["dicom"]).glob("**/*.dcm"))) == len(table)


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_archive_url_over_http(dataset, http_server, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www, url = http_server
    with zipfile.ZipFile(www / "dataset.zip", "w") as archive:  # a top-level folder, like GitHub's archives
        for path in dataset.rglob("*"):
            archive.write(path, f"covid-chestxray-dataset-master/{path.relative_to(dataset)}")
    result = run("input.covid_chestxray", {"source": f"{url}/dataset.zip", "views": "AP supine"}, root=str(tmp_path))
    expected = _expected(dataset, ["AP Supine"])
    assert result["rows_out"] == len(expected) == 1
    assert result["labels"] == {expected["finding"].iloc[0].split("/")[-1]: 1}
    with pytest.raises(ClaimedError, match=rf"source: cannot fetch {url}/missing.zip: HTTP 404"):
        run("input.covid_chestxray", {"source": f"{url}/missing.zip"}, root=str(tmp_path))


def test_unfetchable_and_unsupported_sources_are_named(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/covid.zip"
    with pytest.raises(ClaimedError, match=f"source: cannot fetch {url}"):
        run("input.covid_chestxray", {"source": url, "timeout": 5}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="scheme 'ftp' .* not supported; use http"):
        run("input.covid_chestxray", {"source": "ftp://example.org/covid.zip"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="does not exist"):
        run("input.covid_chestxray", {"source": str(tmp_path / "nowhere")}, root=str(tmp_path))


def test_bad_layouts_fail_with_a_clear_message(dataset, tmp_path):
    frame = pd.read_csv(dataset / "metadata.csv")
    frame.drop(columns=["view"]).to_csv(dataset / "metadata.csv", index=False)
    with pytest.raises(ClaimedError, match="metadata.csv of .* column 'view' missing"):
        run("input.covid_chestxray", {"source": str(dataset)}, root=str(tmp_path))
    frame.to_csv(dataset / "metadata.csv", index=False)
    with pytest.raises(ClaimedError, match="no rows left"):
        run("input.covid_chestxray", {"source": str(dataset), "findings": "SARS"}, root=str(tmp_path))
    (dataset / "metadata.csv").unlink()
    with pytest.raises(ClaimedError, match="has no metadata.csv"):
        run("input.covid_chestxray", {"source": str(dataset)}, root=str(tmp_path))


def test_missing_image_is_set_aside(dataset, tmp_path):
    first = pd.read_csv(dataset / "metadata.csv")["filename"][0]
    (dataset / "images" / first).unlink()
    result = run("input.covid_chestxray", {"source": str(dataset)}, root=str(tmp_path))
    assert result["rows_out"] == result["rows_in"] - 1
    import json

    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["rejected"] == [{"item": first, "reason": "image not found under images/"}]


def test_object_storage_archive(dataset, tmp_path, s3_endpoint):
    fs = s3_endpoint
    fs.mkdir("datasets")
    archive = tmp_path / "covid.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(dataset, arcname=".")
    fs.put(str(archive), "datasets/covid.tar.gz")
    result = run("input.covid_chestxray", {"source": "s3://datasets/covid.tar.gz"}, root=str(tmp_path / "out"))
    assert result["rows_out"] == 10
    with pytest.raises(ClaimedError, match="source: cannot fetch s3://datasets/missing.tar.gz"):
        run("input.covid_chestxray", {"source": "s3://datasets/missing.tar.gz"}, root=str(tmp_path / "out"))


def test_rows_leading_out_of_the_dataset_are_set_aside(dataset, tmp_path, monkeypatch):
    """metadata.csv is hostile: '..', absolute paths and links out never reach the artifact (issue 16)."""
    import json
    import os

    monkeypatch.setenv("CLAIMED_CANARY_API_KEY", "canary-5f1e9a-secret")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not part of the dataset: canary-5f1e9a-secret")
    (dataset / "images" / "link.png").symlink_to(secret)
    frame = pd.read_csv(dataset / "metadata.csv")
    good = len(frame)
    template = frame.iloc[0].to_dict()
    hostile = [
        ("../../../../proc/self", "environ"),  # the reproduced attack
        ("/".join([".."] * len(dataset.parts)) + "/proc/self", "environ"),  # deep enough to reach /
        ("/proc/self", "environ"),
        ("images", os.path.abspath(secret)),
        ("images", "../../secret.png"),
        ("images", "link.png"),
    ]
    rows = [{**template, "folder": folder, "filename": filename} for folder, filename in hostile]
    pd.concat([frame, pd.DataFrame(rows)]).to_csv(dataset / "metadata.csv", index=False)
    result = run("input.covid_chestxray", {"source": str(dataset)}, root=str(tmp_path / "out"))
    assert result["rows_in"] == good + len(hostile) and result["rows_out"] == good
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert len(rejected) == len(hostile)
    assert sum("leads out of the dataset" in r["reason"] for r in rejected) == 6
    assert sum("symbolic link" in r["reason"] for r in rejected) == 1
    images = Path(result["images"])
    assert sorted(p.name for p in images.rglob("*") if p.is_file()) == sorted(frame["filename"])
    for path in [*images.rglob("*"), Path(result["metadata"])]:
        assert not path.is_file() or b"canary-5f1e9a-secret" not in path.read_bytes(), path


def _bomb(path: Path, dataset: Path, size: int = 0, members: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dataset.rglob("*"):
            archive.write(file, f"covid/{file.relative_to(dataset)}")
        if size:
            archive.writestr("covid/images/zeros.bin", b"\0" * size)
        for i in range(members):
            archive.writestr(f"covid/images/extra{i}.txt", "x")
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The system temporary folder of this test: anything left behind in it shows."""
    import tempfile

    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_local_archive_is_unpacked_in_a_temporary_folder_within_limits(dataset, tmp_path, private_tmp):
    source = tmp_path / "archives"
    source.mkdir()
    archive = _bomb(source / "covid.zip", dataset)
    result = run("input.covid_chestxray", {"source": str(archive)}, root=str(tmp_path / "out"))
    assert result["rows_out"] == 10
    assert sorted(p.name for p in source.iterdir()) == ["covid.zip"]  # nothing unpacked beside the source
    assert list(private_tmp.iterdir()) == []  # and the temporary folder is gone
    # 64 MiB of zeros compress to about 64 KiB: refused while writing, removed although the run failed
    bomb = _bomb(source / "bomb.zip", dataset, size=64 * 1024**2)
    assert bomb.stat().st_size - archive.stat().st_size < 1024**2
    with pytest.raises(ClaimedError, match=r"^source: archive .*bomb.zip exceeds max_archive_bytes \(16777216 bytes\)"):
        run(
            "input.covid_chestxray",
            {"source": str(bomb), "max_archive_bytes": 16 * 1024**2},
            root=str(tmp_path / "out"),
        )
    many = _bomb(source / "many.zip", dataset, members=200)
    with pytest.raises(ClaimedError, match=r"^source: archive .*many.zip has more than max_archive_members \(100\)"):
        run("input.covid_chestxray", {"source": str(many), "max_archive_members": 100}, root=str(tmp_path / "out"))
    tar = source / "many.tar.gz"
    with tarfile.open(tar, "w:gz") as handle:
        handle.add(dataset, arcname="covid")
    with pytest.raises(ClaimedError, match=r"^source: archive .*many.tar.gz has more than max_archive_members \(5\)"):
        run("input.covid_chestxray", {"source": str(tar), "max_archive_members": 5}, root=str(tmp_path / "out"))
    with pytest.raises(ClaimedError, match=r"^source: archive .*many.tar.gz exceeds max_archive_bytes \(1000 bytes\)"):
        run("input.covid_chestxray", {"source": str(tar), "max_archive_bytes": 1000}, root=str(tmp_path / "out"))
    assert sorted(p.name for p in source.iterdir()) == ["bomb.zip", "covid.zip", "many.tar.gz", "many.zip"]
    assert list(private_tmp.iterdir()) == []


def test_archive_members_outside_the_root_or_links_are_refused(dataset, tmp_path, private_tmp):
    source = tmp_path / "archives"
    source.mkdir()
    escape = _bomb(source / "escape.zip", dataset)
    with zipfile.ZipFile(escape, "a") as archive:
        archive.writestr("../../outside.txt", "written outside")
    with pytest.raises(ClaimedError, match=r"^source: archive .*escape.zip has an unsafe member '../../outside.txt'"):
        run("input.covid_chestxray", {"source": str(escape)}, root=str(tmp_path / "out"))
    linked = source / "linked.tar"
    with tarfile.open(linked, "w") as handle:
        handle.add(dataset, arcname="covid")
        link = tarfile.TarInfo("covid/images/environ.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/proc/self/environ"
        handle.addfile(link)
    with pytest.raises(ClaimedError, match=r"^source: archive .*linked.tar has a link or special file"):
        run("input.covid_chestxray", {"source": str(linked)}, root=str(tmp_path / "out"))
    assert not (tmp_path / "outside.txt").exists() and list(private_tmp.iterdir()) == []
