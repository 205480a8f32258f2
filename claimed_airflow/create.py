"""``claimed-airflow create-component``: turn a notebook, a script or a typed function into a component.

What CLAIMED's c3 compiler did, without regex-parsed environment variables or ``exec`` of arguments:

- a Jupyter notebook: the cell tagged ``parameters`` (papermill's convention) assigns the parameters;
  their literal values give the types and defaults, a trailing comment the description; a comment
  starting with ``input:`` / ``output:`` (or an ``InputPath`` / ``OutputPath`` annotation) makes the
  parameter an input / output artifact. The component runs the notebook with papermill and keeps the
  executed notebook as an output.
- a script with argparse: each ``add_argument`` call (type, default, choices, ``store_true``, nargs,
  help) becomes a typed parameter; a help text starting with ``input:`` / ``output:`` marks artifacts.
- a Python file with a typed function (``file.py:function``, or ``file.py`` with a typed ``main``):
  the function's signature and docstring are the spec, as for the library's components.

Two modules are written: ``<name>_component.py`` (the component; imports no Airflow) and
``<name>_operator.py`` (its Airflow operator, generated like the library's). The operator refers to
the component as ``<module>:<name>``, which every engine resolves (``claimed-airflow run`` included).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import keyword
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claimed_airflow.core.component import operator_name
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.options import reserved_names

CATEGORIES = (
    "input",
    "transform",
    "filter",
    "train",
    "predict",
    "metric",
    "deploy",
    "monitoring",
    "output",
    "visualize",
    "tune",
    "util",
)
_TYPES = {"int", "float", "str", "bool", "dict", "list[str]", "list[int]", "list[float]", "InputPath", "OutputPath"}
_ANNOTATION_ALIASES = {"list": "list[str]", "List[str]": "list[str]", "Dict": "dict", "List": "list[str]"}


@dataclass
class Param:
    name: str
    type: str
    default: Any = None
    description: str = ""
    required: bool = False
    flag: str = ""
    action: str = ""

    @property
    def kind(self) -> str:
        return {"InputPath": "input", "OutputPath": "output"}.get(self.type.split(" |")[0], "param")


# Names the generated module itself uses: a parameter of that name would shadow them in the function body.
_MODULE_NAMES = {"SOURCE", "OPTIONS", "Path", "Literal", "component", "run_notebook", "run_script", "locals"}
_MODULE_NAMES |= {"InputPath", "OutputPath", "load_function", "annotations"}


def identifier(text: str) -> str:
    """A Python identifier for ``text`` (a file, function or argparse name): never a keyword or a module name."""
    name = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_").lower()
    if not name or name[0].isdigit():
        name = f"c_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in {n.lower() for n in _MODULE_NAMES}:
        name += "_"
    return name


def doc_text(text: str) -> str:
    """``text`` (from a notebook, a script or a file name) escaped for a triple-quoted docstring of generated
    source: backslashes, every double quote and non-printable characters become escapes, so the text can
    neither end the docstring nor form an escape sequence, and reads back unchanged as ``__doc__``."""
    return "".join(
        "\\\\" if c == "\\" else '\\"' if c == '"' else c if c.isprintable() or c == " " else repr(c)[1:-1]
        for c in str(text)
    )


def source_literal(value: Any, what: str) -> str:
    """``repr(value)`` for generated source, only for literal values (str, numbers, bool, None, lists, tuples,
    dicts of them) that read back equal: never the repr of an arbitrary object, ``inf`` or ``nan``."""

    def literal(v: Any) -> bool:
        if isinstance(v, (list, tuple)):
            return all(literal(i) for i in v)
        if isinstance(v, dict):
            return all(literal(k) and literal(i) for k, i in v.items())
        return v is None or type(v) in (str, int, float, bool)

    text = repr(value)
    try:
        same = literal(value) and ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise ClaimedError(f"source: {what} must be a literal str, number, bool, None, list or dict, got {text[:80]}")
    return text


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        kinds = {type(v) for v in value}
        if kinds == {int}:
            return "list[int]"
        if kinds <= {int, float} and kinds:
            return "list[float]"
        return "list[str]"
    if value is None:
        return "str | None"
    return "str"


def _artifact(description: str) -> tuple[str | None, str]:
    match = re.match(r"^\s*(input|output)\s*:\s*(.*)$", description, re.IGNORECASE | re.DOTALL)
    if match:
        return {"input": "InputPath", "output": "OutputPath"}[match.group(1).lower()], match.group(2).strip()
    return None, description.strip()


def _finish(param: Param, artifact: str | None) -> Param:
    if artifact:
        param.type = artifact
    if param.kind == "input":
        param.required = param.default is None or param.required
        if not param.required:
            param.type = "InputPath"
    elif param.kind == "output":
        param.default = Path(str(param.default or param.name)).name
        param.required = False
    return param


# -- notebooks ---------------------------------------------------------------------------------


def _markdown_doc(cells: list[dict]) -> tuple[str, str]:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            lines = [line.strip().lstrip("#").strip() for line in "".join(cell.get("source", "")).splitlines()]
            lines = [line for line in lines if line]
            if lines:
                return lines[0], " ".join(lines[1:])
    return "", ""


def _comment_after(lines: list[str], node: ast.stmt) -> str:
    tail = lines[node.end_lineno - 1][node.end_col_offset :].strip()
    if tail.startswith("#"):
        return tail.lstrip("#").strip()
    above = []
    row = node.lineno - 2
    while row >= 0 and lines[row].strip().startswith("#"):
        above.insert(0, lines[row].strip().lstrip("#").strip())
        row -= 1
    return " ".join(above)


def parse_notebook(path: Path) -> tuple[str, str, list[Param]]:
    """(summary, description, parameters) of a notebook's ``parameters`` cell."""
    try:
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise ClaimedError(f"source: {path} is not a readable Jupyter notebook ({exc})") from None
    cell = next(
        (c for c in cells if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])),
        None,
    )
    if cell is None:
        raise ClaimedError(
            f"source: {path.name} has no cell tagged 'parameters'; tag the cell that assigns the parameters "
            "(papermill's convention)"
        )
    source = "".join(cell.get("source", ""))
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ClaimedError(f"source: the parameters cell of {path.name} is not valid Python: {exc.msg}") from None
    lines = source.splitlines()
    params = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, annotation, value = node.targets[0].id, None, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, annotation, value = node.target.id, ast.unparse(node.annotation).strip("'\""), node.value
        else:
            continue
        try:
            default = ast.literal_eval(value)
        except ValueError:
            raise ClaimedError(
                f"source: parameter {target!r} of {path.name} (line {node.lineno}) must be a literal value, "
                f"got {ast.unparse(value)!r}"
            ) from None
        if target in _MODULE_NAMES:
            raise ClaimedError(
                f"source: parameter {target!r} of {path.name} (line {node.lineno}) would shadow a name of the "
                "generated module; rename it"
            )
        artifact, description = _artifact(_comment_after(lines, node))
        if annotation:
            annotation = _ANNOTATION_ALIASES.get(annotation, annotation)
            base = annotation.replace(" | None", "")
            if base not in _TYPES:
                raise ClaimedError(
                    f"source: parameter {target!r} of {path.name} has unsupported type {annotation!r}; "
                    f"use one of {', '.join(sorted(_TYPES))}"
                )
            type_ = annotation if default is not None or "None" in annotation else f"{base} | None"
        else:
            type_ = _infer_type(default)
        params.append(_finish(Param(target, type_, default, description or target.replace("_", " ")), artifact))
    if not params:
        raise ClaimedError(f"source: the parameters cell of {path.name} assigns no parameters")
    summary, description = _markdown_doc(cells)
    return summary or f"Run the notebook {path.name}.", description, params


