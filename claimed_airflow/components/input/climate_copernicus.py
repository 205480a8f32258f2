"""Download a request from the Copernicus Climate Data Store (CDS API) as NetCDF, plus a flat table."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

from claimed_airflow.core import OutputPath, component
from claimed_airflow.core.credentials import from_connection, mask
from claimed_airflow.core.errors import ClaimedError

log = logging.getLogger("claimed_airflow")


@component("input")
def climate_copernicus(
    dataset: str,
    variables: list[str],
    date: str,
    times: list[str] | None = None,
    area: list[float] | None = None,
    product_type: str | None = "reanalysis",
    extra: dict | None = None,
    conn_id: str | None = "copernicus_default",
    url: str | None = None,
    http_retries: int = 3,
    netcdf: OutputPath = "data.nc",
    table: OutputPath = "data.parquet",
) -> dict:
    """Download climate data (e.g. ERA5) from the Copernicus Climate Data Store with the cdsapi client.

    Builds a CDS request from dataset, variables, date, times and area, waits for the job, and writes
    the NetCDF file and a flat table (one row per time and grid point, one column per variable).
    Credentials come from the Airflow connection ``conn_id`` (host = API URL, password = API key);
    without one, from ``$CDSAPI_URL``/``$CDSAPI_KEY`` or ``~/.cdsapirc`` as cdsapi reads them. The key
    never appears in logs, XCom or the run manifest.

    :param dataset: CDS dataset id, e.g. reanalysis-era5-single-levels.
    :param variables: Variables to download, e.g. 2m_temperature, total_precipitation.
    :param date: Date or range, e.g. 2024-01-01 or 2024-01-01/2024-01-31.
    :param times: Hours of the day, e.g. 00:00, 12:00 (default: what the dataset serves).
    :param area: Bounding box as north, west, south, east in degrees (default: the whole globe).
    :param product_type: CDS product type (e.g. reanalysis); empty for datasets without one.
    :param extra: More request keys merged into the request (e.g. pressure_level), as a JSON object.
    :param conn_id: Airflow connection of type copernicus holding the API URL and key; empty to use
        the cdsapi configuration ($CDSAPI_URL/$CDSAPI_KEY or ~/.cdsapirc).
    :param url: API URL overriding the connection's (e.g. the Atmosphere Data Store).
    :param http_retries: Tries of each HTTP call before giving up.
    :param netcdf: The downloaded NetCDF file.
    :param table: The data as a flat Parquet table (time, latitude, longitude, one column per variable).
    """
    if not variables:
        raise ClaimedError("variables: give at least one variable, e.g. 2m_temperature")
    request: dict = {"variable": list(variables), "date": date, "data_format": "netcdf"}
    if times:
        request["time"] = list(times)
    if area:
        request["area"] = _check_area(area)
    if product_type:
        request["product_type"] = [product_type]
    request.update(extra or {})
    api_url, key = _credentials(conn_id, url)
    download = Path(netcdf).with_suffix(".download")
    _retrieve(api_url, key, dataset, request, download, http_retries)
    _to_netcdf(download, Path(netcdf))
    rows, names = _write_table(Path(netcdf), Path(table))
    return {"dataset": dataset, "rows": rows, "variables": names, "bytes": Path(netcdf).stat().st_size}


def _check_area(area: list[float]) -> list[float]:
    if len(area) != 4:
        raise ClaimedError(f"area: expected 4 numbers (north, west, south, east), got {area}")
    north, west, south, east = area
    if not (-90 <= south <= north <= 90) or not (-180 <= west <= 360 and -180 <= east <= 360):
        raise ClaimedError(f"area: {area} is not north, west, south, east in degrees with north >= south")
    return list(area)


def _credentials(conn_id: str | None, url: str | None) -> tuple[str | None, str | None]:
    """(url, key) from the Airflow connection, looked up only now (at run time), else ``$CDSAPI_URL``/``$CDSAPI_KEY``
    (:mod:`claimed_airflow.core.credentials`); with neither, cdsapi reads its own configuration (~/.cdsapirc)."""
    env = (url or os.environ.get("CDSAPI_URL"), os.environ.get("CDSAPI_KEY"))
    if not conn_id:
        return env

    def read(name: str) -> tuple[str | None, str | None]:
        from claimed_airflow.hooks.copernicus import CopernicusHook

        try:
            conn_url, key = CopernicusHook(name).credentials()
        except ValueError as exc:
            raise ClaimedError(f"conn_id: {exc}") from None
        mask(key)
        return url or conn_url, key

    return from_connection(
        conn_id,
        read,
        kind="Copernicus",
        environment=lambda: env if env[1] else None,
        hint="define it (type copernicus: host = API URL, password = API key) or leave conn_id empty and set "
        "CDSAPI_URL/CDSAPI_KEY",
    )


def _retrieve(url: str | None, key: str | None, dataset: str, request: dict, target: Path, retries: int) -> None:
    import cdsapi
    import requests
    from ecmwf.datastores.processing import DownloadError, LinkError, ProcessingFailedError

    quiet = logging.getLogger("cdsapi")
    try:
        client = cdsapi.Client(
            url=url,
            key=key,
            quiet=True,
            progress=False,
            retry_max=max(1, retries),
            sleep_max=10,
            info_callback=lambda *a, **k: log.info("CDS: " + str(a[0]), *a[1:]),
            warning_callback=lambda *a, **k: log.warning("CDS: " + str(a[0]), *a[1:]),
            error_callback=lambda *a, **k: log.error("CDS: " + str(a[0]), *a[1:]),
            debug_callback=lambda *a, **k: None,  # its debug record carries the key
        )
    except Exception as exc:  # cdsapi raises a bare Exception when no URL/key is configured
        raise ClaimedError(f"conn_id: no CDS API credentials ({exc})") from None
    quiet.setLevel(logging.WARNING)
    log.info("CDS request to %s: %s %s", client.url, dataset, request)
    try:
        client.retrieve(dataset, request, str(target))
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = str(exc).replace("\n", " ")
        if status == 404:
            raise ClaimedError(f"dataset: {dataset!r} is not served by {client.url}: {detail}") from None
        if status in (401, 403):
            raise ClaimedError(f"conn_id: the CDS rejected the credentials ({status}): {detail}") from None
        raise ClaimedError(f"dataset: request for {dataset!r} failed: {detail}") from None
    except requests.ConnectionError as exc:
        raise ClaimedError(f"url: cannot reach the CDS API at {client.url}: {type(exc).__name__}") from None
    except (ProcessingFailedError, DownloadError, LinkError) as exc:
        message = " ".join(str(exc).split())
        raise ClaimedError(f"dataset: the CDS job for {dataset!r} failed: {message}") from None


def _to_netcdf(download: Path, target: Path) -> None:
    """The CDS serves NetCDF or, for several files, a zip of them: keep (merge) the NetCDF."""
    if zipfile.is_zipfile(download):
        with zipfile.ZipFile(download) as archive:
            members = [m for m in archive.namelist() if m.endswith(".nc")]
            if not members:
                raise ClaimedError(f"dataset: the CDS returned a zip without NetCDF files ({archive.namelist()})")
            if len(members) == 1:
                target.write_bytes(archive.read(members[0]))
            else:
                import xarray as xr

                folder = download.with_suffix(".parts")
                archive.extractall(folder, members)
                with xr.open_mfdataset([folder / m for m in members], combine="by_coords") as merged:
                    merged.load().to_netcdf(target)
        download.unlink()
        return
    with open(download, "rb") as handle:
        magic = handle.read(4)
    if magic[:3] != b"CDF" and magic != b"\x89HDF":
        raise ClaimedError(f"dataset: the CDS returned a file that is not NetCDF (starts with {magic!r})")
    download.rename(target)


def _write_table(netcdf: Path, table: Path) -> tuple[int, list[str]]:
    import xarray as xr

    with xr.open_dataset(netcdf) as data:
        names = [str(n) for n in data.data_vars]
        frame = data.to_dataframe().reset_index()
    frame.to_parquet(table, index=False)
    return len(frame), names
