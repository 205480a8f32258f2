"""The documentation's reference pages, generated from the code so that they cannot drift.

Components and operators come from the component specs, the common operator arguments from
``ClaimedOperator``'s docstring, connection types and settings from ``get_provider_info()``, the
command line from its argparse parser. ``docs/hooks/reference.py`` adds them to the MkDocs site.
"""

from __future__ import annotations

from claimed_airflow.catalog import _cell, _text, catalog_markdown


def components_page() -> str:
    return catalog_markdown()


def operators_page() -> str:
    import dataclasses

    import docstring_parser

    from claimed_airflow.core import registry
    from claimed_airflow.core.options import KubernetesOptions, SparkOptions
    from claimed_airflow.operators.base import ClaimedOperator

    lines = [
        "# Operators",
        "",
        "One operator class per component, in `claimed_airflow.operators`; its own parameters are the",
        "component's (see [Components](components.md)). Every operator also takes the arguments below and",
        "those of Airflow's `BaseOperator`.",
        "",
        "| operator | component | what it does |",
        "| --- | --- | --- |",
    ]
    for spec in registry.library().values():
        anchor = spec.name.replace(".", "").lower()
        lines.append(f"| `{spec.operator}` | [`{spec.name}`](components.md#{anchor}) | {_cell(spec.summary)} |")
    lines += ["", "## Arguments of every claimed operator", "", "| argument | type | description |"]
    lines.append("| --- | --- | --- |")
    for param in docstring_parser.parse(ClaimedOperator.__doc__ or "").params:
        type_cell = _cell(f"`{param.type_name}`") if param.type_name else ""
        lines.append(f"| `{param.arg_name}` | {type_cell} | {_cell(param.description or '')} |")
    lines += [
        "",
        "## Engine options",
        "",
        "`claimed_airflow.core.options`; unset (None) options take the defaults named.",
    ]
    for options in (KubernetesOptions, SparkOptions):
        lines += [
            "",
            f"### `{options.__name__}` (`{options.engine}=`)",
            "",
            "| option | type | default | description |",
        ]
        lines.append("| --- | --- | --- | --- |")
        described = {p.arg_name: p.description or "" for p in docstring_parser.parse(options.__doc__ or "").params}
        for field in dataclasses.fields(options):
            text = described.get(field.name, "")
            lines.append(f"| `{field.name}` | {_cell(f'`{field.type}`')} | `{field.default!r}` | {_cell(text)} |")
    return "\n".join(lines) + "\n"


def connections_page() -> str:
    from claimed_airflow import get_provider_info

    lines = ["# Connection types", "", "Create them in the Airflow UI (Admin, Connections) or as `AIRFLOW_CONN_<ID>`."]
    for conn in get_provider_info()["connection-types"]:
        behaviour = conn.get("ui-field-behaviour", {})
        lines += ["", f"## `{conn['connection-type']}`: {conn['hook-name']}", "", f"Hook: `{conn['hook-class-name']}`"]
        lines += ["", "| field | label |", "| --- | --- |"]
        hidden = set(behaviour.get("hidden-fields", []))
        relabel = behaviour.get("relabeling", {})
        for field in ("host", "schema", "login", "password", "port", "extra"):
            if field not in hidden:
                lines.append(f"| `{field}` | {_cell(relabel.get(field, field))} |")
        for name, field in conn.get("conn-fields", {}).items():
            lines.append(f"| `{name}` (extra) | {_cell(field.get('label', name))} |")
    return "\n".join(lines) + "\n"


def settings_page() -> str:
    import inspect

    from claimed_airflow import get_provider_info
    from claimed_airflow.core import settings

    section = get_provider_info()["config"]["claimed"]  # made from settings.OPTIONS
    lines = [
        "# Settings",
        "",
        _text(inspect.getdoc(settings)),  # the lookup order, as the settings module states it
        "",
        "## `[claimed]`",
        "",
        _cell(section["description"]),
        "",
        "| option | type | default | environment | example | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, option in settings.OPTIONS.items():
        lines.append(
            f"| `{name}` | {option.type} | {_cell(option.default) if option.default is not None else ''} | "
            f"`{settings.env_name(name)}` | {_cell(f'`{option.example}`') if option.example else ''} | "
            f"{_cell(option.description)} |"
        )
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    import argparse

    from claimed_airflow.cli import build_parser

    parser = build_parser()
    lines = ["# Command line", "", "`claimed-airflow` (the container entrypoint too).", "", "```text"]
    lines += [parser.format_help().rstrip(), "```"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += ["", f"## `{name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


PAGES = {
    "reference/components.md": components_page,
    "reference/operators.md": operators_page,
    "reference/connections.md": connections_page,
    "reference/settings.md": settings_page,
    "reference/cli.md": cli_page,
}
