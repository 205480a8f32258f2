"""input.climate_copernicus against a loopback stub of the CDS API (the endpoints cdsapi/ecmwf-datastores call)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

for _module in ("cdsapi", "xarray", "netCDF4"):
    pytest.importorskip(_module, reason="extra climate")

KEY = "7f3c1d2e-0000-4a5b-9c8d-cds-test-key"
DATASET = "reanalysis-era5-single-levels"


def _netcdf(path: Path) -> bytes:
    import xarray as xr

    times = pd.date_range("2024-01-01", periods=2, freq="12h")
    lat, lon = np.array([47.5, 47.25, 47.0]), np.array([8.0, 8.25, 8.5, 8.75])
    values = 270 + np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4) / 10
    data = xr.Dataset(
        {"t2m": (("valid_time", "latitude", "longitude"), values, {"units": "K"})},
        coords={"valid_time": times, "latitude": lat, "longitude": lon},
    )
    data.to_netcdf(path, engine="netcdf4")
    return path.read_bytes()


class Stub(BaseHTTPRequestHandler):
    """The CDS API as ecmwf-datastores-client 0.5 uses it: process, execution, job status, results, download."""

    def log_message(self, *args):
        pass

    def _send(self, status: int, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self, body=None):
        self.server.calls.append(
            {
                "method": self.command,
                "path": self.path.split("?")[0],
                "token": self.headers.get("PRIVATE-TOKEN"),
                "body": body,
            }
        )

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._record()
        server, path = self.server, self.path.split("?")[0]
        base = f"http://127.0.0.1:{server.server_address[1]}/api/retrieve/v1"
        if path == "/api/catalogue/v1/messages":
            return self._send(200, {"messages": []})
        if path.startswith("/api/retrieve/v1/processes/"):
            name = path.rsplit("/", 1)[1]
            if name != DATASET:
                return self._send(404, {"title": f"process id '{name}' not found"})
            return self._send(200, {"id": name, "links": []})
        if path == "/api/retrieve/v1/jobs/job-1":
            server.polls += 1
            status = "running" if server.polls == 1 else server.outcome
            links = [
                {"rel": "self", "href": f"{base}/jobs/job-1"},
                {"rel": "results", "href": f"{base}/jobs/job-1/results"},
            ]
            return self._send(
                200,
                {
                    "jobID": "job-1",
                    "status": status,
                    "processID": DATASET,
                    "metadata": {"log": [], "request": {"ids": server.inputs}},
                    "links": links,
                },
            )
        if path == "/api/retrieve/v1/jobs/job-1/results":
            if server.outcome == "failed":
                return self._send(400, {"title": "The job has failed", "detail": "variable 'no_such_variable' unknown"})
            href = f"http://127.0.0.1:{server.server_address[1]}/download/job-1.nc"
            return self._send(
                200,
                {"asset": {"value": {"href": href, "file:size": len(server.payload), "type": "application/netcdf"}}},
            )
        if path == "/download/job-1.nc":
            return self._send(200, server.payload, "application/x-netcdf")
        return self._send(404, {"title": f"no route {path}"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        base = f"http://127.0.0.1:{self.server.server_address[1]}/api/retrieve/v1"
        if self.headers.get("PRIVATE-TOKEN") != KEY:
            return self._send(401, {"title": "Authentication failed"})
        if self.path == f"/api/retrieve/v1/processes/{DATASET}/execution":
            self.server.inputs = body["inputs"]
            self.server.outcome = "failed" if "no_such_variable" in body["inputs"]["variable"] else "successful"
            return self._send(
                201,
                {
                    "jobID": "job-1",
                    "status": "accepted",
                    "processID": DATASET,
                    "links": [{"rel": "monitor", "href": f"{base}/jobs/job-1"}],
                },
            )
        return self._send(404, {"title": "no route"})


@pytest.fixture
def cds(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.calls, server.polls, server.inputs, server.outcome = [], 0, {}, "successful"
    server.payload = _netcdf(tmp_path / "served.nc")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("CDSAPI_KEY", raising=False)
    monkeypatch.delenv("CDSAPI_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cdsapirc
    monkeypatch.setenv("AIRFLOW_CONN_CDS_TEST", json.dumps({"conn_type": "copernicus", "host": url, "password": KEY}))
    yield server, url
    server.shutdown()
    server.server_close()


ARGS = {
    "dataset": DATASET,
    "variables": "2m_temperature",
    "date": "2024-01-01",
    "times": "00:00,12:00",
    "area": "[47.5, 8.0, 47.0, 8.75]",
    "conn_id": "cds_test",
}


def test_download_with_credentials_from_an_airflow_connection(cds, tmp_path, caplog):
    server, url = cds
    caplog.set_level(logging.DEBUG)
    result = run("input.climate_copernicus", ARGS, root=str(tmp_path / "out"))
    calls = [(c["method"], c["path"]) for c in server.calls if c["method"] != "HEAD"]
    assert [c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]] == [  # repeated polls collapsed
        ("GET", "/api/catalogue/v1/messages"),
        ("GET", f"/api/retrieve/v1/processes/{DATASET}"),
        ("POST", f"/api/retrieve/v1/processes/{DATASET}/execution"),
        ("GET", "/api/retrieve/v1/jobs/job-1"),
        ("GET", "/api/retrieve/v1/jobs/job-1/results"),
        ("GET", "/download/job-1.nc"),
    ]
    assert server.polls >= 2  # waited through "running"
    post = next(c for c in server.calls if c["method"] == "POST")
    assert post["token"] == KEY
    assert post["body"]["inputs"] == {
        "variable": ["2m_temperature"],
        "date": "2024-01-01",
        "data_format": "netcdf",
        "time": ["00:00", "12:00"],
        "area": [47.5, 8.0, 47.0, 8.75],
        "product_type": ["reanalysis"],
    }
    assert Path(result["netcdf"]).read_bytes() == server.payload
    table = pd.read_parquet(result["table"])
    assert len(table) == result["rows"] == 24 and result["variables"] == ["t2m"]
    assert table["t2m"].max() == pytest.approx(270 + 2.3)
    manifest = Path(result["manifest"]).read_text()
    assert KEY not in manifest and KEY not in caplog.text and KEY not in json.dumps(result)


def test_bad_inputs_fail_with_a_clear_message(cds, tmp_path, monkeypatch):
    server, url = cds
    with pytest.raises(ClaimedError, match="dataset: 'reanalysis-era9' is not served by .*not found"):
        run("input.climate_copernicus", {**ARGS, "dataset": "reanalysis-era9"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="the CDS job for .* failed|request for .* failed: .*The job has failed"):
        run("input.climate_copernicus", {**ARGS, "variables": "no_such_variable"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="area: expected 4 numbers"):
        run("input.climate_copernicus", {**ARGS, "area": "[47, 8, 46]"}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="conn_id: Airflow connection 'cds_missing' is not defined"):
        run("input.climate_copernicus", {**ARGS, "conn_id": "cds_missing"}, root=str(tmp_path))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CDS_WRONG", json.dumps({"conn_type": "copernicus", "host": url, "password": "x" * 12})
    )
    with pytest.raises(ClaimedError, match=r"conn_id: the CDS rejected the credentials \(401\)"):
        run("input.climate_copernicus", {**ARGS, "conn_id": "cds_wrong"}, root=str(tmp_path))


def test_environment_credentials_and_unreachable_url(cds, tmp_path, monkeypatch):
    server, url = cds
    monkeypatch.setenv("CDSAPI_URL", url)
    monkeypatch.setenv("CDSAPI_KEY", KEY)
    result = run("input.climate_copernicus", {**ARGS, "conn_id": ""}, root=str(tmp_path))
    assert result["rows"] == 24
    with pytest.raises(ClaimedError, match="url: cannot reach the CDS API at http://127.0.0.1:9/api"):
        run(
            "input.climate_copernicus",
            {**ARGS, "conn_id": "", "url": "http://127.0.0.1:9/api", "http_retries": 1},
            root=str(tmp_path),
        )
