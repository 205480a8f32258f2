"""A learnable, synthetic chest X-ray cohort: CR DICOM files and their labels, written deterministically.

Each image is a chest phantom (body, two dark lung fields, mediastinum, ribs, noise, a random shift,
scale and exposure); the ``COVID-19`` class carries one or two large bright opacities in the
lungs, ``No Finding`` none. Patients get a seeded sex and age. The pixels are made here; the DICOM
files are written by ``input.images_to_dicom`` (Modality CR), as a user would convert images.

``python -m tests.synthetic_chestxray <folder> [--count N] [--seed S] [--size PX]`` writes
``<folder>/dicom/phantom_NNNN.dcm`` and appends their rows to ``<folder>/labels.csv`` (creating it
when missing); the bundled sample ``dags/sample_data/chestxray_phantoms`` is the default
``--count 400 --seed 0 --size 64``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

LABELS = ("COVID-19", "No Finding")


def phantom(rng: np.random.Generator, size: int, finding: bool) -> np.ndarray:
    """One uint8 (size, size) chest phantom; ``finding`` adds bright opacities inside the lungs."""
    y, x = np.mgrid[0:size, 0:size] / size
    scale, dx, dy = rng.uniform(0.9, 1.1), rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.06)
    x, y = (x - 0.5 - dx) / scale, (y - 0.5 - dy) / scale
    image = np.full((size, size), 0.05)
    image[(x / 0.46) ** 2 + (y / 0.5) ** 2 < 1] = 0.55  # body
    lungs = np.zeros((size, size), bool)
    for side in (-1, 1):
        lungs |= ((x - side * 0.19) / 0.15) ** 2 + ((y + 0.02) / 0.32) ** 2 < 1
    image[lungs] = 0.25
    image += 0.08 * (np.sin(y * 40 + rng.uniform(0, 6)) > 0.6) * lungs  # ribs
    image[(np.abs(x) < 0.06) & (np.abs(y) < 0.45)] = 0.7  # mediastinum and spine
    if finding:
        rows, columns = np.mgrid[0:size, 0:size]
        inside = np.argwhere(lungs)
        for _ in range(rng.integers(1, 3)):
            cy, cx = inside[rng.integers(len(inside))]
            radius = rng.uniform(0.12, 0.18) * size
            image += rng.uniform(0.55, 0.75) * np.exp(-((rows - cy) ** 2 + (columns - cx) ** 2) / radius**2) * lungs
    exposure = rng.uniform(0.9, 1.1)
    image = image * exposure + rng.normal(0, 0.04, (size, size))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_cohort(folder: str | Path, count: int = 400, seed: int = 0, size: int = 64) -> pd.DataFrame:
    """Write ``count`` phantoms as CR DICOM files under ``<folder>/dicom`` and their rows to ``labels.csv``."""
    from PIL import Image

    from claimed_airflow.core.runner import run

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="phantoms-") as tmp:
        pngs, rows = Path(tmp) / "png", []
        pngs.mkdir()
        for i in range(count):
            label = LABELS[i % 2]
            name = f"phantom_{seed:02d}_{i:04d}.png"
            Image.fromarray(phantom(rng, size, label == LABELS[0])).save(pngs / name)
            rows.append({"filename": name, "finding": label, "sex": "MF"[rng.integers(2)], "age": rng.integers(20, 86)})
        pd.DataFrame(rows).to_csv(Path(tmp) / "rows.csv", index=False)
        done = run(
            "input.images_to_dicom",
            {"images": str(pngs), "labels": str(Path(tmp) / "rows.csv"), "modality": "CR"},
            root=str(Path(tmp) / "out"),
        )
        (folder / "dicom").mkdir(parents=True, exist_ok=True)
        for file in sorted(Path(done["dicom"]).glob("*.dcm")):
            shutil.copyfile(file, folder / "dicom" / file.name)
        written = pd.read_csv(done["index"])
    labels = folder / "labels.csv"
    table = written
    if labels.exists():  # rows of other files are kept, those of the files written here replaced
        kept = pd.read_csv(labels)
        table = pd.concat([kept[~kept["file"].isin(written["file"])], written])
    table.to_csv(labels, index=False)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    options = parser.parse_args(argv)
    written = write_cohort(options.folder, options.count, options.seed, options.size)
    print(f"wrote {len(written)} CR DICOM files to {Path(options.folder) / 'dicom'}")


if __name__ == "__main__":
    main()
