"""A map of points from a table with latitude and longitude columns: interactive HTML and a PNG."""

from __future__ import annotations

from claimed_airflow.core import InputPath, OutputPath, component, reject
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.tables import require_columns


@component("visualize")
def map_from_coordinates(
    table: InputPath,
    latitude: str = "latitude",
    longitude: str = "longitude",
    value: str | None = None,
    label_column: str | None = None,
    title: str = "",
    colormap: str = "viridis",
    html: OutputPath = "map.html",
    png: OutputPath = "map.png",
) -> dict:
    """Draw the points of a table on a map: an interactive HTML map (folium) and a PNG scatter plot.

    Rows whose coordinates are missing or out of range (latitude -90..90, longitude -180..180) are
    reported and left out. With ``value`` the points are coloured by that numeric column.

    :param table: Table (CSV, Parquet or JSON lines) with one point per row.
    :param latitude: Column with the latitude in degrees (WGS 84).
    :param longitude: Column with the longitude in degrees (WGS 84).
    :param value: Optional numeric column that colours the points (with a colour scale).
    :param label_column: Optional column shown in the point's popup and tooltip.
    :param title: Title of the PNG plot and the HTML page.
    :param colormap: Matplotlib colour map of the values, e.g. viridis, plasma, coolwarm.
    :param html: The interactive map (HTML, OpenStreetMap tiles loaded by the browser).
    :param png: The static map (PNG scatter plot of longitude/latitude).
    """
    import pandas as pd

    from claimed_airflow.core.tables import read_table

    frame = read_table(table)
    for param, column in (
        ("latitude", latitude),
        ("longitude", longitude),
        ("value", value),
        ("label_column", label_column),
    ):
        require_columns(frame, [column], param=param)
    lat = pd.to_numeric(frame[latitude], errors="coerce")
    lon = pd.to_numeric(frame[longitude], errors="coerce")
    values = pd.to_numeric(frame[value], errors="coerce") if value else None
    located = lat.between(-90, 90) & lon.between(-180, 180)
    good = located & values.notna() if values is not None else located
    for index in frame.index[~good]:
        where = f"({frame.at[index, latitude]}, {frame.at[index, longitude]})"
        reject(f"row {index}", f"invalid coordinates {where}" if not located[index] else f"{value} is not a number")
    if not good.any():
        raise ClaimedError(f"table: no row has valid coordinates in {latitude!r}/{longitude!r}")
    points = pd.DataFrame({"lat": lat[good], "lon": lon[good]})
    points["value"] = values[good] if values is not None else None
    points["label"] = frame.loc[good, label_column].astype(str) if label_column else None
    _html(points, html, value, title, colormap)
    _png(points, png, value, title, colormap, latitude, longitude)
    return {
        "points": int(len(points)),
        "rejected": int((~good).sum()),
        "bounds": [float(points.lat.min()), float(points.lon.min()), float(points.lat.max()), float(points.lon.max())],
    }


def _colors(values, colormap: str):
    import matplotlib
    from matplotlib import colors

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ClaimedError(f"colormap: unknown colour map {colormap!r} (e.g. viridis, plasma, coolwarm)") from None
    low, high = float(values.min()), float(values.max())
    norm = colors.Normalize(low, high if high > low else low + 1)
    return cmap, norm, [colors.to_hex(cmap(norm(v))) for v in values]


def _html(points, path: str, value: str | None, title: str, colormap: str) -> None:
    import folium

    m = folium.Map(tiles="OpenStreetMap", control_scale=True)
    hexes = _colors(points["value"], colormap)[2] if value else ["#3186cc"] * len(points)
    for (_, row), color in zip(points.iterrows(), hexes, strict=True):
        text = _escape(" ".join(str(t) for t in (row["label"], f"{value}={row['value']:g}" if value else None) if t))
        folium.CircleMarker(
            location=(row["lat"], row["lon"]),
            radius=6,
            color=color,
            fill=True,
            fill_color=color,
            fill_opacity=0.8,
            popup=folium.Popup(folium.Html(text, script=True)) if text else None,
            tooltip=text or None,
        ).add_to(m)
    if value:
        import branca.colormap

        cmap, norm, _ = _colors(points["value"], colormap)
        steps = [cmap(i / 8) for i in range(9)]
        legend = branca.colormap.LinearColormap(steps, vmin=norm.vmin, vmax=norm.vmax, caption=value)
        legend.add_to(m)
    m.fit_bounds([[points.lat.min(), points.lon.min()], [points.lat.max(), points.lon.max()]], padding=(20, 20))
    if title:
        m.get_root().header.add_child(folium.Element(f"<title>{_escape(title)}</title>"))
    m.save(path)


def _escape(text: str) -> str:
    """Text for HTML inside a JavaScript template literal (folium's popup and tooltip): markup, quotes,
    backticks, ``${`` and backslashes become character references, so a label is shown, never run."""
    import html

    return html.escape(text).translate({ord("`"): "&#96;", ord("$"): "&#36;", ord("\\"): "&#92;"})


def _png(points, path: str, value: str | None, title: str, colormap: str, latitude: str, longitude: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    try:
        if value:
            cmap, norm, _ = _colors(points["value"], colormap)
            scatter = ax.scatter(points.lon, points.lat, c=points["value"], cmap=cmap, norm=norm, s=30, edgecolors="k")
            fig.colorbar(scatter, ax=ax, label=value)
        else:
            ax.scatter(points.lon, points.lat, s=30, color="#3186cc", edgecolors="k")
        ax.set_xlabel(f"{longitude} (°)")
        ax.set_ylabel(f"{latitude} (°)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
        ax.set_title(title or f"{len(points)} points")
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
