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
