"""Benchmark: identifying values left by transform.deidentify and by the de-identification tools hospitals use.

The hostile corpus of ``tests/data/deid/corpus.py`` (identifying values planted in every text VR, sequences,
structured report content, private tags, preamble, file meta, URLs, dates, ages and, as bytes that stand
for burned-in text, in the pixels of images that often show text) goes through each tool with its default
settings; every byte of every file the tool writes (and, for transform.deidentify, its table, report,
manifest and log) is searched for every planted value. A value counts once however often it is found.

Tools: transform.deidentify (this project, in this environment); dicognito, deid (pydicom/deid),
dicom-anonymizer (Kitware) and the RSNA Anonymizer (rsna-anonymizer), run by ``--tools-python``, the
interpreter of a separate environment that has them (they are no dependency of this project):

    uv venv ../deid-tools && uv pip install --python ../deid-tools/bin/python dicognito deid dicom-anonymizer

(rsna-anonymizer brings PyTorch and pins pydicom 2.4.5: an environment of its own, run with it as well.)
usage: .venv/bin/python tests/benchmarks/deidentify_tools.py --tools-python ../deid-tools/bin/python
A tool that is not installed there is reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CORPUS = HERE.parents[1] / "data" / "deid" / "corpus.py"
TOOLS = ("dicognito", "deid", "dicom-anonymizer", "rsna-anonymizer")
SALT = "benchmark-salt-0123456789abcdef"


def corpus():
    spec = importlib.util.spec_from_file_location("deid_corpus", CORPUS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blobs(folder: Path) -> list[bytes]:
    return [p.read_bytes() + p.name.encode() for p in Path(folder).rglob("*") if p.is_file()]


# ---- the tools, each run in the tools' environment: read every file of IN, write what it makes under OUT ----


def run_dicognito(source: Path, out: Path) -> None:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    for number, path in enumerate(sorted(source.iterdir())):
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{number}.dcm")


def run_deid(source: Path, out: Path) -> None:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    # the documented default use: the default recipe, files saved to a folder
    replace_identifiers(
        dicom_files=[str(p) for p in sorted(source.iterdir())], deid=DeidRecipe(), save=True, output_folder=str(out)
    )


def run_dicom_anonymizer(source: Path, out: Path) -> None:
    from dicomanonymizer import anonymize

    for number, path in enumerate(sorted(source.iterdir())):
        anonymize(str(path), str(out / f"{number}.dcm"), {}, True)  # the CLI's defaults: private tags deleted


def run_rsna_anonymizer(source: Path, out: Path) -> None:
    import anonymizer
    from anonymizer.controller.anonymizer import AnonymizerController
    from anonymizer.model.project import ProjectModel

    script = Path(anonymizer.__file__).parent / "assets" / "scripts" / "default-anonymizer.script"
    project = ProjectModel(storage_dir=out / "project", anonymizer_script_path=script)
    for folder in (project.images_dir(), project.private_dir()):
        folder.mkdir(parents=True, exist_ok=True)
    controller = AnonymizerController(project)
    try:
        for path in sorted(source.iterdir()):
            controller.anonymize_file(path)
    finally:
        controller.stop()
    # what it publishes: the anonymized images (its private folder keeps the PHI lookup by design)
    os.rename(project.images_dir(), out / "public")


def tool_side(name: str, source: Path, out: Path) -> None:
    """Runs one tool (in the tools' environment); prints a JSON line: written files or the reason it was skipped."""
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    runner = globals()[f"run_{name.replace('-', '_')}"]
    try:
        start = time.perf_counter()
        runner(source, out)
        elapsed = time.perf_counter() - start
    except ImportError as exc:
        print(json.dumps({"skipped": f"not installed ({exc})"}))
        return
    public = out / "public" if (out / "public").exists() else out
    print(json.dumps({"written": sum(1 for p in public.rglob("*.dcm")), "seconds": elapsed}))


# ---- the benchmark, run in the project's environment ----


def ours(source: Path, work: Path, planted: dict, module) -> dict:
    import io
    import logging

    from claimed_airflow.core.runner import run

    os.environ["CLAIMED_BENCH_DEID_SALT"] = SALT
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        start = time.perf_counter()
        result = run(
            "transform.deidentify", {"files": str(source), "salt_env": "CLAIMED_BENCH_DEID_SALT"}, root=str(work)
        )
        elapsed = time.perf_counter() - start
    finally:
        logging.getLogger().removeHandler(handler)
    everything = blobs(Path(result["output"])) + [Path(result[k]).read_bytes() for k in ("table", "report", "manifest")]
    leaked = module.leaks(planted, [*everything, stream.getvalue().encode()])
    return {"written": result["files_deidentified"], "seconds": elapsed, "leaked": leaked}


def theirs(name: str, python: str, source: Path, work: Path, planted: dict, module) -> dict:
    copy = work / f"{name}-in"  # a copy: some tools move files they refuse (quarantine)
    copy.mkdir()
    for path in source.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    out = work / f"{name}-out"
    out.mkdir()
    done = subprocess.run(
        [python, str(HERE), "--tool", name, str(copy), str(out)], capture_output=True, text=True, timeout=900
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"skipped": f"failed: {(done.stderr.strip().splitlines() or ['no output'])[-1][:200]}"}
    row = json.loads(lines[-1])
    if "skipped" in row:
        return row
    public = out / "public" if (out / "public").exists() else out
    row["leaked"] = module.leaks(planted, blobs(public))
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools-python", help="interpreter of the environment with the other tools")
    parser.add_argument("--tool", nargs=3, metavar=("NAME", "IN", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.tool:
        tool_side(args.tool[0], Path(args.tool[1]), Path(args.tool[2]))
        return
    module = corpus()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        planted = module.build(work / "corpus")
        files = len(list((work / "corpus").iterdir()))
        results = {"transform.deidentify": ours(work / "corpus", work / "ours", planted, module)}
        for name in TOOLS:
            if not args.tools_python:
                results[name] = {"skipped": "no --tools-python given"}
                continue
            results[name] = theirs(name, args.tools_python, work / "corpus", work, planted, module)
    print(f"{len(planted)} planted values in {files} files\n")
    print("| tool | files written | values leaked | seconds |")
    print("| --- | --- | --- | --- |")
    for name, row in results.items():
        if "skipped" in row:
            print(f"| {name} | skipped: {row['skipped']} | | |")
        else:
            leaked = f"{len(row['leaked'])} of {len(planted)}"
            print(f"| {name} | {row['written']} of {files} | {leaked} | {row['seconds']:.2f} |")
    ran = {name: row for name, row in results.items() if "leaked" in row}
    counts = {}  # category -> planted values
    for where in planted:
        counts[module.category(where)] = counts.get(module.category(where), 0) + 1
    print("\n| values leaked, by where they were planted | " + " | ".join(ran) + " |")
    print("| --- |" + " --- |" * len(ran))
    for kind, total in counts.items():
        cells = [str(sum(module.category(w) == kind for w in row["leaked"])) for row in ran.values()]
        print(f"| {kind} ({total}) | " + " | ".join(cells) + " |")
    for name, row in results.items():
        if row.get("leaked"):
            print(f"\n{name} leaked: " + "; ".join(sorted(row["leaked"])))
    if args.json:
        Path(args.json).write_text(json.dumps({"planted": len(planted), "files": files, "results": results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
