"""DIMSE against two real PACS: DCMTK's dcmqrscp (default: uncompressed only; and accepting compressed
syntaxes) and Orthanc. C-ECHO, C-FIND, C-STORE, C-GET and C-MOVE; files in every transfer syntax of
the shared data round-trip (stored with output.dicom_network, retrieved with input.dicom_network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run
from tests import dcmtk, orthanc
from tests.smtp_server import free_port

pytest.importorskip("pynetdicom")
CONN = "dimse_roundtrip"
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


@pytest.fixture
def every_syntax(tmp_path, shared_data) -> Path:
    """The shared DICOM files, each with a SOP Instance UID of its own (several share one), syntax kept."""
    folder = tmp_path / "every-syntax"
    folder.mkdir()
    for path in sorted((shared_data / "dicom").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        uid = "2.25." + str(int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:15], "big"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.save_as(folder / path.name, enforce_file_format=True)
    return folder


def originals(folder: Path) -> dict[str, tuple[str, np.ndarray | None]]:
    """SOPInstanceUID -> (transfer syntax, decoded pixels) of each file."""
    found = {}
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        found[str(ds.SOPInstanceUID)] = (
            str(ds.file_meta.TransferSyntaxUID),
            ds.pixel_array if "PixelData" in ds else None,
        )
    return found


def assert_round_trip(result: dict, expected: dict, missing_ok: set[str] = frozenset()) -> None:
    """Every instance came back with the pixels it was sent with (the same decoded values)."""
    table = pd.read_parquet(result["metadata"])
    back = dict(zip(table["SOPInstanceUID"], table["file"], strict=True))
    assert set(back) | missing_ok >= set(expected) and set(back) <= set(expected)
    rejected = json.loads(Path(result["manifest"]).read_text())["rejected"]
    assert {r["item"] for r in rejected} == set(expected) - set(back)  # each set aside with its reason
    assert all("did not send it (C-" in r["reason"] for r in rejected)
    for uid, (syntax, pixels) in expected.items():
        if uid in back and pixels is not None:  # decoded by the same decoder, on the way or here: the same values
            assert np.array_equal(pydicom.dcmread(Path(result["files"]) / back[uid]).pixel_array, pixels), syntax


@pytest.mark.parametrize("compressed", [False, True], ids=["dcmqrscp-default", "dcmqrscp-compressed"])
@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_every_transfer_syntax_round_trips_through_dcmqrscp(tmp_path, every_syntax, monkeypatch, compressed, retrieve):
    if not dcmtk.available():
        pytest.skip(f"dcmqrscp is not installed ({dcmtk.INSTALL})")
    expected = originals(every_syntax)
    assert {s for s, _ in expected.values()} >= {
        "1.2.840.10008.1.2.1",  # explicit VR little endian
        "1.2.840.10008.1.2.1.99",  # deflate
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.70",  # JPEG lossless
        "1.2.840.10008.1.2.4.80",  # JPEG-LS
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
    }
    move_port = free_port()
    destinations = {"CLAIMED": ("127.0.0.1", move_port)}
    with dcmtk.Dcmqrscp(tmp_path / "pacs", compressed=compressed, move_destinations=destinations) as pacs:
        extra = {"retrieve": retrieve, "move_port": move_port, "move_bind": "127.0.0.1"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.dimse_connection(**extra))
        from claimed_airflow.hooks.dicom import DicomHook

        ok, message = DicomHook(CONN).test_connection()  # C-ECHO
        assert ok and pacs.address in message, message
        stored = run("output.dicom_network", {"dicom": str(every_syntax), "conn_id": CONN}, root=str(tmp_path))
        outcome = pd.read_csv(stored["stored"])
        assert stored["instances_stored"] == len(expected) and set(outcome["outcome"]) == {"stored"}
        kept = {pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID for p in pacs.stored()}
        if not compressed:  # this archive takes uncompressed data only: every compressed file was decompressed
            assert kept <= UNCOMPRESSED
        else:
            assert len(kept - UNCOMPRESSED) >= 6  # kept as sent
        # dcmqrscp's C-MOVE proposes uncompressed syntaxes only: its compressed files cannot come back that way
        unsendable = {u for u, (s, _) in expected.items() if s not in UNCOMPRESSED}
        missing_ok = unsendable if compressed and retrieve == "move" else set()
        result = run("input.dicom_network", {"conn_id": CONN, "level": "study"}, root=str(tmp_path / "back"))
        assert result["instances_found"] == len(expected)  # each once (dcmqrscp answers a series once per instance)
        assert_round_trip(result, expected, missing_ok)
        ct = run("input.dicom_network", {"conn_id": CONN, "modality": "CT"}, root=str(tmp_path / "ct"))  # C-FIND
        assert set(pd.read_parquet(ct["metadata"])["Modality"]) == {"CT"}


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_every_transfer_syntax_round_trips_through_orthanc(tmp_path, every_syntax, monkeypatch, retrieve):
    if not orthanc.available():
        pytest.skip(f"Orthanc is not installed ({orthanc.INSTALL})")
    expected = originals(every_syntax)
    with orthanc.Orthanc(tmp_path / "orthanc") as pacs:
        extra = {"retrieve": retrieve, "move_port": pacs.move_port, "move_bind": "127.0.0.1"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.dimse_connection(**extra))
        stored = run("output.dicom_network", {"dicom": str(every_syntax), "conn_id": CONN}, root=str(tmp_path))
        assert stored["instances_stored"] == len(expected) == pacs.statistics()["CountInstances"]
        result = run("input.dicom_network", {"conn_id": CONN, "level": "study"}, root=str(tmp_path / "back"))
        table = pd.read_parquet(result["metadata"])
        syntaxes = dict(zip(table["SOPInstanceUID"], table["TransferSyntaxUID"], strict=True))
        assert syntaxes == {u: s for u, (s, _) in expected.items()}  # as sent: nothing transcoded
        assert_round_trip(result, expected)


def test_a_file_no_one_can_decode_is_recorded_and_the_rest_stored(tmp_path, every_syntax, monkeypatch):
    if not dcmtk.available():
        pytest.skip(f"dcmqrscp is not installed ({dcmtk.INSTALL})")
    broken = pydicom.dcmread(every_syntax / "JPEG2000.dcm")
    broken.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # not a JPEG 2000 stream
    broken.save_as(every_syntax / "JPEG2000.dcm", enforce_file_format=True)
    with dcmtk.Dcmqrscp(tmp_path / "pacs") as pacs:  # uncompressed only: the broken file would need decoding
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.dimse_connection())
        result = run("output.dicom_network", {"dicom": str(every_syntax), "conn_id": CONN}, root=str(tmp_path))
        rows = pd.read_csv(result["stored"]).set_index("file")
        assert rows.loc["JPEG2000.dcm", "outcome"].startswith("failed (the peer does not take JPEG 2000")
        assert result["instances_failed"] == 1 and result["instances_stored"] == len(rows) - 1
        with pytest.raises(ClaimedError, match="^max_rejected: 1 file\\(s\\) not stored on DCMQR@"):
            run(
                "output.dicom_network",
                {"dicom": str(every_syntax), "conn_id": CONN, "max_rejected": 0},
                root=str(tmp_path / "strict"),
            )


def test_move_needs_a_port_and_a_pacs_that_knows_us(tmp_path, every_syntax, monkeypatch, caplog):
    if not dcmtk.available():
        pytest.skip(f"dcmqrscp is not installed ({dcmtk.INSTALL})")
    with dcmtk.Dcmqrscp(tmp_path / "pacs") as pacs:  # no move destination configured
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.dimse_connection(retrieve="move"))
        with pytest.raises(ClaimedError, match="^conn_id: connection 'dimse_roundtrip': retrieve=move needs move_port"):
            run("input.dicom_network", {"conn_id": CONN}, root=str(tmp_path))
        extra = {"retrieve": "move", "move_port": free_port(), "move_bind": "127.0.0.1"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", pacs.dimse_connection(**extra))
        run("output.dicom_network", {"dicom": str(every_syntax), "conn_id": CONN}, root=str(tmp_path))
        with pytest.raises(ClaimedError, match="^source: no readable DICOM file"):
            run("input.dicom_network", {"conn_id": CONN, "modality": "CT"}, root=str(tmp_path / "back"))
        assert "C-MOVE status 0xA801: the PACS does not know the move destination" in caplog.text