# -- argparse scripts --------------------------------------------------------------------------


def _literal(node: ast.AST | None, what: str) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ClaimedError(f"source: {what} must be a literal, got {ast.unparse(node)!r}") from None


def parse_argparse(path: Path, tree: ast.Module) -> tuple[str, str, list[Param]]:
    params = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
        ):
            continue
        names = [_literal(a, "an argument name") for a in node.args]
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        long = max(names, key=len)
        dest = _literal(kw.get("dest"), "dest") or long.lstrip("-").replace("-", "_")
        positional = not long.startswith("-")
        action = _literal(kw.get("action"), f"action of {long}") or ""
        if action in ("help", "version"):
            continue
        help_text = " ".join(str(_literal(kw.get("help"), f"help of {long}") or "").split())
        artifact, description = _artifact(help_text)
        base = ast.unparse(kw["type"]) if "type" in kw else "str"
        base = base if base in ("int", "float", "str") else "str"
        default = _literal(kw.get("default"), f"default of {long}")
        if action in ("store_true", "store_false"):
            type_, default = "bool", (action == "store_false") if default is None else default
        elif "nargs" in kw and _literal(kw["nargs"], f"nargs of {long}") not in ("?", None):
            type_ = f"list[{base}]"
        else:
            type_ = base
        choices = _literal(kw.get("choices"), f"choices of {long}")
        if choices:
            type_ = "Literal[" + ", ".join(source_literal(c, f"a choice of {long}") for c in choices) + "]"
        required = positional or bool(_literal(kw.get("required"), f"required of {long}"))
        if default is None and not required and action not in ("store_true", "store_false"):
            type_ = f"{type_} | None"
        param = Param(
            identifier(dest),
            type_,
            default,
            description or dest.replace("_", " "),
            required=required,
            flag="" if positional else long,
            action=action,
        )
        params.append(_finish(param, artifact))
    doc = ast.get_docstring(tree) or ""
    summary, _, description = doc.strip().partition("\n")
    return summary.strip() or f"Run the script {path.name}.", " ".join(description.split()), params


