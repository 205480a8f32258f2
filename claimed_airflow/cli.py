"""The ``claimed-airflow`` command: list, describe and run components (the container entrypoint)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from claimed_airflow import __version__
from claimed_airflow.core import registry
from claimed_airflow.core.errors import ClaimedError

# Modules that add sub-commands: each has ``register(subparsers)`` and sets ``func`` on its parser.
COMMAND_MODULES = (
    "claimed_airflow.catalog",
    "claimed_airflow.create",
    "claimed_airflow.demo",
    "claimed_airflow.kfp.cli",
    "claimed_airflow.pacs.listener",
    "claimed_airflow.reproduce",
    "claimed_airflow.serving",
)


def build_parser() -> argparse.ArgumentParser:
    """The command's parser with every sub-command (also read by the documentation's CLI reference)."""
    parser = argparse.ArgumentParser(prog="claimed-airflow", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list the components")

    describe = commands.add_parser("describe", help="show a component's spec")
    describe.add_argument("component")
    describe.add_argument("--json", action="store_true", help="print the spec as JSON")

    run = commands.add_parser(
        "run",
        help="run a component; parameters as --name value; prints the output URIs as JSON",
        description="Run a component. Pass its parameters and inputs as --name value "
        "(see `claimed-airflow describe NAME`).",
    )
    run.add_argument("component")
    run.add_argument(
        "--output-root",
        help="root URI of outputs (default: setting output_root, e.g. $CLAIMED_OUTPUT_ROOT, else ./claimed-artifacts)",
    )
    run.add_argument("--dag-id", default="adhoc", help="scope: DAG id (outputs go to <root>/<dag>/<run>/<task>)")
    run.add_argument("--run-id", help="scope: run id (default: the current time)")
    run.add_argument("--task-id", help="scope: task id (default: the component name)")
    run.add_argument("--map-index", type=int, default=-1, help="scope: map index of a mapped task")
    run.add_argument("--output", action="append", default=[], metavar="NAME=URI", help="place an output explicitly")
    run.add_argument("--xcom-file", help="also write the result JSON to this file (a pod's /airflow/xcom/return.json)")
    run.add_argument(
        "--cache",
        action="store_true",
        help="reuse the outputs of an earlier run under the same output root with the same component version, "
        "parameters and input contents",
    )

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "list":
            for spec in registry.components().values():
                print(f"{spec.name:32} {spec.summary}")
        elif args.command == "describe":
            spec = registry.get(args.component)
            print(json.dumps(spec.to_dict(), indent=2, default=str) if args.json else describe_text(spec))
        elif args.command == "run":
            result = run_command(args, extra)
            if args.xcom_file:
                write_result(args.xcom_file, result)
            print(json.dumps(result, indent=2, default=str))
        else:
            args.func(args)
    except ClaimedError as exc:
        print(f"claimed-airflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_command(args: argparse.Namespace, extra: list[str]) -> dict:
    from claimed_airflow.core.manifest import new_run_id
    from claimed_airflow.core.runner import run
    from claimed_airflow.core.storage import Scope

    spec = registry.get(args.component)
    arguments = parse_arguments(spec, extra)
    outputs = {}
    for item in args.output:
        name, sep, uri = item.partition("=")
        if not sep:
            raise ClaimedError(f"--output: expected NAME=URI, got {item!r}")
        outputs[name] = uri
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    scope = Scope(
        dag_id=args.dag_id,
        run_id=args.run_id or new_run_id(),
        task_id=args.task_id or spec.name,
        map_index=args.map_index,
    )
    return run(spec, arguments, root=args.output_root, scope=scope, output_uris=outputs, cache=args.cache)


def write_result(path: str, result: dict) -> None:
    """The result as one JSON object (what the KubernetesPodOperator's XCom sidecar reads)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, default=str))


def parse_arguments(spec, tokens: list[str]) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs (dashes or underscores) -> raw string arguments."""
    known = {p.name for p in spec.arguments}
    values: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ClaimedError(f"{spec.name}: unexpected argument {token!r}; use --name value")
        name, sep, value = token[2:].partition("=")
        name = name.replace("-", "_")
        if name not in known:
            raise ClaimedError(f"{spec.name}: unknown parameter --{name}; expected one of: {', '.join(sorted(known))}")
        if not sep:
            if i + 1 >= len(tokens):
                raise ClaimedError(f"{name}: missing value after --{name}")
            i += 1
            value = tokens[i]
        values[name] = value
        i += 1
    return values


def describe_text(spec) -> str:
    lines = [
        spec.name,
        "",
        spec.description,
        "",
        f"operator: {spec.operator}",
        f"image: {spec.image}",
        f"resources: cpu={spec.resources.cpu} memory={spec.resources.memory} gpus={spec.resources.gpus}",
    ]
    for title, group in (("inputs", spec.inputs), ("parameters", spec.params), ("outputs", spec.outputs)):
        if group:
            lines += ["", f"{title}:"]
            for p in group:
                default = " (required)" if p.required else f" = {p.default!r}"
                lines.append(f"  {p.name}: {p.type}{default}\n      {p.description}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
