"""``claimed-airflow export-kfp``: a DAG as a KFP pipeline (IR YAML), or one component as a KFP component.

Registering the sub-command imports neither kfp nor Airflow; running it needs kfp, which lives in
its own environment (``claimed-airflow[kfp]``, see README "Kubeflow Pipelines").
"""

from __future__ import annotations

import argparse
import sys

from claimed_airflow.core.errors import ClaimedError


def register(commands) -> None:
    export = commands.add_parser(
        "export-kfp",
        help="export a DAG as a Kubeflow Pipelines v2 pipeline, or a component as a KFP component (YAML)",
        description="Compile a DAG of claimed operators to KFP IR YAML (`export-kfp DAG_FILE [--dag-id ID]`), "
        "or one component to a KFP component YAML (`export-kfp --component NAME`). A reviewer's approval task "
        "becomes a step that fails when approval is required (Kubeflow has no reviewer step). Needs kfp "
        "(pip install 'claimed-airflow[kfp]', in its own environment).",
    )
    export.add_argument("dag_file", nargs="?", help="Python file that defines the DAG")
    export.add_argument("--dag-id", help="id of the DAG in DAG_FILE (needed when the file defines several)")
    export.add_argument("--component", help="export this component instead of a DAG, e.g. train.mobilenet_v2")
    export.add_argument("-o", "--output", default="-", help="YAML file to write (default: standard output)")
    export.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="TASK_ID",
        help="leave out a task that cannot be exported (its >> edges are bridged); repeatable",
    )
    export.add_argument(
        "--output-root",
        default="",
        help="default of the pipeline's output_root parameter (e.g. s3://bucket/claimed; a cluster needs one)",
    )
    export.add_argument(
        "--install-kfp",
        action="store_true",
        help="pip-install kfp when a step starts, for images without it (needs the network; the claimed "
        "images have kfp's runtime, so by default nothing is downloaded)",
    )
    export.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    try:
        from kfp import dsl  # noqa: F401
    except ImportError:
        raise ClaimedError(
            "export-kfp: kfp is not installed in this environment; install claimed-airflow[kfp] in its own "
            "virtual environment (kfp 2.17 needs kubernetes<31; see README, 'Kubeflow Pipelines')"
        ) from None
    install = args.install_kfp
    if args.component:
        if args.dag_file or args.dag_id:
            raise ClaimedError("export-kfp: give either --component NAME or DAG_FILE --dag-id ID, not both")
        from claimed_airflow.core import registry
        from claimed_airflow.kfp.components import component_yaml

        text = component_yaml(registry.get(args.component), install_kfp_package=install)
        _write(args.output, text)
        _done(args.output, f"component {args.component}")
        return
    if not args.dag_file:
        raise ClaimedError("export-kfp: give DAG_FILE [--dag-id ID] (or --component NAME)")
    import tempfile
    from pathlib import Path

    from claimed_airflow.kfp.pipeline import export_dag, load_dag

    dag = load_dag(args.dag_file, args.dag_id)
    with tempfile.TemporaryDirectory(prefix="claimed-kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        plan = export_dag(dag, path, skip=tuple(args.skip), output_root=args.output_root, install_kfp_package=install)
        _write(args.output, path.read_text())
    gpu = [s.task_id for s in plan.steps if s.pod and s.pod.gpus]
    images = sorted({s.pod.image for s in plan.steps if s.pod})
    # Settings (Variables claimed_image, ..., [claimed] options) are read now and written into the pipeline.
    _done(
        args.output,
        f"pipeline {dag.dag_id}: {len(plan.steps)} steps"
        + (f", GPU: {', '.join(gpu)}" if gpu else "")
        + f"; images: {', '.join(images)}",
    )


def _write(output: str, text: str) -> None:
    if output == "-":
        sys.stdout.write(text)
    else:
        with open(output, "w") as handle:
            handle.write(text)


def _done(output: str, what: str) -> None:
    if output != "-":
        print(f"wrote {output}: {what}", file=sys.stderr)
