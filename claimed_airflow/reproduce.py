"""``claimed-airflow reproduce <manifest>``: re-run a task from its run manifest and compare outputs."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from claimed_airflow import __version__
from claimed_airflow.core import registry, runner, storage
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.core.manifest import new_run_id
from claimed_airflow.core.storage import Scope


def reproduce(manifest_uri: str, root: str | None = None) -> dict:
    """Re-run the manifest's component with its parameters and inputs; report what matches.

    Inputs are checked first (their content now against the recorded hash), then the component runs
    into a fresh folder (``root``, default a temporary one) and each output hash is compared.
    """
    try:
        record = storage.read_json(manifest_uri)
    except (OSError, json.JSONDecodeError) as exc:
        raise ClaimedError(f"manifest: cannot read {manifest_uri}: {exc}") from None
    spec = registry.get(record.get("reference") or record["component"])
    report: dict = {"component": spec.name, "manifest": manifest_uri, "inputs": {}, "outputs": {}}
    if record.get("component_version") != __version__:
        report["version"] = {"recorded": record.get("component_version"), "current": __version__}
    arguments = {**record["parameters"], **{n: i["uri"] for n, i in record["inputs"].items()}}
    with tempfile.TemporaryDirectory(prefix="claimed-reproduce-") as tmp:
        check = Path(tmp) / "check"
        shard = None  # a shard's run hashed its own files only: hashed again the same way (runner.stage)
        if any("shard" in item for item in record["inputs"].values()):
            shard = runner.shard_of(spec, spec.bind(arguments), check / "shard")
        for name, item in record["inputs"].items():
            current = None
            if storage.exists(item["uri"]):
                current = runner.stage(name, item["uri"], check, shard)[1]["hash"]
            report["inputs"][name] = {
                "uri": item["uri"],
                "match": current == item["hash"],
                "recorded": item["hash"],
                "current": current,
            }
        scope = Scope(dag_id="reproduce", run_id=new_run_id(), task_id=spec.name)
        result = runner.run(spec, arguments, root=root or str(Path(tmp) / "out"), scope=scope)
        rerun = storage.read_json(result["manifest"])
        for name, item in record["outputs"].items():
            current = rerun["outputs"].get(name, {}).get("hash")
            report["outputs"][name] = {"match": current == item["hash"], "recorded": item["hash"], "current": current}
    report["match"] = all(v["match"] for group in ("inputs", "outputs") for v in report[group].values())
    changed = [n for n, v in report["inputs"].items() if not v["match"]]
    differing = [n for n, v in report["outputs"].items() if not v["match"]]
    if report["match"]:
        report["summary"] = "outputs match the manifest"
    else:
        parts = [f"input {n!r} changed since the manifest" for n in changed]
        parts += [f"output {n!r} differs" for n in differing]
        report["summary"] = "; ".join(parts)
    return report


def register(commands) -> None:
    parser = commands.add_parser("reproduce", help="re-run a task from its manifest.json and compare the outputs")
    parser.add_argument("manifest", help="path or URI of a manifest.json written by a claimed task")
    parser.add_argument("--output-root", help="where the re-run writes (default: a temporary folder)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    report = reproduce(args.manifest, args.output_root)
    print(json.dumps(report, indent=2))
    print(("match: " if report["match"] else "MISMATCH: ") + report["summary"], file=sys.stderr)
    if not report["match"]:
        raise SystemExit(1)
