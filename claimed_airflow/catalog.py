"""``claimed-airflow catalog``: a browsable Markdown or HTML catalog of every component."""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path

from claimed_airflow import __version__
from claimed_airflow.core import registry
from claimed_airflow.core.component import ComponentSpec


def _text(text: object, cell: bool = False) -> str:
    """Markdown showing ``text`` as written: ``rst`` literals as code; outside code, HTML escaped and ``\\``, ``[``
    (links) backslashed. Text from docstrings (users' components, notebooks) never becomes markup or a link."""
    text = re.sub(r":[a-z]+:`", "`", str(text)).replace("``", "`")  # rst roles and literals as code
    parts = (" ".join(text.split()) if cell else text).split("`")
    last = len(parts) - 1  # with an odd number of backticks the last one opens no code span
    for i, part in enumerate(parts):
        if not (i % 2 and i < last and "\n" not in part):  # code spans end at a paragraph: one line is code
            part = html.escape(part, quote=False).replace("\\", "\\\\").replace("[", "\\[")
            parts[i] = part.replace("|", "\\|") if cell else part  # tables leave pipes inside code spans alone
    return "`".join(parts)


def _cell(text: object) -> str:
    """Markdown table cell: :func:`_text` on one line, pipes escaped."""
    return _text(text, cell=True)


def summary_table(links: bool = False) -> str:
    """The component summary table (the catalog's first section, with links to each component)."""
    rows = ["| component | operator | inputs | outputs | what it does |", "| --- | --- | --- | --- | --- |"]
    for spec in registry.library().values():
        inputs = ", ".join(p.name for p in spec.inputs)
        outputs = ", ".join(p.name for p in spec.outputs)
        gpu = " (GPU)" if spec.resources.gpus else ""
        name = f"[`{spec.name}`](#{spec.name.replace('.', '').lower()})" if links else f"`{spec.name}`"
        rows.append(f"| {name}{gpu} | `{spec.operator}` | {inputs} | {outputs} | {_cell(spec.summary)} |")
    return "\n".join(rows)


def _example_value(param) -> str:
    if param.kind == "input":
        return f"/data/{param.name}"
    return {"int": "1", "float": "0.5", "bool": "true"}.get(param.type, f"<{param.name}>")


def component_markdown(spec: ComponentSpec) -> str:
    lines = [f"### {_cell(spec.name)}", "", _text(spec.description), ""]
    lines.append(f"- operator: `claimed_airflow.operators.{spec.operator}`")
    lines.append(
        f"- image: `{spec.image}`; resources: cpu {spec.resources.cpu}, memory {spec.resources.memory}, "
        f"GPUs {spec.resources.gpus}"
    )
    for title, group in (("Inputs", spec.inputs), ("Parameters", spec.params), ("Outputs", spec.outputs)):
        if not group:
            continue
        lines += ["", f"**{title}**", "", "| name | type | default | description |", "| --- | --- | --- | --- |"]
        for p in group:
            default = "required" if p.required else _cell(f"`{p.default!r}`")
            lines.append(f"| `{p.name}` | {_cell(f'`{p.type}`')} | {default} | {_cell(p.description)} |")
    required = [p for p in spec.arguments if p.required]
    cli_args = " ".join(f"--{p.name} {_example_value(p)}" for p in required)
    py_args = "".join(f", {p.name}={_example_value(p)!r}" for p in required)
    lines += [
        "",
        "**Examples**",
        "",
        "```bash",
        f"claimed-airflow run {spec.name} {cli_args}".rstrip(),
        "```",
        "",
        "```python",
        f"from claimed_airflow.operators import {spec.operator}",
        "",
        f"{spec.operator}(task_id={spec.name.split('.')[-1]!r}{py_args})",
        "```",
        "",
    ]
    return "\n".join(lines)


def catalog_markdown() -> str:
    parts = [f"# CLAIMED component catalog (claimed-airflow {__version__})", "", summary_table(links=True), ""]
    by_category: dict[str, list[ComponentSpec]] = {}
    for spec in registry.library().values():
        by_category.setdefault(spec.category, []).append(spec)
    for category, specs in by_category.items():
        parts += [f"## {category}", ""] + [component_markdown(s) for s in specs]
    return "\n".join(parts)


def catalog_html() -> str:
    """The same catalog as a self-contained HTML page (rendered with python-markdown)."""
    import markdown

    body = markdown.markdown(catalog_markdown(), extensions=["tables", "fenced_code", "toc"])
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return f"<!doctype html><meta charset=utf-8><title>CLAIMED catalog</title><style>{style}</style>{body}"


def register(commands) -> None:
    parser = commands.add_parser("catalog", help="write a browsable catalog of all components")
    parser.add_argument("-o", "--output", help="file to write (default: print Markdown)")
    parser.add_argument("--format", choices=("md", "html"), help="default: from the file suffix, else md")
    parser.add_argument("--table", action="store_true", help="print only the component summary table")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    if args.table:
        print(summary_table())
        return
    fmt = args.format or ("html" if args.output and args.output.endswith(".html") else "md")
    text = catalog_html() if fmt == "html" else catalog_markdown()
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text)
