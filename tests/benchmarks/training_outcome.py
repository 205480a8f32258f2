"""Benchmark: does the saved model predict what training learned? (train.mobilenet_v2, both frameworks)

On 48 noisy bright/dark squares (32 px, batch 8, an easily separable task; ``--size``, ``--batch``
and ``--count`` change that) it trains with each framework and epoch count, then scores the *saved*
model in inference mode through ``predict.images`` (the loader the server and the metrics use) on
the same images. It prints one Markdown row per run: framework, epochs, the train accuracy
``train.mobilenet_v2`` reports, the saved model's accuracy and how many images it called each class.
``--flagship`` also runs ``dicom_to_deployment`` with its default Params (``airflow dags test`` in a
temporary AIRFLOW_HOME) on a generated cohort of CR phantoms (``tests/synthetic_chestxray.py``)
and/or the bundled sample, and prints the confusion matrix's accuracy, how many images it counted,
the gate's outcome and the run's wall time.

    .venv/bin/python tests/benchmarks/training_outcome.py [--epochs 10 30] [--frameworks keras torch]
        [--size 32] [--batch 8] [--count 48] [--flagship [cohort] [sample]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def squares(folder: Path, count: int = 48, size: int = 40) -> Path:
    """Noisy bright (215) and dark (40) squares, labelled, as ``transform.dicom_to_images`` writes them."""
    from tests.test_training_outcome import squares

    return squares(folder, count, size, held_out=False)


def one_run(framework: str, epochs: int, work: Path, size: int = 32, batch: int = 8, count: int = 48) -> dict:
    import pandas as pd

    from claimed_airflow.core.runner import run

    images = squares(work / "images", count)
    args = {"images": str(images), "framework": framework, "epochs": epochs, "batch_size": batch, "image_size": size}
    start = time.perf_counter()
    trained = run("train.mobilenet_v2", args, root=str(work / "train"))
    seconds = time.perf_counter() - start
    predicted = run("predict.images", {"model": trained["model"], "images": str(images)}, root=str(work / "p"))
    table = pd.read_csv(predicted["predictions"])
    return {
        "framework": framework,
        "epochs": epochs,
        "train_accuracy": trained["train_accuracy"],
        "saved_accuracy": float((table["prediction"] == table["label"]).mean()),
        "calls": table["prediction"].value_counts().to_dict(),
        "seconds": seconds,
    }


def flagship(source: str, work: Path) -> dict:
    """``dicom_to_deployment`` with default Params (but the data) in a fresh AIRFLOW_HOME, in a subprocess."""
    home = work / "home"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CLAIMED__OUTPUT_ROOT": str(work / "out"),
        "CLAIMED_OUTPUT_ROOT": str(work / "out"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    conf = {}
    if source != "sample":
        from tests.synthetic_chestxray import write_cohort

        write_cohort(work / "cohort", count=400, seed=1)
        conf = {"dicom_source": str(work / "cohort" / "dicom"), "labels": str(work / "cohort" / "labels.csv")}
    start = time.perf_counter()
    done = subprocess.run(
        [airflow, "dags", "test", "dicom_to_deployment", "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    runs = sorted((work / "out" / "dicom_to_deployment").iterdir())
    task = runs[-1]
    result = {"source": source, "seconds": seconds, "exit": done.returncode}
    metrics = task / "confusion_matrix" / "metrics.json"
    if metrics.exists():
        values = json.loads(metrics.read_text())
        result.update(accuracy=values["accuracy"], count=values["count"], majority=values.get("majority_accuracy"))
    blessing = task / "blessing" / "manifest.json"
    if blessing.exists():
        result["blessed"] = json.loads(blessing.read_text())["values"].get("blessed")
    result["deployed"] = (task / "deploy" / "manifest.json").exists()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--frameworks", nargs="*", default=["keras", "torch"])
    parser.add_argument("--size", type=int, default=32, help="image_size (the component's default: 64)")
    parser.add_argument("--batch", type=int, default=8, help="batch_size (the component's default: 16)")
    parser.add_argument("--count", type=int, default=48, help="squares")
    parser.add_argument("--flagship", nargs="*", choices=["cohort", "sample"], help="default: both")
    options = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}; {options.count} squares, {options.size} px, batch {options.batch}")
    print("| framework | epochs | train accuracy reported | saved model, inference mode, same images | calls | s |")
    print("|---|---|---|---|---|---|")
    for framework in options.frameworks:
        for epochs in options.epochs:
            with tempfile.TemporaryDirectory(prefix="outcome-") as work:
                r = one_run(framework, epochs, Path(work), options.size, options.batch, options.count)
            print(
                f"| {framework} | {epochs} | {r['train_accuracy']:.2f} | {r['saved_accuracy']:.2f} | {r['calls']} "
                f"| {r['seconds']:.0f} |",
                flush=True,
            )
    if options.flagship is not None:
        for source in options.flagship or ("cohort", "sample"):
            with tempfile.TemporaryDirectory(prefix="outcome-flagship-") as work:
                print(json.dumps(flagship(source, Path(work))), flush=True)


if __name__ == "__main__":
    main()
