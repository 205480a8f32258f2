"""Visualize operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.

Do not edit by hand: change the component, then regenerate.
"""

from __future__ import annotations

from typing import Any

from claimed_airflow.operators.base import ClaimedOperator


class MapFromCoordinatesVisualizeOperator(ClaimedOperator):
    """Draw the points of a table on a map: an interactive HTML map (folium) and a PNG scatter plot.

    Rows whose coordinates are missing or out of range (latitude -90..90, longitude -180..180) are
    reported and left out. With ``value`` the points are coloured by that numeric column.

    Runs the ``visualize.map_from_coordinates`` component. Outputs (XCom keys): html, png.

    :param table: Table (CSV, Parquet or JSON lines) with one point per row.
    :type table: str
    :param latitude: Column with the latitude in degrees (WGS 84).
    :type latitude: str
    :param longitude: Column with the longitude in degrees (WGS 84).
    :type longitude: str
    :param value: Optional numeric column that colours the points (with a colour scale).
    :type value: str | None
    :param label_column: Optional column shown in the point's popup and tooltip.
    :type label_column: str | None
    :param title: Title of the PNG plot and the HTML page.
    :type title: str
    :param colormap: Matplotlib colour map of the values, e.g. viridis, plasma, coolwarm.
    :type colormap: str
    """

    component = "visualize.map_from_coordinates"
    component_fields = ("table", "latitude", "longitude", "value", "label_column", "title", "colormap")
    ui_color = "#ede7f6"
    template_fields = (*component_fields, *ClaimedOperator.template_fields)

    def __init__(
        self,
        *,
        table: str,
        latitude: str = "latitude",
        longitude: str = "longitude",
        value: str | None = None,
        label_column: str | None = None,
        title: str = "",
        colormap: str = "viridis",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.latitude = latitude
        self.longitude = longitude
        self.value = value
        self.label_column = label_column
        self.title = title
        self.colormap = colormap
