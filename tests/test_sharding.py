"""Sharding (issue 27): inputs cut the cohort into N shards, data-parallel steps run once per shard through
dynamic task mapping (one pod per shard on the kubernetes engine), transform.merge_shards joins them into
what one unsharded task writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claimed_airflow.core import InputPath, OutputPath, component, registry, runner, sharding, storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.storage import Scope
from claimed_airflow.core.tables import read_table

SALT = "sharding-test-salt-0123456789"
SALT_ENV = "CLAIMED_TEST_SHARDING_SALT"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """20 synthetic CR phantoms and a file that is not DICOM (set aside by input.dicom)."""
    from tests.synthetic_chestxray import write_cohort

    folder = tmp_path_factory.mktemp("sharding_cohort")
    write_cohort(folder, count=20, seed=11, size=32)
    (folder / "dicom" / "broken.dcm").write_bytes(b"not a DICOM file")
    return {"source": str(folder / "dicom"), "labels": str(folder / "labels.csv")}


def test_shards_are_contiguous_balanced_and_deterministic(tmp_path):
    assert sharding.bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert sharding.bounds(2, 4) == [(0, 0), (0, 1), (1, 1), (1, 2)]  # more shards than items: some empty
    names = [f"f{i:02d}.dcm" for i in range(10)]
    assert sharding.write_tables(names, 3, tmp_path / "a") == [0, 1, 2]
    sharding.write_tables(names, 3, tmp_path / "b")
    assert storage.content_hash(tmp_path / "a") == storage.content_hash(tmp_path / "b")
    assert [f for i in range(3) for f in sharding.files_of(tmp_path / "a", i)] == names
    for bad in (0, -1, True, 10_001):
        with pytest.raises(ClaimedError, match="^shards: must be a whole number"):
            sharding.check_count(bad)
    with pytest.raises(ClaimedError, match=r"^shard_index: no shard 3 in shard_tables \(3 shard\(s\)\)"):
        sharding.files_of(tmp_path / "a", 3)


def test_shards_by_bytes_are_contiguous_bounded_and_deterministic():
    assert sharding.by_bytes([5, 5, 5, 20, 1, 1], 10) == [(0, 2), (2, 3), (3, 4), (4, 6)]  # 20 > 10: alone
    assert sharding.by_bytes([], 10) == [(0, 0)]
    assert [sharding.parse_bytes(v) for v in ("512MB", "2 GiB", "1.5kb", 1000, "7", None)] == [
        512_000_000,
        2 * 2**30,
        1500,
        1000,
        7,
        None,
    ]
    for bad in ("0", "-1", "1.5", "ten", "5 XB", True):
        with pytest.raises(ClaimedError, match="^shard_bytes: expected a size like 512MB"):
            sharding.parse_bytes(bad)
    with pytest.raises(ClaimedError, match=r"^shard_bytes: give shards \(3\) or shard_bytes \('1MB'\), not both"):
        sharding.check_cut(3, "1MB")
    with pytest.raises(ClaimedError, match="^shard_bytes: 1 bytes cuts 10001 files .* into 10001 shards"):
        sharding.by_bytes([1] * 10_001, 1)


def test_input_dicom_cuts_by_bytes(tmp_path, cohort):
    found = _run(tmp_path, "input.dicom", {"source": cohort["source"], "shard_bytes": "5KB"}, "input")
    files = Path(found["files"])
    shards = [sharding.files_of(found["shard_tables"], i) for i in found["shard_index"]]
    sizes = [sum((files / name).stat().st_size for name in shard) for shard in shards]
    assert len(shards) > 2 and all(size <= 5000 or len(s) == 1 for size, s in zip(sizes, shards, strict=True))
    assert [name for shard in shards for name in shard] == list(read_table(found["metadata"])["file"])
    for name in ("input.dicomweb", "input.dicom_network"):  # checked before any connection is made
        with pytest.raises(ClaimedError, match="^shard_bytes: expected a size"):
            runner.run(name, {"shard_bytes": "lots"}, root=str(tmp_path))


def test_only_a_component_taking_a_shard_can_declare_itself_data_parallel():
    data_parallel = [name for name in registry.components() if registry.get(name).data_parallel]
    assert {"predict.images", "transform.deidentify", "transform.dicom_to_images"} <= set(data_parallel)
    with pytest.raises(TypeError, match="data_parallel needs the input shard_tables and the parameter shard_index"):

        @component("transform", data_parallel=True)
        def whole(table: InputPath) -> dict:
            """Not shardable."""
            return {}

    with pytest.raises(TypeError, match=r"data_parallel needs shard_index: int \| None = None \(absent: every"):

        @component("transform", data_parallel=True)
        def first(files: InputPath, shard_tables: InputPath | None = None, shard_index: int = 0) -> dict:
            """Shard 0 when no shard is given: an unmapped task would run one shard only."""
            return {}


def test_an_operator_given_no_shard_index_passes_none_so_the_task_runs_every_shard():
    """The operators (Airflow, and the KFP export that reads their arguments) leave an unset shard_index out,
    as the components default it to None: sharding.spreads then runs every shard."""
    from claimed_airflow.operators import DeidentifyTransformOperator, DicomToImagesTransformOperator

    for operator in (DicomToImagesTransformOperator, DeidentifyTransformOperator):
        task = operator(task_id="every", files="files", shard_tables="shards")
        arguments = task.component_arguments()
        assert "shard_index" not in arguments and sharding.spreads(registry.get(task.component), arguments)


@component("transform", data_parallel=True)
def staged_files(
    files: InputPath,
    shard_tables: InputPath | None = None,
    shard_index: int | None = None,
    listing: OutputPath = "listing.json",
) -> dict:
    """The files of the ``files`` folder as this run sees it (staged, or the local folder itself)."""
    names = sorted(p.relative_to(files).as_posix() for p in Path(files).rglob("*") if p.is_file())
    Path(listing).write_text(json.dumps(names))
    return {"staged": len(names)}


def _files_and_shards(folder: Path) -> tuple[Path, Path, list[str]]:
    """Six small files in a sub-folder, cut into 3 shard tables of 2."""
    names = [f"sub/f{i}.dcm" for i in range(6)]
    (folder / "files" / "sub").mkdir(parents=True)
    for name in names:
        (folder / "files" / name).write_text(name)
    sharding.write_tables(names, 3, folder / "shards")
    return folder / "files", folder / "shards", names


def _shard_run(root: Path, files: str, tables: str, index: int) -> tuple[dict, dict]:
    result = runner.run(
        staged_files.spec, {"files": files, "shard_tables": tables, "shard_index": index}, root=str(root)
    )
    return result, json.loads(Path(result["manifest"]).read_text())["inputs"]


def test_a_shard_run_hashes_only_its_own_files_and_table(tmp_path):
    """Locally nothing is copied (the component sees the folder) and the manifest hashes shard 1's two files and
    its one table: a changed file of shard 0 leaves the hash as it was, a changed file of shard 1 does not."""
    from claimed_airflow.reproduce import reproduce

    files, tables, names = _files_and_shards(tmp_path)
    result, first = _shard_run(tmp_path / "out", str(files), str(tables), 1)
    assert result["staged"] == 6  # the local folder itself, not a copy
    assert (first["files"]["shard"], first["files"]["files"], first["shard_tables"]["files"]) == (1, 2, 1)
    assert first["files"]["hash"] == storage.content_hash(files, names[2:4]) != storage.content_hash(files)
    assert reproduce(result["manifest"], str(tmp_path / "again"))["match"]  # hashes the shard's files again
    one = files / names[2]  # files given as one file: hashed whole
    assert _shard_run(tmp_path / "out", str(one), str(tables), 1)[1]["files"]["hash"] == storage.content_hash(one)
    (files / names[0]).write_text("changed")
    assert _shard_run(tmp_path / "out", str(files), str(tables), 1)[1]["files"]["hash"] == first["files"]["hash"]
    (files / names[3]).write_text("changed")
    assert _shard_run(tmp_path / "out", str(files), str(tables), 1)[1]["files"]["hash"] != first["files"]["hash"]


def test_a_shard_run_downloads_only_its_own_files_from_an_object_store(tmp_path, s3_endpoint):
    """On S3 (moto) shard 1 of 3 downloads its two files and its one shard table, not the folder; its manifest
    records the same hash as the local run of that shard."""
    files, tables, names = _files_and_shards(tmp_path)
    s3_endpoint.put(str(files) + "/", "claimed/sharded/files/", recursive=True)
    s3_endpoint.put(str(tables) + "/", "claimed/sharded/shards/", recursive=True)
    remote, inputs = _shard_run(tmp_path / "out", "s3://claimed/sharded/files", "s3://claimed/sharded/shards", 1)
    assert remote["staged"] == 2 and json.loads(Path(remote["listing"]).read_text()) == names[2:4]
    local = _shard_run(tmp_path / "out", str(files), str(tables), 1)[1]
    assert inputs["files"]["hash"] == local["files"]["hash"]
    assert inputs["shard_tables"]["hash"] == local["shard_tables"]["hash"]
    with pytest.raises(ClaimedError, match="^shard_index: no shard 3 in shard_tables s3://claimed/sharded/shards"):
        _shard_run(tmp_path / "out", "s3://claimed/sharded/files", "s3://claimed/sharded/shards", 3)


def _run(root: Path, name: str, arguments: dict, task: str, index: int = -1) -> dict:
    return runner.run(name, arguments, root=str(root), scope=Scope("sharding", "r", task, index))


def _no_pixels(source: Path, target: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(source)
    del ds.PixelData
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.save_as(target, enforce_file_format=True)


def test_an_empty_shard_and_an_all_bad_shard_are_reported_not_fatal_unless_max_rejected(tmp_path, cohort):
    """Shard 0: two good files; shard 1: two files without pixel data (input.dicom reads them, the decoder
    cannot); with 5 shards of 4 files some shards are empty."""
    source = tmp_path / "dicom"
    source.mkdir()
    good = sorted(p for p in Path(cohort["source"]).glob("*.dcm") if p.name != "broken.dcm")[:2]
    for number, path in enumerate(good):
        (source / f"a{number}.dcm").write_bytes(path.read_bytes())
        _no_pixels(path, source / f"z{number}.dcm")
    found = _run(tmp_path, "input.dicom", {"source": str(source), "shards": 2}, "input")
    assert found["files_read"] == 4 and found["shard_index"] == [0, 1]
    tables = found["shard_tables"]
    assert sharding.files_of(tables, 1) == ["z0.dcm", "z1.dcm"]
    args = {"metadata": found["metadata"], "files": found["files"], "shard_tables": tables, "workers": 1}
    parts = [_run(tmp_path, "transform.dicom_to_images", {**args, "shard_index": i}, "shard", i) for i in (0, 1)]
    assert parts[1]["images_written"] == 0 and parts[1]["files_rejected"] == 2
    rejected = json.loads(Path(parts[1]["manifest"]).read_text())["rejected"]
    assert sorted(r["item"] for r in rejected) == ["z0.dcm", "z1.dcm"]
    merged = _run(tmp_path, "transform.merge_shards", {"parts": [p["images"] for p in parts]}, "merge")
    assert merged["table_rows"] == 2 and merged["files"] == 2
    images = sorted(Path(parts[0]["images"]).rglob("*.png"))
    with storage.work_dir() as work:  # on one file system: linked by the merge, moved by the commit, not copied
        if os.stat(work).st_dev == os.stat(tmp_path).st_dev:
            assert {p.stat().st_ino for p in images} == {p.stat().st_ino for p in Path(merged["merged"]).rglob("*.png")}
    with pytest.raises(ClaimedError, match="^max_rejected: more than 1 file"):
        _run(tmp_path, "transform.dicom_to_images", {**args, "shard_index": 1, "max_rejected": 1}, "strict", 1)
    # more shards than files: empty shards write empty outputs; all of them empty is the merge's error
    found = _run(tmp_path, "input.dicom", {"source": str(source / "a0.dcm"), "shards": 3}, "input3")
    args = {"metadata": found["metadata"], "files": found["files"], "shard_tables": found["shard_tables"]}
    empty = _run(tmp_path, "transform.dicom_to_images", {**args, "shard_index": 0}, "empty", 0)
    assert empty["images_written"] == 0 and empty["files_rejected"] == 0
    private = {"files": found["files"], "shard_tables": found["shard_tables"], "shard_index": 0, "salt_env": SALT_ENV}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SALT_ENV, SALT)
        assert _run(tmp_path, "transform.deidentify", private, "empty_deid", 0)["files_deidentified"] == 0
    with pytest.raises(ClaimedError, match=r"^parts: 0 row\(s\) in all 2 shard\(s\), fewer than min_rows=1"):
        _run(tmp_path, "transform.merge_shards", {"parts": [empty["images"], empty["images"]]}, "merge_empty")


def test_a_shard_table_naming_files_outside_the_folder_sets_them_aside_unread(tmp_path, cohort, monkeypatch):
    """Shard table names are values from a file: '..' and absolute names are set aside by deidentify (not read,
    not a crash) and never hashed into the manifest."""
    files = tmp_path / "files"
    files.mkdir()
    good = next(p for p in sorted(Path(cohort["source"]).glob("*.dcm")) if p.name != "broken.dcm")
    (files / "good.dcm").write_bytes(good.read_bytes())
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(good.read_bytes())
    sharding.write_tables(["good.dcm", "../outside.dcm", str(outside)], 1, tmp_path / "shards")
    monkeypatch.setenv(SALT_ENV, SALT)
    private = {"files": str(files), "shard_tables": str(tmp_path / "shards"), "shard_index": 0, "salt_env": SALT_ENV}
    done = _run(tmp_path / "out", "transform.deidentify", private, "deid", 0)
    record = json.loads(Path(done["manifest"]).read_text())
    assert done["files_deidentified"] == 1
    reason = "leads out of the files folder (absolute, '..' or a link out)"
    assert [r["reason"] for r in record["rejected"]] == [reason, reason]
    outside.write_bytes(b"changed")  # not part of the shard's hash
    names = ["good.dcm", "../outside.dcm", str(outside)]
    assert storage.content_hash(files, names) == record["inputs"]["files"]["hash"]


def _one_study(source: Path, target: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.543.1.7", "1.2.826.0.1.3680043.10.543.2.7"
    ds.save_as(target, enforce_file_format=True)


def test_the_merged_report_counts_the_distinct_uids_of_a_study_split_over_shards(tmp_path, cohort, monkeypatch):
    """Six instances of one study and series in 3 shards: each shard maps the study's and series' UIDs, so the
    shards' uids_mapped add up to more than the cohort has; merged (mapped shards and merge_shards, or one task
    running every shard) the report counts the distinct UIDs, equal to the unsharded report."""
    monkeypatch.setenv(SALT_ENV, SALT)
    source = tmp_path / "dicom"
    source.mkdir()
    for number, path in enumerate(sorted(Path(cohort["source"]).glob("*.dcm"))[:7]):
        if path.name != "broken.dcm":
            _one_study(path, source / f"i{number}.dcm")
    found = _run(tmp_path, "input.dicom", {"source": str(source), "shards": 3}, "input")
    assert found["files_read"] == 6
    common = {"files": found["files"], **PRIVATE}
    whole = _run(tmp_path, "transform.deidentify", {**common, "metadata": found["metadata"]}, "whole")
    assert whole["uids_mapped"] >= 8  # six instances, one study, one series
    common["shard_tables"] = found["shard_tables"]
    parts = [_run(tmp_path, "transform.deidentify", {**common, "shard_index": i}, "p", i) for i in range(3)]
    assert sum(p["uids_mapped"] for p in parts) == whole["uids_mapped"] + 4  # study and series in every shard
    merged = _run(tmp_path, "transform.merge_shards", {"parts": [p["report"] for p in parts]}, "merge")
    report = Path(merged["merged"]) / "deidentification.json"
    assert report.read_bytes() == Path(whole["report"]).read_bytes()
    every = _run(tmp_path, "transform.deidentify", common, "every")
    assert Path(every["report"]).read_bytes() == Path(whole["report"]).read_bytes()
    assert every["uids_mapped"] == whole["uids_mapped"] and every["shards"] == 3


def test_merging_refuses_overlapping_or_mixed_parts(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "x").mkdir(parents=True)
        (tmp_path / name / "x" / "same.png").write_bytes(b"png")
    with pytest.raises(ClaimedError, match="^parts: two shards wrote x/same.png"):
        sharding.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    (tmp_path / "t.csv").write_text("file\nx\n")
    with pytest.raises(ClaimedError, match="^parts: a mix of folders and files"):
        sharding.merge([tmp_path / "a", tmp_path / "t.csv"], tmp_path / "out2")


def test_a_folder_merge_links_the_shard_files_and_copies_across_file_systems(tmp_path, monkeypatch):
    """On one file system the merged folder's files are hard links of the shards' (no byte copied); where a link
    cannot be made (another file system) they are copies; index.csv is concatenated either way."""
    import errno
    import os

    parts = []
    for index in range(2):
        part = tmp_path / f"part{index}"
        (part / "label").mkdir(parents=True)
        (part / "label" / f"{index}.png").write_bytes(b"png %d" % index)
        (part / "index.csv").write_text(f"image,label\nlabel/{index}.png,label\n")
        parts.append(part)
    assert sharding.merge(parts, tmp_path / "linked") == {"files": 2, "tables": 1, "table_rows": 2}
    for index, part in enumerate(parts):
        assert (tmp_path / "linked" / "label" / f"{index}.png").stat().st_ino == (
            part / "label" / f"{index}.png"
        ).stat().st_ino
    assert (tmp_path / "linked" / "index.csv").read_text() == "image,label\nlabel/0.png,label\nlabel/1.png,label\n"

    def across(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", across)
    sharding.merge(parts, tmp_path / "copied")
    copy = tmp_path / "copied" / "label" / "1.png"
    assert copy.read_bytes() == b"png 1" and copy.stat().st_ino != (parts[1] / "label" / "1.png").stat().st_ino


def test_merged_reports_are_written_as_one_json_dumps_of_the_combined_reports(tmp_path):
    """merge_reports streams the lists out shard by shard; the file is byte for byte json.dumps(indent=2) of the
    combined reports (nested items, empty lists, non-ASCII text, a list only in a later shard)."""
    reports = [
        {"a": 1, "files": [{"x": [1, {"y": "é\n"}]}, 2], "s": "first", "empty": [], "n": 1.5, "d": {"k": [1]}},
        {"a": 2, "files": [3, {"z": {}}], "s": "second", "empty": [], "n": 2, "later": None},
        {"files": [], "v": [[], {}]},
    ]
    parts = []
    for index, report in enumerate(reports):
        parts.append(tmp_path / f"{index}.json")
        parts[-1].write_text(json.dumps(report))
    sharding.merge(parts, tmp_path / "merged.json")
    combined: dict = {}
    for report in reports:
        sharding.combine(combined, report)
    assert (tmp_path / "merged.json").read_text() == json.dumps(combined, indent=2)
    assert combined["files"] == [{"x": [1, {"y": "é\n"}]}, 2, 3, {"z": {}}] and combined["a"] == 3
    for empty in ({}, {"files": []}):
        (tmp_path / "e.json").write_text(json.dumps(empty))
        sharding.merge([tmp_path / "e.json"], tmp_path / "one.json")
        assert (tmp_path / "one.json").read_text() == json.dumps(empty, indent=2)


def test_a_merged_parquet_table_has_the_row_groups_and_bytes_of_one_write(tmp_path, monkeypatch):
    """Shards of 3, 0 and 7 rows merged with row groups of 4 rows: the bytes pandas writes for the 10 rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    monkeypatch.setattr(sharding, "ROW_GROUP", 4)
    frame = pd.DataFrame({"file": [f"f{i}.dcm" for i in range(10)], "rows": range(10), "x": [i / 3 for i in range(10)]})
    parts = []
    for index, (start, stop) in enumerate([(0, 3), (3, 3), (3, 10)]):
        parts.append(tmp_path / f"part{index}" / "table.parquet")
        parts[-1].parent.mkdir()
        frame.iloc[start:stop].to_parquet(parts[-1], index=False)
    assert sharding.merge(parts, tmp_path / "merged.parquet") == {"rows": 10}
    frame.to_parquet(tmp_path / "whole.parquet", index=False, row_group_size=4)
    metadata = pq.read_metadata(tmp_path / "merged.parquet")
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [4, 4, 2]
    assert (tmp_path / "merged.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


DECODE = {"size": 32, "workers": 1}  # as the test DAG's
PRIVATE = {"salt_env": SALT_ENV, "keep_patient_sex": True}


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, cohort) -> dict:
    """The cohort read, decoded and de-identified by one task each."""
    root = tmp_path_factory.mktemp("unsharded")
    found = _run(root, "input.dicom", cohort, "input")
    common = {"metadata": found["metadata"], "files": found["files"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SALT_ENV, SALT)
        private = _run(root, "transform.deidentify", {**common, **PRIVATE}, "deidentify")
    images = _run(root, "transform.dicom_to_images", {**common, **DECODE}, "dicom_to_images")
    return {"input": found, "images": Path(images["images"]), "deidentify": private, "dicom_to_images": images}


def _merged(folder: Path) -> Path:
    """The one table or report in a merge task's folder, or the folder."""
    inside = list(folder.iterdir())
    return inside[0] if len(inside) == 1 and inside[0].is_file() else folder


def assert_equal_outputs(images: Path, files: Path, table: Path, report: Path, unsharded: dict) -> None:
    """Folders file for file (PNG, DICOM, index.csv), the Parquet table byte-equal; the de-identification report
    equal (JSON)."""
    import pyarrow.parquet as pq

    assert len(list(unsharded["images"].rglob("*.png"))) == 20
    assert storage.content_hash(images) == storage.content_hash(unsharded["images"])
    whole = unsharded["deidentify"]
    assert storage.content_hash(files) == storage.content_hash(whole["output"])
    assert storage.content_hash(table) == storage.content_hash(whole["table"])  # row groups as one write's
    assert pq.read_table(table).num_rows == 20
    assert json.loads(report.read_text()) == json.loads(Path(whole["report"]).read_text())


@pytest.mark.parametrize("shards, metadata", [(1, False), (3, True), (7, False)])
def test_merged_shards_equal_the_unsharded_run(tmp_path, cohort, unsharded, monkeypatch, shards, metadata):
    """input.dicom cuts 20 phantoms into N shards; deidentify and dicom_to_images run once per shard, taking their
    rows from their shard table (or, given ``metadata``, that table's rows of their files); the merged outputs
    equal the unsharded tasks' (given the whole metadata table)."""
    monkeypatch.setenv(SALT_ENV, SALT)
    found = _run(tmp_path, "input.dicom", {**cohort, "shards": shards}, "input")
    assert found["shard_index"] == list(range(shards))
    assert storage.content_hash(found["files"]) == storage.content_hash(unsharded["input"]["files"])
    tables = found["shard_tables"]
    assert storage.content_hash(tables) == storage.content_hash(
        _run(tmp_path, "input.dicom", {**cohort, "shards": shards}, "again")["shard_tables"]
    )  # deterministic
    assert sum(len(sharding.files_of(tables, i)) for i in range(shards)) == 20  # broken.dcm set aside
    import pandas as pd

    whole = read_table(found["metadata"])
    rows = pd.concat([sharding.rows_of(tables, i) for i in range(shards)], ignore_index=True)
    pd.testing.assert_frame_equal(rows, whole)  # every row once, in the table's order, file first
    assert list(rows.columns)[0] == "file" and len(rows.columns) > 10
    common = {"files": found["files"], "shard_tables": tables} | ({"metadata": found["metadata"]} if metadata else {})
    images, private = [], []
    for i in range(shards):
        images.append(_run(tmp_path, "transform.dicom_to_images", {**common, **DECODE, "shard_index": i}, "d", i))
        private.append(_run(tmp_path, "transform.deidentify", {**common, **PRIVATE, "shard_index": i}, "p", i))

    def merge(parts: list[str], task: str) -> Path:
        return _merged(Path(_run(tmp_path, "transform.merge_shards", {"parts": parts}, task)["merged"]))

    assert_equal_outputs(
        merge([r["images"] for r in images], "images"),
        merge([r["output"] for r in private], "files"),
        merge([r["table"] for r in private], "table"),
        merge([r["report"] for r in private], "report"),
        unsharded,
    )


def _hashes(manifest: str) -> dict[str, str]:
    return {name: out["hash"] for name, out in json.loads(Path(manifest).read_text())["outputs"].items()}


EVERY = {"transform.dicom_to_images": DECODE, "transform.deidentify": PRIVATE}


def test_a_task_given_shard_tables_without_shard_index_runs_every_shard(tmp_path, cohort, unsharded, monkeypatch):
    """No shard_index: the task (engine local) runs every shard in its process and merges them into its own
    outputs, whose content hashes in its manifest are the unsharded task's; the shards write where mapped tasks
    would."""
    from claimed_airflow.operators.engines.local import LocalEngine
    from claimed_airflow.operators.engines.protocol import EngineTask

    monkeypatch.setenv(SALT_ENV, SALT)
    found = _run(tmp_path, "input.dicom", {**cohort, "shards": 7}, "input")
    common = {"metadata": found["metadata"], "files": found["files"], "shard_tables": found["shard_tables"]}
    for name, task in (("transform.dicom_to_images", "dicom_to_images"), ("transform.deidentify", "deidentify")):
        spec = registry.get(name)
        assert sharding.spreads(spec, common) and not sharding.spreads(spec, {**common, "shard_index": 0})
        if name == "transform.dicom_to_images":  # through the local engine
            job = EngineTask(task, spec, {**common, **EVERY[name]}, str(tmp_path), Scope("s", "r", task))
            result = LocalEngine().run(job, {})
        else:  # runner.run itself: the one place of the rule (the CLI in a pod, spark-submit, the engines)
            result = runner.run(name, {**common, **EVERY[name]}, root=str(tmp_path), scope=Scope("s", "r", task))
        assert _hashes(result["manifest"]) == _hashes(unsharded[task]["manifest"])
        record = json.loads(Path(result["manifest"]).read_text())
        assert record["parameters"]["shard_index"] is None and record["values"]["shards"] == 7
        assert sorted(p.name for p in (tmp_path / "s" / "r").glob(f"{task}_shard_*")) == [
            f"{task}_shard_{i}" for i in range(7)
        ]
    assert result["files_deidentified"] == 20
    with pytest.raises(ClaimedError, match="^shard_tables: metadata.parquet is not a folder of shard tables"):
        runner.run_every_shard("transform.dicom_to_images", {**common, "shard_tables": found["metadata"]})


def test_engine_spark_runs_one_spark_task_per_shard(tmp_path, cohort, unsharded, monkeypatch):
    """Engine spark, master local[2]: spark-submit's driver spreads the 3 shards over the executors (one Spark
    task each, counted in Spark's event log); the merged outputs hash-equal the unsharded local run's."""
    from claimed_airflow.core.options import SparkOptions
    from claimed_airflow.operators.engines.protocol import EngineTask
    from claimed_airflow.operators.engines.spark import SparkEngine

    monkeypatch.setenv(SALT_ENV, SALT)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    found = _run(tmp_path, "input.dicom", {**cohort, "shards": 3}, "input")
    common = {"metadata": found["metadata"], "files": found["files"], "shard_tables": found["shard_tables"]}
    events = tmp_path / "events"
    events.mkdir()
    log = {"enabled": "true", "dir": events.as_uri(), "compress": "false", "rolling.enabled": "false"}
    conf = {f"spark.eventLog.{key}": value for key, value in log.items()}
    name, task = "transform.deidentify", "deidentify"
    spec = registry.get(name)
    scope = Scope("s", "r", task)
    job = EngineTask(task, spec, {**common, **EVERY[name]}, str(tmp_path), scope, spark=SparkOptions(conf=conf))
    result = SparkEngine().run(job, {})
    assert _hashes(result["manifest"]) == _hashes(unsharded[task]["manifest"])
    assert result["files_deidentified"] == 20 and result["shards"] == 3
    (log,) = events.iterdir()
    ended = [json.loads(line) for line in log.read_text().splitlines() if '"SparkListenerTaskEnd"' in line]
    assert sorted(e["Task Info"]["Index"] for e in ended) == [0, 1, 2]
    assert {e["Task End Reason"]["Reason"] for e in ended} == {"Success"}


def test_sharded_predictions_merge_to_the_unsharded_ones(tmp_path, cohort, unsharded):
    """predict.images once per shard (the images of each shard's files; an empty shard writes nothing) and
    merged: the same predictions.csv, byte for byte, as one task scoring every image (one image per batch:
    a network's float results depend on the batch an image is scored in, in the last digits)."""
    pytest.importorskip("onnxruntime")
    from tests.tiny_model import make_onnx_model_folder

    model = str(make_onnx_model_folder(tmp_path / "model"))
    images = str(unsharded["images"])
    whole = _run(tmp_path, "predict.images", {"model": model, "images": images, "batch_size": 1}, "whole")
    found = _run(tmp_path, "input.dicom", {**cohort, "shards": 21}, "input")  # 20 files: one shard empty
    common = {"model": model, "images": images, "shard_tables": found["shard_tables"], "batch_size": 1}
    parts = [_run(tmp_path, "predict.images", {**common, "shard_index": i}, "p", i) for i in range(21)]
    assert sorted(p["predicted"] for p in parts)[:2] == [0, 1]
    merged = _run(tmp_path, "transform.merge_shards", {"parts": [p["predictions"] for p in parts]}, "merge")
    assert merged["rows"] == 20
    predictions = Path(merged["merged"]) / "predictions.csv"
    assert predictions.read_bytes() == Path(whole["predictions"]).read_bytes()


@pytest.mark.e2e
def test_mapped_tasks_of_a_dag_run_merge_to_the_unsharded_outputs(run_dag, output_root, unsharded, cohort, monkeypatch):
    """The same through Airflow: one mapped task instance per shard (dynamic task mapping over the input's
    shard_index), the merge tasks reading the mapped tasks' outputs."""
    monkeypatch.setenv(SALT_ENV, SALT)
    state, tasks, run_id = run_dag("claimed_test_sharding", {**cohort, "shards": 3})
    assert state == "success", tasks
    run = output_root / "claimed_test_sharding" / storage.safe_name(run_id)
    for task in ("dicom_input_shard", "dicom_to_images_shard", "deidentify_shard"):
        assert sorted(p.name for p in run.glob(f"{task}_*")) == [f"{task}_{i}" for i in range(3)]
    read, whole = (
        _hashes(manifest) for manifest in (run / "dicom_input" / "manifest.json", unsharded["input"]["manifest"])
    )
    assert (read["metadata"], read["files"]) == (whole["metadata"], whole["files"])  # the input read in shards
    assert_equal_outputs(
        *(_merged(run / task / "merged") for task in ("dicom_to_images", "deidentify_output")),
        *(_merged(run / task / "merged") for task in ("deidentify_table", "deidentify_report")),
        unsharded,
    )


def test_dag_shape_does_not_depend_on_the_number_of_shards():
    """shards is a run-time Param: the parsed DAG (what the DAG processor builds and serializes) is the same
    for every N, its mapped tasks expanding over the input's shard_index only when the run starts."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).parent / "dags" / "claimed_test_sharding.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["claimed_test_sharding"]
    mapped = sorted(t.task_id for t in dag.tasks if type(t).__name__ == "MappedOperator")
    assert mapped == ["deidentify_shard", "dicom_input_shard", "dicom_to_images_shard"]
    assert len(dag.tasks) == 11


@pytest.mark.e2e
def test_kubernetes_engine_runs_one_pod_per_shard(run_dag, output_root, cohort, local_kubelet):
    state, tasks, run_id = run_dag("claimed_test_sharding_pods", {**cohort, "shards": 2})
    assert state == "success", tasks
    pods = {}  # task: the map indexes of its pods (mapped task instances run in no fixed order)
    for pod in sorted(local_kubelet, key=lambda p: p.metadata.labels.get("map_index") or ""):
        pods.setdefault(pod.metadata.labels["task_id"], []).append(pod.metadata.labels.get("map_index"))
    assert pods == {
        "dicom_input_listing": [None],
        "dicom_input_shard": ["0", "1"],
        "dicom_input": [None],
        "dicom_to_images_shard": ["0", "1"],
    }
    indexes = sorted(a for p in local_kubelet for a in p.spec.containers[0].args if a.startswith("--shard_index"))
    assert indexes == ["--shard_index=0", "--shard_index=0", "--shard_index=1", "--shard_index=1"]
    run = output_root / "claimed_test_sharding_pods" / storage.safe_name(run_id)
    assert len(list((run / "dicom_to_images" / "merged").rglob("*.png"))) == 20


# -- the input itself in shards: input.dicom_listing, input.dicom_shard once per shard, input.dicom_merge -------


@pytest.fixture(scope="module")
def with_a_copy(tmp_path_factory, cohort) -> dict:
    """The cohort (20 phantoms, a file that is not DICOM) and a copy of its first phantom under a name read
    last: the same SOPInstanceUID, labelled, so input.dicom sets it aside as a duplicate and nothing else."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("with_a_copy")
    source = folder / "dicom"
    source.mkdir()
    for path in Path(cohort["source"]).iterdir():
        (source / path.name).write_bytes(path.read_bytes())
    first = sorted(source.glob("phantom_*.dcm"))[0]
    (source / "zz_copy.dcm").write_bytes(first.read_bytes())
    labels = pd.read_csv(cohort["labels"])
    copy = labels[labels["file"] == first.name].assign(file="zz_copy.dcm")
    pd.concat([labels, copy]).to_csv(folder / "labels.csv", index=False)
    return {"source": str(source), "labels": str(folder / "labels.csv")}


def read_in_shards(root: Path, source: str, labels: str | None = None, **cut) -> tuple[dict, list[dict], dict]:
    """The three steps as a DAG runs them (dicom_input_in_shards): listing, one read per shard, merge."""
    listing = _run(root, "input.dicom_listing", {"source": source, **cut}, "listing")
    read = {"files": source, "shard_tables": listing["shard_tables"], "labels": labels}
    reads = [_run(root, "input.dicom_shard", {**read, "shard_index": i}, "read", i) for i in listing["shard_index"]]
    parts = {"metadata_parts": [r["metadata"] for r in reads], "files_parts": [r["instances"] for r in reads]}
    return listing, reads, _run(root, "input.dicom_merge", parts, "merge")


def _set_aside(*results: dict) -> list[tuple[str, str]]:
    records = [json.loads(Path(result["manifest"]).read_text()) for result in results]
    return sorted((r["item"], r["reason"]) for record in records for r in record["rejected"])


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_a_folder_read_in_shards_merges_to_what_input_dicom_reads(tmp_path, with_a_copy, unsharded, shards):
    """22 files in N shards, each read in its own task: the merged table and folder hash-equal input.dicom's of
    the same folder (the copy, in the last shard, set aside as a duplicate of the first shard's file; the file that
    is not DICOM set aside by its shard); shard table i holds the rows kept of shard i, and decoding each merged
    shard gives the unsharded images."""
    import pandas as pd

    whole = _run(tmp_path, "input.dicom", with_a_copy, "whole")
    listing, reads, merged = read_in_shards(tmp_path, with_a_copy["source"], with_a_copy["labels"], shards=shards)
    assert listing["files_listed"] == 22 and listing["shard_index"] == list(range(shards))
    assert sharding.files_of(listing["shard_tables"], shards - 1)[-1] == "zz_copy.dcm"
    assert _hashes(merged["manifest"])["metadata"] == _hashes(whole["manifest"])["metadata"]
    assert _hashes(merged["manifest"])["files"] == _hashes(whole["manifest"])["files"]
    assert _hashes(merged["manifest"])["metadata"] == _hashes(unsharded["input"]["manifest"])["metadata"]
    assert merged["files_read"] == 20 and merged["duplicates"] == (shards > 1)
    assert _set_aside(*reads, merged) == _set_aside(whole) and len(_set_aside(whole)) == 2
    tables = merged["shard_tables"]
    rows = pd.concat([sharding.rows_of(tables, i) for i in range(shards)], ignore_index=True)
    pd.testing.assert_frame_equal(rows, read_table(merged["metadata"]))
    if shards == 3:
        common = {"files": merged["files"], "shard_tables": tables, **DECODE}
        images = [_run(tmp_path, "transform.dicom_to_images", {**common, "shard_index": i}, "d", i) for i in range(3)]
        joined = _run(tmp_path, "transform.merge_shards", {"parts": [r["images"] for r in images]}, "images")
        assert storage.content_hash(joined["merged"]) == storage.content_hash(unsharded["images"])


def test_a_sharded_read_reports_empty_and_all_bad_shards_and_keeps_max_rejected(tmp_path, cohort):
    """Two good files and two that are not DICOM: in 2 shards the second has no readable file (an empty table,
    not an error); in 6 shards four are empty; no readable file in any shard is the merge's error; a duplicate
    across shards counts against the merge's max_rejected."""
    source = tmp_path / "dicom"
    source.mkdir()
    good = sorted(Path(cohort["source"]).glob("phantom_*.dcm"))[:2]
    for number, path in enumerate(good):
        (source / f"a{number}.dcm").write_bytes(path.read_bytes())
        (source / f"z{number}.dcm").write_bytes(b"not DICOM")
    _, reads, merged = read_in_shards(tmp_path / "two", str(source), shards=2)
    assert [r["files_read"] for r in reads] == [2, 0] and reads[1]["files_rejected"] == 2
    assert merged["files_read"] == 2 and sharding.rows_of(merged["shard_tables"], 1).empty
    _, reads, merged = read_in_shards(tmp_path / "six", str(source), shards=6)
    assert [r["files_read"] for r in reads].count(0) == 4 and merged["shard_index"] == list(range(6))
    assert sorted(p.name for p in Path(merged["files"]).iterdir()) == ["a0.dcm", "a1.dcm"]
    for path in good:
        (source / f"a{good.index(path)}.dcm").write_bytes(b"not DICOM either")
    with pytest.raises(ClaimedError, match=r"^metadata_parts: no readable DICOM file in any of the 2 shard\(s\)"):
        read_in_shards(tmp_path / "none", str(source), shards=2)
    (source / "a0.dcm").write_bytes(good[0].read_bytes())
    (source / "z0.dcm").write_bytes(good[0].read_bytes())  # the same instance, in the second shard
    listing, reads, _ = read_in_shards(tmp_path / "dup", str(source), shards=2)
    parts = {"metadata_parts": [r["metadata"] for r in reads], "files_parts": [r["instances"] for r in reads]}
    with pytest.raises(ClaimedError, match=r"^max_rejected: more than 0 file\(s\) set aside"):
        _run(tmp_path / "dup", "input.dicom_merge", {**parts, "max_rejected": 0}, "strict")
    kept = _run(tmp_path / "dup", "input.dicom_merge", {**parts, "duplicates": "keep"}, "keep")
    assert kept["files_read"] == 2 and kept["duplicates"] == 1


def test_a_sharded_read_refuses_what_it_cannot_list_or_trust(tmp_path, cohort):
    with pytest.raises(ClaimedError, match="^source: not a folder: .*use input.dicom"):
        _run(tmp_path, "input.dicom_listing", {"source": str(next(Path(cohort["source"]).iterdir()))}, "one")
    with pytest.raises(ClaimedError, match="^source: .* is a PACS query; read it with input.dicom"):
        _run(tmp_path, "input.dicom_listing", {"source": "dicomweb://orthanc?modality=CR"}, "pacs")
    sharding.write_tables(["../outside.dcm"], 1, tmp_path / "shards")
    read = {"files": cohort["source"], "shard_tables": str(tmp_path / "shards"), "shard_index": 0}
    with pytest.raises(ClaimedError, match=r"'\.\./outside\.dcm' leads out of its folder"):
        _run(tmp_path, "input.dicom_shard", read, "read", 0)
    with pytest.raises(ClaimedError, match=r"^files_parts: 0 folder\(s\) for 1 table\(s\)"):
        _run(tmp_path, "input.dicom_merge", {"metadata_parts": ["x.parquet"], "files_parts": []}, "merge")
    (tmp_path / "labels.csv").write_text("file,label\na.dcm,x\n")
    parts = {"metadata_parts": [str(tmp_path / "labels.csv")], "files_parts": [cohort["source"]]}
    with pytest.raises(ClaimedError, match=r"^metadata_parts\[0\]: labels.csv is not a Parquet table"):
        _run(tmp_path, "input.dicom_merge", parts, "csv")
    read_table(cohort["labels"]).to_parquet(tmp_path / "labels.parquet")
    parts["metadata_parts"] = [str(tmp_path / "labels.parquet")]
    with pytest.raises(ClaimedError, match=r"^metadata_parts\[0\]: no columns file and SOPInstanceUID"):
        _run(tmp_path, "input.dicom_merge", parts, "no_uid")


def test_a_prefix_on_an_object_store_is_listed_without_a_download(tmp_path, with_a_copy, s3_endpoint):
    """The same folder on S3 (moto): the listing names the same files in the same shards (no file downloaded)
    and a shard's read from there writes the same table as from the local folder."""
    s3_endpoint.put(with_a_copy["source"] + "/", "claimed/listing/dicom/", recursive=True)
    local = _run(tmp_path, "input.dicom_listing", {"source": with_a_copy["source"], "shards": 3}, "local")
    remote = _run(tmp_path, "input.dicom_listing", {"source": "s3://claimed/listing/dicom", "shards": 3}, "remote")
    assert remote["files_listed"] == 22
    assert storage.content_hash(remote["shard_tables"]) == storage.content_hash(local["shard_tables"])
    by_bytes = {"source": "s3://claimed/listing/dicom", "shard_bytes": "5KB"}
    assert len(_run(tmp_path, "input.dicom_listing", by_bytes, "bytes")["shard_index"]) > 1
    reads = []
    for source, listing in ((with_a_copy["source"], local), ("s3://claimed/listing/dicom", remote)):
        read = {"files": source, "shard_tables": listing["shard_tables"], "shard_index": 1}
        reads.append(_run(tmp_path, "input.dicom_shard", read, "read", 1))
    assert _hashes(reads[0]["manifest"]) == _hashes(reads[1]["manifest"])


def test_a_column_without_a_value_in_one_shard_takes_its_type_from_the_others(tmp_path):
    """A label column all missing in one shard (pandas writes it as double) and text in the other merges as text,
    as the one table of all rows is written; a column missing everywhere keeps its type."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = [pd.DataFrame({"file": ["a"], "label": ["x"], "age": [None]}), pd.DataFrame({"file": ["b"]})]
    frames[1]["label"], frames[1]["age"] = float("nan"), None
    for number, frame in enumerate(frames):
        frame.to_parquet(tmp_path / f"{number}.parquet", index=False)
    assert pq.read_schema(tmp_path / "1.parquet").field("label").type == "double"
    rows = sharding.merge_tables([tmp_path / "0.parquet", tmp_path / "1.parquet"], tmp_path / "merged.parquet")
    merged = pq.read_table(tmp_path / "merged.parquet")
    assert rows == 2 and merged.column("label").to_pylist() == ["x", None]
    assert merged.schema.field("label").type == "string"
    assert merged.schema.field("age").type == pq.read_schema(tmp_path / "0.parquet").field("age").type


def test_the_listing_finds_what_input_dicom_finds_in_its_order(tmp_path):
    """Nested folders (a folder sorting before a file of a longer name), hidden files and folders, a link to a
    folder: the listing names input.dicom's candidate files (discover) in the same order."""
    from claimed_airflow.components.input.dicom import discover

    names = ["a/x.dcm", "a.dcm", "a-b/y.dcm", "a-b/a/z.dcm", ".hidden/z.dcm", "b/.h.dcm", "b/c.dcm", "Z.dcm"]
    for name in names:
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(b"x" * len(name))
    (tmp_path / "src" / "link").symlink_to(tmp_path / "src" / "a", target_is_directory=True)
    base, candidates = discover(str(tmp_path / "src"))
    listed = _run(tmp_path, "input.dicom_listing", {"source": str(tmp_path / "src"), "shards": 2}, "listing")
    found = [n for i in listed["shard_index"] for n in sharding.files_of(listed["shard_tables"], i)]
    assert found == [p.relative_to(base).as_posix() for p in candidates] and len(found) == 6
