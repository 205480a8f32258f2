"""Hostile values from files: they never become paths, code or markup unescaped (issue 16, items 1-5)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from claimed_airflow.core.runner import run

SCRIPT = "<script>alert('pwned')</script>"
IMG = '<img src=x onerror="alert(1)">'
BREAKOUT = "`+alert(2)+` ${alert(3)} \\`"  # leaves folium's JavaScript template literal unless escaped


def test_map_labels_are_escaped_in_tooltip_and_popup(tmp_path):
    pytest.importorskip("folium", reason="extra viz")
    table = tmp_path / "points.csv"
    pd.DataFrame(
        [(SCRIPT, 47.37, 8.54), (IMG, 46.20, 6.14), ("Bern & <Thun>", 46.95, 7.45), (BREAKOUT, 47.0, 8.0)],
        columns=["name", "lat", "lon"],
    ).to_csv(table, index=False)
    result = run(
        "visualize.map_from_coordinates",
        {"table": str(table), "latitude": "lat", "longitude": "lon", "label_column": "name", "title": SCRIPT},
        root=str(tmp_path),
    )
    html = Path(result["html"]).read_text()
    assert result["points"] == 4
    for raw in (SCRIPT, IMG, "<script>alert", "<img src=x", "<Thun>", "`+alert(2)", "${alert(3)}", "\\`"):
        assert raw not in html, raw
    assert html.count("&lt;script&gt;alert(") == 3  # title, tooltip, popup: shown as text
    assert "Bern &amp; &lt;Thun&gt;" in html and "&#96;+alert(2)+&#96; &#36;{alert(3)}" in html


def test_images_to_dicom_reads_only_under_images_and_flags_its_files(tmp_path, shared_data, monkeypatch):
    import json
    import shutil

    import pydicom

    chest = shared_data / "chestxray"
    images = tmp_path / "images"
    images.mkdir()
    first = pd.read_csv(chest / "labels.csv")["filename"][0]
    shutil.copy(chest / first, images / first)
    outside = tmp_path / "private_scan.png"  # a real image next to the folder, not meant for this dataset
    shutil.copy(chest / first, outside)
    (images / "link.png").symlink_to(outside)
    rows = [first, "../private_scan.png", str(outside), "link.png"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"filename": rows, "finding": "No Finding"}).to_csv(labels, index=False)
    result = run(
        "input.images_to_dicom", {"images": str(images), "labels": str(labels), "max_size": 32}, root=str(tmp_path)
    )
    assert result["images_converted"] == 1
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert sorted(r["item"] for r in rejected) == sorted(rows[1:])
    assert all(r["reason"].startswith("not under images: ") for r in rejected)
    (written,) = Path(result["dicom"]).glob("*.dcm")
    assert pydicom.dcmread(written).BurnedInAnnotation == "NO"  # the conversion adds no text
    monkeypatch.setenv("DEID_SALT", "salt-for-this-test")
    deid = run("transform.deidentify", {"files": result["dicom"], "salt_env": "DEID_SALT"}, root=str(tmp_path))
    assert deid["files_deidentified"] == 1  # a flagged Secondary Capture passes the burned-in check


def test_training_reads_only_images_under_its_folder(tmp_path, shared_data):
    import shutil

    from claimed_airflow.components.train.image_classifier import load_gray_images
    from claimed_airflow.core.errors import ClaimedError

    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    first = pd.read_csv(shared_data / "chestxray" / "labels.csv")["filename"][0]
    shutil.copy(shared_data / "chestxray" / first, images / "a" / "one.png")
    shutil.copy(shared_data / "chestxray" / first, tmp_path / "elsewhere.png")
    pd.DataFrame({"image": ["a/one.png"], "label": ["a"]}).to_csv(images / "index.csv", index=False)
    pixels, labels, classes, _ = load_gray_images(str(images), 8)
    assert pixels.shape == (1, 8, 8) and classes == ["a"]
    pd.DataFrame({"image": ["a/one.png", "../elsewhere.png"], "label": ["a", "a"]}).to_csv(
        images / "index.csv", index=False
    )
    with pytest.raises(ClaimedError, match=r"^images: index.csv names an image outside .*'../elsewhere.png'"):
        load_gray_images(str(images), 8)