# -- code generation ---------------------------------------------------------------------------


def _signature_line(p: Param) -> str:
    default = "" if p.required else f" = {source_literal(p.default, f'the default of {p.name}')}"
    return f"    {p.name}: {p.type}{default},"


def _docstring(summary: str, description: str, params: list[Param]) -> list[str]:
    lines = [f'    """{doc_text(summary)}', ""]
    if description:
        lines += ["    " + doc_text(description), ""]
    lines += [f"    :param {p.name}: {doc_text(p.description)}" for p in params]
    lines.append('    """')
    return lines


def _header(source: Path, kind: str, name: str, category: str, imports: list[str]) -> list[str]:
    return [
        f'"""Component ``{category}.{name}``, generated from the {kind} {doc_text(source.name)} by '
        "``claimed-airflow create-component``.",
        "",
        f"Regenerate it after changing the {kind}'s parameters; the {kind} ships next to this file.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "",
        f"SOURCE = Path(__file__).with_name({source.name!r})",
        "",
        "",
    ]


def notebook_module(source: Path, name: str, category: str, operator: str) -> str:
    summary, description, params = parse_notebook(source)
    executed = "executed_notebook"
    if any(p.name == executed for p in params):
        raise ClaimedError(f"source: {source.name} uses the reserved parameter name {executed!r}")
    params.append(Param(executed, "OutputPath", f"{name}.ipynb", "The executed notebook (papermill output)."))
    ordered = [p for p in params if p.required] + [p for p in params if not p.required]
    lines = _header(
        source,
        "notebook",
        name,
        category,
        [
            "from pathlib import Path",
            *(["from typing import Literal"] if any("Literal[" in p.type for p in params) else []),
            "",
            "from claimed_airflow.core.component import component",
            "from claimed_airflow.core.sources import run_notebook",
            "from claimed_airflow.core.types import InputPath, OutputPath  # noqa: F401",
        ],
    )
    lines += [f"@component({category!r}, name={name!r}, operator={operator!r})", f"def {name}(", "    *,"]
    lines += [_signature_line(p) for p in ordered]
    lines.append(") -> dict:")
    lines += _docstring(summary, description, params)
    lines.append(f"    return run_notebook(SOURCE, locals(), executed={executed!r})")
    return "\n".join(lines) + "\n"


def script_module(source: Path, tree: ast.Module, name: str, category: str, operator: str) -> str:
    summary, description, params = parse_argparse(source, tree)
    ordered = [p for p in params if p.required] + [p for p in params if not p.required]
    options = {p.name: (p.flag, p.action) for p in params}
    lines = _header(
        source,
        "script",
        name,
        category,
        [
            "from pathlib import Path",
            *(["from typing import Literal"] if any("Literal[" in p.type for p in params) else []),
            "",
            "from claimed_airflow.core.component import component",
            "from claimed_airflow.core.sources import run_script",
            "from claimed_airflow.core.types import InputPath, OutputPath  # noqa: F401",
        ],
    )
    lines.append(f"OPTIONS = {options!r}")
    lines += ["", "", f"@component({category!r}, name={name!r}, operator={operator!r})", f"def {name}("]
    lines += (["    *,"] if ordered else []) + [_signature_line(p) for p in ordered]
    lines.append(") -> dict:")
    lines += _docstring(summary, description, params)
    lines.append("    return run_script(SOURCE, locals(), OPTIONS)")
    return "\n".join(lines) + "\n"


def function_module(source: Path, function: str, name: str, category: str, operator: str) -> str:
    lines = _header(
        source,
        "file",
        name,
        category,
        [
            "from pathlib import Path",
            "",
            "from claimed_airflow.core.component import component",
            "from claimed_airflow.core.sources import load_function",
        ],
    )
    lines.append(
        f"{name} = component({category!r}, name={name!r}, operator={operator!r})(load_function(SOURCE, {function!r}))"
    )
    return "\n".join(lines) + "\n"


