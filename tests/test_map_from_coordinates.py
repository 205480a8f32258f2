"""visualize.map_from_coordinates: folium HTML and a matplotlib PNG from a latitude/longitude table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.runner import run

pytest.importorskip("folium", reason="extra viz")

# Real places (WGS 84) with their population in millions, and two bad rows.
CITIES = [
    ("Zurich", 47.3769, 8.5417, 0.42),
    ("Geneva", 46.2044, 6.1432, 0.20),
    ("Berlin", 52.5200, 13.4050, 3.85),
    ("Lagos", 6.5244, 3.3792, 15.4),
    ("Sydney", -33.8688, 151.2093, 5.3),
    ("Nowhere", 123.0, 8.0, 1.0),
    ("Unknown", None, None, 1.0),
]


@pytest.fixture
def cities(tmp_path) -> Path:
    path = tmp_path / "cities.csv"
    pd.DataFrame(CITIES, columns=["city", "lat", "lon", "population"]).to_csv(path, index=False)
    return path


def test_map_html_and_png(cities, tmp_path):
    result = run(
        "visualize.map_from_coordinates",
        {"table": str(cities), "latitude": "lat", "longitude": "lon", "value": "population", "label_column": "city"},
        root=str(tmp_path / "out"),
    )
    good = [c for c in CITIES if c[1] is not None and abs(c[1]) <= 90]
    assert result["points"] == len(good) and result["rejected"] == 2
    assert result["bounds"] == [
        min(c[1] for c in good),
        min(c[2] for c in good),
        max(c[1] for c in good),
        max(c[2] for c in good),
    ]
    html = Path(result["html"]).read_text()
    markers = re.findall(r"L\.circleMarker\(\s*\[([-\d.]+), ([-\d.]+)\]", html)
    assert sorted((float(a), float(b)) for a, b in markers) == sorted((c[1], c[2]) for c in good)
    assert "Lagos" in html and "population" in html  # popup text and the colour scale caption
    image = Image.open(result["png"])
    assert image.format == "PNG" and image.width > 400
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert {r["item"] for r in manifest["rejected"]} == {"row 5", "row 6"}


def test_png_colours_follow_the_values(cities, tmp_path):
    """The largest city is drawn in the top colour of the map (yellow for viridis), the smallest in the bottom one."""
    result = run(
        "visualize.map_from_coordinates",
        {"table": str(cities), "latitude": "lat", "longitude": "lon", "value": "population"},
        root=str(tmp_path),
    )
    html = Path(result["html"]).read_text()
    assert '"#fde725"' in html and '"#440154"' in html  # viridis(1.0) and viridis(0.0)


def test_bad_inputs(cities, tmp_path):
    with pytest.raises(ClaimedError, match=r"^latitude: column 'latitude' missing \(columns: city, lat, lon"):
        run("visualize.map_from_coordinates", {"table": str(cities)}, root=str(tmp_path))
    with pytest.raises(ClaimedError, match="^value: column 'pop' missing"):
        run(
            "visualize.map_from_coordinates",
            {"table": str(cities), "latitude": "lat", "longitude": "lon", "value": "pop"},
            root=str(tmp_path),
        )
    with pytest.raises(ClaimedError, match="colormap: unknown colour map 'rainbowz'"):
        run(
            "visualize.map_from_coordinates",
            {
                "table": str(cities),
                "latitude": "lat",
                "longitude": "lon",
                "value": "population",
                "colormap": "rainbowz",
            },
            root=str(tmp_path),
        )
    with pytest.raises(ClaimedError, match="no row has valid coordinates"):
        run(
            "visualize.map_from_coordinates",
            {"table": str(cities), "latitude": "lat", "longitude": "city"},
            root=str(tmp_path),
        )
