"""Generate the operator modules (one class per component) from the component specs.

Run ``python -m claimed_airflow.operators.generate`` after changing a component; a test fails
while the committed modules differ from what this writes. The classes are explicit source (not
built at run time) so that Elyra, IDEs and type checkers can read them.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

from claimed_airflow.core import registry
from claimed_airflow.core.component import ComponentSpec

HERE = Path(__file__).parent
# One colour per category in the Airflow UI's graph view.
UI_COLORS = {
    "input": "#e3f2fd",
    "transform": "#e8f5e9",
    "filter": "#f1f8e9",
    "train": "#fff3e0",
    "predict": "#fce4ec",
    "metric": "#f3e5f5",
    "deploy": "#e0f7fa",
    "monitoring": "#fffde7",
    "output": "#efebe9",
    "visualize": "#ede7f6",
    "tune": "#fff8e1",
}
HEADER = '"""{title} operators, generated from the component specs by ``python -m claimed_airflow.operators.generate``.\n\nDo not edit by hand: change the component, then regenerate.\n"""\n\nfrom __future__ import annotations\n\nfrom typing import Any\n\nfrom claimed_airflow.operators.base import ClaimedOperator\n'  # noqa: E501


def _python_type(param) -> str:
    if param.kind == "input":
        return "str" if param.required else "str | None"
    return param.type


def _literal(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _tuple(names: list[str], indent: str) -> str:
    items = [json.dumps(n) for n in names]
    one_line = f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    if len(indent) + len(one_line) + 24 <= 120:
        return one_line
    return "(\n" + "".join(f"{indent}    {item},\n" for item in items) + f"{indent})"


def _wrap(text: str, indent: str, first: str = "") -> list[str]:
    hanging = indent + "    " if first else indent
    return textwrap.wrap(first + text, width=100, initial_indent=indent, subsequent_indent=hanging)


def operator_source(spec: ComponentSpec) -> str:
    args = spec.arguments
    bases = "ClaimedOperator, SkipMixin" if spec.gate else "ClaimedOperator"
    lines = ["", "", f"class {spec.operator}({bases}):"]
    lines.append(f'    """{spec.summary}')
    lines.append("")
    rest = spec.description[len(spec.summary) :].strip()
    if rest:
        lines += _wrap(rest, "    ") + [""]
    outputs = ", ".join(o.name for o in spec.outputs) or "none"
    lines.append(f"    Runs the ``{spec.name}`` component. Outputs (XCom keys): {outputs}.")
    lines.append("")
    for p in args:
        lines += _wrap(p.description or p.name, "    ", f":param {p.name}: ")
        lines.append(f"    :type {p.name}: {_python_type(p)}")
    lines.append('    """')
    lines.append("")
    lines.append(f'    component = "{spec.name}"')
    lines.append(f"    component_fields = {_tuple([p.name for p in args], '    ')}")
    if spec.gate:
        lines.append("    gate = True")
    if spec.category in UI_COLORS:
        lines.append(f'    ui_color = "{UI_COLORS[spec.category]}"')
    if spec.category == "deploy":
        lines.append("    operator_extra_links = (*ClaimedOperator.operator_extra_links, DeploymentLink())")
    lines.append("    template_fields = (*component_fields, *ClaimedOperator.template_fields)")
    lines.append("")
    signature = ["self", "*"]
    for p in args:
        default = "" if p.required else f" = {_literal(p.default)}"
        signature.append(f"{p.name}: {_python_type(p)}{default}")
    signature.append("**kwargs: Any")
    lines.append("    def __init__(")
    lines += [f"        {item}," for item in signature]
    lines.append("    ) -> None:")
    lines.append("        super().__init__(**kwargs)")
    lines += [f"        self.{p.name} = {p.name}" for p in args]
    return "\n".join(lines) + "\n"


def module_sources() -> dict[str, str]:
    by_category: dict[str, list[ComponentSpec]] = defaultdict(list)
    for spec in registry.library().values():
        by_category[spec.category].append(spec)
    sources = {}
    for category, specs in sorted(by_category.items()):
        header = HEADER.format(title=category.capitalize())
        if category == "deploy":
            header += "from claimed_airflow.operators.links import DeploymentLink\n"
        if any(s.gate for s in specs):
            header += "from claimed_airflow.version_compat import SkipMixin\n"
        sources[category] = header + "".join(operator_source(s) for s in specs)
    return sources


# operators written by hand (module -> classes), exported beside the generated ones
HAND_WRITTEN = {"base": ["ClaimedOperator"], "approval": ["ModelApprovalOperator"]}


def init_source(sources: dict[str, str]) -> str:
    names = [(category, spec.operator) for spec in registry.library().values() for category in [spec.category]]
    lines = ['"""Airflow operators, one per component; ``ClaimedOperator`` runs any component by name."""', ""]
    imports = dict(HAND_WRITTEN)
    for category in sources:
        imports[category] = sorted(op for c, op in names if c == category)
    for module in sorted(imports):
        line = f"from claimed_airflow.operators.{module} import {', '.join(imports[module])}"
        if len(line) > 120:
            line = (
                f"from claimed_airflow.operators.{module} import (\n"
                + "".join(f"    {name},\n" for name in imports[module])
                + ")"
            )
        lines.append(line)
    lines += ["", "__all__ = ["]
    exported = [op for ops in HAND_WRITTEN.values() for op in ops] + [op for _, op in names]
    lines += [f'    "{name}",' for name in sorted(exported)]
    lines.append("]")
    return "\n".join(lines) + "\n"


def generated_files() -> dict[Path, str]:
    sources = module_sources()
    files = {HERE / f"{category}.py": text for category, text in sources.items()}
    files[HERE / "__init__.py"] = init_source(sources)
    return files


def main() -> None:
    for path, text in generated_files().items():
        path.write_text(text)
        print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