def operator_module(spec, reference: str) -> str:
    import dataclasses

    from claimed_airflow.operators.generate import operator_source

    head = (
        f'"""Airflow operator of ``{spec.name}`` (``{doc_text(reference)}``), generated by ``claimed-airflow '
        'create-component``."""\n\nfrom __future__ import annotations\n\nfrom typing import Any\n\n'
        "from claimed_airflow.operators.base import ClaimedOperator\n"
    )
    # the texts come from the notebook or script: escaped here, as operator_source writes them as they are
    safe = dataclasses.replace(
        spec,
        summary=doc_text(spec.summary),
        description=doc_text(spec.summary) + doc_text(spec.description[len(spec.summary) :]),
        parameters=tuple(dataclasses.replace(p, description=doc_text(p.description)) for p in spec.parameters),
    )
    return head + operator_source(safe).replace(f'component = "{spec.name}"', f"component = {json.dumps(reference)}")


def create_component(
    source: str,
    *,
    category: str,
    name: str | None = None,
    output_dir: str | None = None,
    package: str | None = None,
) -> dict:
    """Write ``<name>_component.py`` and ``<name>_operator.py``; returns paths, reference and spec."""
    path_text, _, function = (
        source.partition(":") if source.count(":") == 1 and not re.match(r"^[A-Za-z]:\\", source) else (source, "", "")
    )
    path = Path(path_text)
    if not path.is_file():
        raise ClaimedError(f"source: {path} not found")
    if category not in CATEGORIES and not re.fullmatch(r"[a-z][a-z0-9_]*", category):
        raise ClaimedError(f"category: {category!r} is not a lowercase identifier")
    name = identifier(name or (function if function and function != "main" else path.stem))
    operator = operator_name(category, name)
    folder = Path(output_dir) if output_dir else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".ipynb":
        text = notebook_module(path, name, category, operator)
    elif path.suffix == ".py":
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError as exc:
            raise ClaimedError(f"source: {path.name} is not valid Python: {exc.msg} (line {exc.lineno})") from None
        uses_argparse = any(isinstance(n, ast.Attribute) and n.attr == "add_argument" for n in ast.walk(tree))
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if function:
            if function not in functions:
                raise ClaimedError(f"source: {path.name} has no top-level function {function!r}")
            text = function_module(path, function, name, category, operator)
        elif uses_argparse:
            text = script_module(path, tree, name, category, operator)
        elif "main" in functions:
            text = function_module(path, "main", name, category, operator)
        else:
            raise ClaimedError(
                f"source: {path.name} has neither argparse arguments nor a typed main(); "
                "pass FILE.py:FUNCTION to use another function"
            )
    else:
        raise ClaimedError(f"source: {path.name}: expected a .ipynb notebook or a .py script")
    if folder.resolve() != path.parent.resolve():
        shutil.copy2(path, folder / path.name)
    module = f"{name}_component"
    component_file = folder / f"{module}.py"
    component_file.write_text(text)
    reference = f"{package + '.' if package else ''}{module}:{name}"
    spec = _load_spec(component_file, module, name)
    clashes = sorted({p.name for p in spec.arguments} & reserved_names())  # a generated operator would shadow them
    if clashes:
        component_file.unlink()
        raise ClaimedError(
            f"source: parameter(s) {', '.join(clashes)} would shadow attributes of the Airflow operator; rename them"
        )
    operator_file = folder / f"{name}_operator.py"
    operator_file.write_text(operator_module(spec, reference))
    return {
        "component": str(component_file),
        "operator_module": str(operator_file),
        "operator": spec.operator,
        "reference": reference,
        "spec": spec.to_dict(),
    }


def _load_spec(path: Path, module: str, name: str):
    """Import the written module (checks that it is valid) and return its spec."""
    spec = importlib.util.spec_from_file_location(f"claimed_generated_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(loaded)
    except ClaimedError:
        raise
    except Exception as exc:  # the user's file failed to import or has untyped parameters
        raise ClaimedError(f"source: the generated component {path.name} does not load: {exc}") from None
    return getattr(loaded, name).spec


def register(commands) -> None:
    parser = commands.add_parser(
        "create-component",
        help="turn a notebook, an argparse script or a typed function into a component and operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="NOTEBOOK.ipynb, SCRIPT.py (argparse or typed main) or FILE.py:FUNCTION")
    parser.add_argument("--category", required=True, help="component category, e.g. transform")
    parser.add_argument("--name", help="component name (default: from the file or function name)")
    parser.add_argument("-o", "--output-dir", help="folder for the generated modules (default: beside the source)")
    parser.add_argument("--package", help="package the output folder is importable as (default: top level)")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> None:
    result = create_component(
        args.source, category=args.category, name=args.name, output_dir=args.output_dir, package=args.package
    )
    result.pop("spec")
    print(json.dumps(result, indent=2))
    print(
        f"use it in a DAG: from {Path(result['operator_module']).stem} import {result['operator']}; "
        f"run it: claimed-airflow run {result['reference']} --param value",
        file=sys.stderr,
    )
