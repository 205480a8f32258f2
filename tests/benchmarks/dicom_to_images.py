"""Benchmark: transform.dicom_to_images against a plain single-process loop, and its memory as files grow.

Replicates every file of ``../shared/data/dicom`` into a temporary folder (``--files`` copies, default
600), then on the same files in the same run:

1. the plain loop: pydicom read + ``pixel_array`` (first frame) + min-max to 8 bit + Pillow resize +
   PNG save, one process;
2. the component (``workers`` = CPU count by default) through the runner, with its default
   ``fast_decode`` (JPEG 2000/JPEG decoded only at the resolution the output size needs);
3. the component with ``fast_decode=False`` (every file decoded in full, like the plain loop);

and reports files/s of each and the ratios. Then it runs the component in fresh processes on 200 and
on 2000 files and reports the peak memory of the whole process tree (sampled RSS of the process and
its workers) and of the main process alone.

    .venv/bin/python tests/benchmarks/dicom_to_images.py [--files 600] [--small 200] [--large 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "dicom"


def replicate(folder: Path, count: int) -> Path:
    """``count`` DICOM files (the shared ones, cycled) plus ``metadata.csv`` (file, label)."""
    sources = sorted(SHARED.rglob("*.dcm"))
    files = folder / "files"
    files.mkdir(parents=True)
    rows = ["file,label"]
    for i in range(count):
        source = sources[i % len(sources)]
        name = f"{i:05d}_{source.name}"
        shutil.copy(source, files / name)
        rows.append(f"{name},{'a' if i % 2 else 'b'}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def plain_loop(folder: Path, out: Path, size: int, limit: int | None = None) -> int:
    import numpy as np
    import pydicom
    from PIL import Image

    out.mkdir(parents=True)
    done = 0
    for path in sorted((folder / "files").iterdir())[:limit]:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        if int(ds.get("NumberOfFrames") or 1) > 1:
            pixels = pixels[0]
        if pixels.ndim == 3:
            pixels = pixels.mean(axis=-1)
        pixels = pixels.astype(np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = ((pixels - low) / (high - low or 1) * 255).astype(np.uint8)
        Image.fromarray(scaled).resize((size, size), Image.Resampling.BILINEAR).save(out / f"{path.stem}.png")
        done += 1
    return done


def component(folder: Path, root: Path, size: int, workers: int, fast_decode: bool = True) -> dict:
    from claimed_airflow.core.runner import run

    args = {"metadata": str(folder / "metadata.csv"), "files": str(folder / "files"), "size": size}
    args["fast_decode"] = fast_decode
    if workers:
        args["workers"] = workers
    return run("transform.dicom_to_images", args, root=str(root))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CPU: dict[str, float] = {}


def timed(function, *args) -> tuple[float, object]:
    start, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    CPU[function.__name__] = cpu_seconds() - cpu
    return time.perf_counter() - start, result


def memory_child(count: int, size: int) -> None:
    """Run in a fresh process: the component on ``count`` files; print the peak RSS numbers as JSON."""
    import psutil

    with tempfile.TemporaryDirectory(prefix="bench-dicom-") as tmp:
        folder = replicate(Path(tmp) / "data", count)
        me = psutil.Process()
        peak = {"tree": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                total = 0
                for process in [me, *me.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                peak["tree"] = max(peak["tree"], total)
                time.sleep(0.02)

        baseline = me.memory_info().rss
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        seconds, result = timed(component, folder, Path(tmp) / "out", size, 0)
        stop.set()
        sampler.join()
        import resource

        main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        print(
            json.dumps(
                {
                    "files": count,
                    "seconds": seconds,
                    "images": result["images_written"],
                    "rss_before_mib": baseline / 2**20,
                    "peak_tree_mib": peak["tree"] / 2**20,
                    "peak_main_mib": main_peak / 2**20,
                    "peak_largest_worker_mib": worker_peak / 2**20,
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.size)
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    from claimed_airflow.core.pool import default_workers

    print(f"CPUs available: {default_workers()}; load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-dicom-") as tmp:
        folder = replicate(Path(tmp) / "data", args.files)
        plain_loop(folder, Path(tmp) / "warm-up", args.size, 30)  # decoder imports, file cache
        plain_s, plain_n = timed(plain_loop, folder, Path(tmp) / "plain", args.size)
        plain_cpu = CPU["plain_loop"]
        ours_s, result = timed(component, folder, Path(tmp) / "ours", args.size, 0)
        ours_cpu = CPU["component"]
        full_s, full = timed(component, folder, Path(tmp) / "full", args.size, 0, False)
        full_cpu = CPU["component"]
        plain_again_s, _ = timed(plain_loop, folder, Path(tmp) / "plain2", args.size)  # noise check
    plain_rate = plain_n / plain_s
    ours_rate = args.files / ours_s
    print(f"files: {args.files} (replicated from {SHARED.relative_to(ROOT.parent)}), size {args.size}")
    print(f"plain single-process loop: {plain_s:.1f} s, {plain_rate:.1f} files/s (again: {plain_again_s:.1f} s)")
    print(
        f"dicom_to_images (workers={result['workers']}): {ours_s:.1f} s, {ours_rate:.1f} files/s, "
        f"{result['images_written']} images, {result['files_rejected']} rejected"
    )
    print(
        f"ratio: {ours_rate / plain_rate:.2f}x (vs the mean of both plain runs: "
        f"{ours_rate / (2 * plain_n / (plain_s + plain_again_s)):.2f}x)"
    )
    print(
        f"dicom_to_images fast_decode=False: {full_s:.1f} s, {args.files / full_s:.1f} files/s, "
        f"ratio {args.files / full_s / plain_rate:.2f}x, CPU {1000 * full_cpu / args.files:.0f} ms/file"
    )
    workers = result["workers"]
    print(
        f"CPU time: plain {plain_cpu:.1f} s ({1000 * plain_cpu / plain_n:.0f} ms/file), dicom_to_images "
        f"{ours_cpu:.1f} s incl. workers ({1000 * ours_cpu / args.files:.0f} ms/file); on {workers} idle cores "
        f"the ratio would be about {workers * plain_cpu / ours_cpu:.2f}x"
    )
    print(f"load average after: {os.getloadavg()}")
    peaks = {}
    for count in (args.small, args.large):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(count), "--size", str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        peaks[count] = json.loads(output.strip().splitlines()[-1])
        p = peaks[count]
        print(
            f"{count} files: {p['seconds']:.1f} s, peak RSS tree {p['peak_tree_mib']:.0f} MiB, "
            f"main {p['peak_main_mib']:.0f} MiB, largest worker {p['peak_largest_worker_mib']:.0f} MiB"
        )
    small, large = peaks[args.small], peaks[args.large]
    for key in ("peak_tree_mib", "peak_main_mib", "peak_largest_worker_mib"):
        print(f"growth {args.small} -> {args.large} files, {key}: {100 * (large[key] / small[key] - 1):+.1f}%")


if __name__ == "__main__":
    main()
