"""Benchmark: the data-parallel steps unsharded and at 1, 2 and 4 shards: wall time and peak RSS per task.

Generates ``--counts`` small synthetic CR instances (64x64, 8-bit, pydicom; ten instances a study)
once into a temporary folder, then runs the DAG's tasks for each configuration in the same run:

- ``unsharded``: ``input.dicom`` -> ``transform.dicom_to_images`` (and ``transform.deidentify``), one
  task each, as before sharding;
- ``N shards``: ``input.dicom`` (``shards=N``) -> ``dicom_to_images`` per shard (and ``deidentify`` per
  shard) -> ``transform.merge_shards`` of each output;
- with ``--input-shards``, the input itself in shards too (``dicom_input_in_shards``): ``input.dicom_listing``
  -> ``input.dicom_shard`` per shard -> ``input.dicom_merge``, then the same.

Each task is one fresh ``python`` process that calls ``claimed_airflow.core.runner.run`` with the task's
scope, as an Airflow worker's task process does (without Airflow's own task start and XCom round trip, about
3.5 s of imports a task on this machine, the same in every configuration). Tasks start as their upstreams
finish, at most ``--parallelism`` (2) at once: LocalExecutor with ``parallelism = 2``. Each task reports
its wall time (process start to exit), the peak RSS and PSS of its process tree (the task process plus
its pool's workers, summed, sampled every 20 ms with psutil; RSS counts pages the workers share with
the task process once per process, PSS splits them). ``getrusage``'s ``ru_maxrss`` is not used: a child
forked from this (larger) process keeps the parent's peak across ``exec``. The
configuration's wall time is the first task's start to the last task's end.

    .venv/bin/python tests/benchmarks/sharding.py [--counts 2000 20000] [--shards 0 1 2 4] [--deidentify]
        [--input-shards]

``--shards 0`` is the unsharded run. ``--configs 20000:0,4`` restricts one count's configurations.
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

SALT = "benchmark-salt-0123456789abcdef"


def generate(folder: Path, count: int, size: int = 64) -> int:
    """``count`` CR instances under ``folder``; returns their total bytes."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    root = "1.2.826.0.1.3680043.10.543"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality, ds.BodyPartExamined, ds.BurnedInAnnotation = "CR", "CHEST", "NO"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    total = 0
    for i in range(count):
        study = i // 10
        ds.PatientID, ds.PatientName = f"P{study // 2:06d}", f"Patient^{study // 2}"
        ds.PatientSex, ds.PatientAge = "MF"[study % 2], f"{20 + study % 60:03d}Y"
        ds.StudyDate, ds.AccessionNumber = "20260101", f"A{study:07d}"
        ds.StudyInstanceUID = f"{root}.1.{study}"
        ds.SeriesInstanceUID = f"{root}.2.{study}"
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = f"{root}.3.{i}"
        ds.InstanceNumber = i % 10 + 1
        ds.PixelData = rng.integers(0, 256, (size, size), dtype=np.uint8).tobytes()
        path = folder / f"{study // 100:04d}" / f"{i:07d}.dcm"
        path.parent.mkdir(exist_ok=True)
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        total += path.stat().st_size
    return total


class Peak:
    """The peak RSS and PSS of this process and its children (summed), sampled every 20 ms."""

    def __enter__(self) -> Peak:
        import threading

        import psutil

        self.rss = self.pss = 0
        self.start, me, self.stop = time.perf_counter(), psutil.Process(), threading.Event()

        def sample() -> None:
            while not self.stop.is_set():
                rss = pss = 0
                for process in [me, *me.children(recursive=True)]:
                    try:
                        memory = process.memory_full_info()
                    except psutil.Error:
                        continue
                    rss, pss = rss + memory.rss, pss + memory.pss
                self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
                time.sleep(0.02)

        self.sampler = threading.Thread(target=sample, daemon=True)
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.stop.set()
        self.sampler.join()

    def report(self) -> dict:
        return {"seconds": self.seconds, "peak_tree_mib": self.rss / 2**20, "peak_pss_mib": self.pss / 2**20}


def task_child(spec: str) -> None:
    """In a fresh process: one task (``runner.run``); print its result, seconds and peak memory as JSON."""
    job = json.loads(spec)
    with Peak() as peak:
        from claimed_airflow.core import storage
        from claimed_airflow.core.runner import run

        scope = storage.Scope(job["dag_id"], job["run_id"], job["task_id"], job.get("map_index", -1))
        result = run(job["component"], job["arguments"], root=job["root"], scope=scope)
    kept = {k: v for k, v in result.items() if isinstance(v, (str, int, float, list))}
    print("RESULT " + json.dumps({"result": kept, **peak.report()}))


class Task:
    def __init__(self, name: str, component: str, arguments, upstream=(), map_index: int = -1):
        self.name, self.component, self.arguments = name, component, arguments
        self.upstream, self.map_index = list(upstream), map_index
        self.process = self.started = self.report = None

    def ready(self, done: dict) -> bool:
        return all(u in done for u in self.upstream)


def schedule(tasks: list[Task], root: Path, run_id: str, parallelism: int) -> dict[str, dict]:
    """Run ``tasks`` (dependencies by name) as subprocesses, at most ``parallelism`` at once."""
    done: dict[str, dict] = {}
    waiting, running = list(tasks), []
    while waiting or running:
        for task in [t for t in waiting if t.ready(done)][: parallelism - len(running)]:
            arguments = task.arguments(done) if callable(task.arguments) else task.arguments
            base = task.name.split("[")[0]
            job = {"component": task.component, "arguments": arguments, "root": str(root), "dag_id": "bench"}
            job.update(run_id=run_id, task_id=base, map_index=task.map_index)
            task.started = time.perf_counter()
            task.process = subprocess.Popen(
                [sys.executable, __file__, "--task", json.dumps(job)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            waiting.remove(task)
            running.append(task)
        time.sleep(0.05)
        for task in [t for t in running if t.process.poll() is not None]:
            out, err = task.process.communicate()
            running.remove(task)
            if task.process.returncode:
                raise SystemExit(f"{task.name} failed:\n{err[-3000:]}")
            line = next(x for x in out.splitlines() if x.startswith("RESULT "))
            report = json.loads(line[len("RESULT ") :])
            report["wall_s"] = time.perf_counter() - task.started
            report["start"], report["end"] = task.started, time.perf_counter()
            done[task.name] = report
    return done


def dag(source: str, shards: int, deidentify: bool, input_shards: bool = False) -> list[Task]:
    """The tasks of one configuration (``shards`` 0: unsharded; ``input_shards``: the input read in shards)."""
    tasks = [Task("dicom_input", "input.dicom", {"source": source, "shards": max(shards, 1)})]
    if shards and input_shards:
        tasks = input_in_shards(source, shards)

    def inputs(done: dict, *names: str) -> dict:
        return {name: done["dicom_input"]["result"][name] for name in names}

    deid = {"salt_env": "BENCH_SALT"}
    if not shards:
        tasks.append(
            Task(
                "dicom_to_images",
                "transform.dicom_to_images",
                lambda d: inputs(d, "metadata", "files"),
                ["dicom_input"],
            )
        )
        if deidentify:
            tasks.append(
                Task(
                    "deidentify",
                    "transform.deidentify",
                    lambda d: {**inputs(d, "files", "metadata"), **deid},
                    ["dicom_input"],
                )
            )
        return tasks
    for step, component, outputs, extra in (
        ("dicom_to_images", "transform.dicom_to_images", ("images",), {}),
        ("deidentify", "transform.deidentify", ("output", "table", "report"), deid),
    ):
        if step == "deidentify" and not deidentify:
            continue
        names = [f"{step}_shard[{i}]" for i in range(shards)]
        for i, name in enumerate(names):
            arguments = lambda d, i=i, extra=extra: {  # noqa: E731
                **inputs(d, "metadata", "files", "shard_tables"),
                "shard_index": i,
                **extra,
            }
            tasks.append(Task(name, component, arguments, ["dicom_input"], map_index=i))
        for output in outputs:
            parts = lambda d, names=names, output=output: {"parts": [d[n]["result"][output] for n in names]}  # noqa: E731
            merge = f"{step}" if len(outputs) == 1 else f"{step}_{output}"
            tasks.append(Task(merge, "transform.merge_shards", parts, names))
    return tasks


def input_in_shards(source: str, shards: int) -> list[Task]:
    """``dicom_input_in_shards``'s tasks: the listing, one read per shard, the merge (named ``dicom_input``)."""
    names = [f"dicom_input_shard[{i}]" for i in range(shards)]
    tasks = [Task("dicom_input_listing", "input.dicom_listing", {"source": source, "shards": shards})]
    for i, name in enumerate(names):
        read = lambda d, i=i: {  # noqa: E731
            "files": source,
            "shard_tables": d["dicom_input_listing"]["result"]["shard_tables"],
            "shard_index": i,
        }
        tasks.append(Task(name, "input.dicom_shard", read, ["dicom_input_listing"], map_index=i))
    parts = lambda d: {  # noqa: E731
        "metadata_parts": [d[n]["result"]["metadata"] for n in names],
        "files_parts": [d[n]["result"]["instances"] for n in names],
    }
    return [*tasks, Task("dicom_input", "input.dicom_merge", parts, names)]


def summarize(count: int, label: str, done: dict[str, dict]) -> dict:
    start = min(r["start"] for r in done.values())
    wall = max(r["end"] for r in done.values()) - start
    groups: dict[str, list[dict]] = {}
    for name, report in done.items():
        groups.setdefault(name.split("[")[0], []).append(report)
    rows = []
    for name, reports in groups.items():
        rows.append(
            {
                "task": name if len(reports) == 1 else f"{name} (x{len(reports)})",
                "seconds": max(r["wall_s"] for r in reports),
                "peak_tree_mib": max(r["peak_tree_mib"] for r in reports),
                "peak_pss_mib": max(r["peak_pss_mib"] for r in reports),
            }
        )
    busy = sum(r["wall_s"] for r in done.values())
    load = os.getloadavg()[0]
    return {"instances": count, "config": label, "wall_s": wall, "task_s": busy, "load": load, "tasks": rows}


def scale_child(spec: str) -> None:
    """In a fresh process: one piece of a task at ``rows`` instances; print seconds and peak memory as JSON."""
    job = json.loads(spec)
    kind, folder, rows, shards = job["kind"], Path(job["folder"]), job["rows"], job["shards"]
    with Peak() as peak:
        import pandas as pd

        from claimed_airflow.core import sharding

        if kind == "input_rows":  # input.dicom's rows in memory, then its table (read_files)
            template = pd.read_parquet(folder / "template.parquet").to_dict("records")
            held = [{**template[i % len(template)], **unique(i)} for i in range(rows)]
            table = pd.DataFrame(held)
            table.to_parquet(folder / "written.parquet", index=False)
        elif kind == "cut":  # the input's cut of its table into shard tables (each with its files' rows)
            table = pd.read_parquet(folder / "metadata.parquet")
            sharding.write_tables(list(table["file"]), shards, folder / "shards", rows=table)
        elif kind == "shard_metadata":  # before: a shard task read the whole table and kept its shard's rows
            table = pd.read_parquet(folder / "metadata.parquet")
            table = table[table["file"].astype(str).isin(set(sharding.files_of(folder / "shards", 0)))]
        elif kind == "shard_rows":  # a shard task's rows from its shard table (no metadata given)
            table = sharding.rows_of(folder / "shards", 0)
        elif kind == "shard_rows_of_metadata":  # a shard task given metadata (the flagship: the cohort's table)
            table = sharding.rows_of(folder / "shards", 0, folder / "metadata.parquet")
        elif kind == "merge":  # transform.merge_shards of the shards' Parquet tables
            parts = sorted((folder / "parts").glob("*.parquet"))
            sharding.merge_tables(parts, folder / "merged.parquet")
        elif kind == "input_merge":  # input.dicom_merge's table and UID check (its links: measured at 20,000)
            import pyarrow as pa

            from claimed_airflow.components.input.dicom_merge import _SeenUIDs

            parts = sorted((folder / "parts").glob("*.parquet"))
            seen = _SeenUIDs(parts)

            def new(index: int, table):
                first = seen.check(index, table.column("SOPInstanceUID").to_pylist())
                return table.filter(pa.array([f is None for f in first]))

            sharding.merge_tables(parts, folder / "merged.parquet", select=new)
        elif kind == "listing":  # input.dicom_listing of a folder of ``rows`` (empty) files in 1,000 folders
            from claimed_airflow.components.input.dicom_listing import dicom_listing

            dicom_listing(source=str(folder / "listed"), shards=shards, shard_tables=str(folder / "l"))
    print("RESULT " + json.dumps(peak.report()))


def scale(rows: int, shards: int) -> None:
    """The pieces of the model's tasks whose memory or time could grow with ``rows``, each in a fresh process."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from claimed_airflow.core.runner import run

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        generate(folder / "dicom", 100)
        read = run("input.dicom", {"source": str(folder / "dicom")}, root=str(folder / "out"))
        template = pd.read_parquet(read["metadata"])
        template.to_parquet(folder / "template.parquet", index=False)
        big = pa.Table.from_pandas(template.iloc[[i % len(template) for i in range(rows)]], preserve_index=False)
        for name, values in pd.DataFrame([unique(i) for i in range(rows)]).items():
            big = big.set_column(big.schema.get_field_index(name), name, pa.array(values))
        pq.write_table(big, folder / "metadata.parquet")
        (folder / "parts").mkdir()
        for index, (start, stop) in enumerate(sharding_bounds(rows, shards)):
            pq.write_table(big.slice(start, stop - start), folder / "parts" / f"{index:05d}.parquet")
        size = (folder / "metadata.parquet").stat().st_size
        print(f"\nmodel pieces at {rows} instances, {shards} shards (metadata table {size / 2**20:.0f} MiB):")
        for index in range(rows):  # the listing's folder: empty files, their names as the table's
            if not index % 1000:
                (folder / "listed" / f"{index // 1000:04d}").mkdir(parents=True)
            (folder / "listed" / f"{index // 1000:04d}" / f"{index:07d}.dcm").touch()
        kinds = ("input_rows", "cut", "shard_metadata", "shard_rows", "shard_rows_of_metadata", "merge")
        for kind in (*kinds, "input_merge", "listing"):
            job = json.dumps({"kind": kind, "folder": tmp, "rows": rows, "shards": shards})
            out = subprocess.run(
                [sys.executable, __file__, "--scale-child", job], capture_output=True, text=True, check=True
            ).stdout
            report = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
            print(
                f"  {kind:<22} {report['seconds']:7.1f} s  RSS {report['peak_tree_mib']:6.0f} MiB  "
                f"PSS {report['peak_pss_mib']:6.0f} MiB",
                flush=True,
            )
        tables = [p.stat().st_size for p in (folder / "shards").glob("*.parquet")]
        print(
            f"  shard tables: {len(tables)}, {sum(tables) / 2**20:.1f} MiB in all, "
            f"{max(tables) / 2**10:.0f} KiB the largest"
        )


def unique(i: int) -> dict:
    """The columns that differ from instance to instance (ten instances a series and a study)."""
    root = "1.2.826.0.1.3680043.10.543"
    return {
        "file": f"{i // 1000:04d}/{i:07d}.dcm",
        "StudyInstanceUID": f"{root}.1.{i // 10}",
        "SeriesInstanceUID": f"{root}.2.{i // 10}",
        "SOPInstanceUID": f"{root}.3.{i}",
    }


def sharding_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    from claimed_airflow.core.sharding import bounds

    return bounds(rows, shards)


def table(path: str) -> None:
    """The summaries of ``--json`` as a Markdown table: seconds and peak PSS (MiB) of each task (a mapped
    task: its slowest shard and its largest peak)."""
    summaries = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    columns = {  # column: (unsharded task, sharded task)
        "input listing": (None, "dicom_input_listing"),
        "input read (shard)": (None, "dicom_input_shard"),
        "input (or its merge)": ("dicom_input", "dicom_input"),
        "dicom_to_images (task or shard)": ("dicom_to_images", "dicom_to_images_shard"),
        "its merge": (None, "dicom_to_images"),
        "deidentify (task or shard)": ("deidentify", "deidentify_shard"),
        "merge files": (None, "deidentify_output"),
        "merge table": (None, "deidentify_table"),
        "merge report": (None, "deidentify_report"),
    }
    print("| instances | run | wall s | task s in all | load | " + " | ".join(columns) + " |")
    print("|" + "---|" * (5 + len(columns)))
    for summary in summaries:
        tasks = {row["task"].split(" (x")[0]: row for row in summary["tasks"]}
        sharded = "dicom_to_images_shard" in tasks
        cells = []
        for unsharded_name, sharded_name in columns.values():
            row = tasks.get(sharded_name if sharded else unsharded_name or "")
            cells.append(f"{row['seconds']:.0f} s, {row['peak_pss_mib']:.0f} MiB" if row else "-")
        run = f"{summary['instances']:,} | {summary['config']}"
        head = f"| {run} | {summary['wall_s']:.0f} | {summary['task_s']:.0f} | {summary['load']:.1f} | "
        print(head + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--shards", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--configs", default="", help="COUNT:N,N;COUNT:N,... (overrides --shards per count)")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--deidentify", action="store_true")
    parser.add_argument("--input-shards", action="store_true", help="read the input in shards too")
    parser.add_argument("--json", help="append each configuration's summary to this file (JSON lines)")
    parser.add_argument("--scale", type=int, nargs="*", help="ROWS [SHARDS]: only the model's pieces at ROWS")
    parser.add_argument("--table", help="print the summaries of a --json file as a Markdown table")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--scale-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        task_child(args.task)
        return
    if args.scale_child:
        scale_child(args.scale_child)
        return
    if args.table:
        table(args.table)
        return
    if args.scale:
        scale(args.scale[0], args.scale[1] if len(args.scale) > 1 else 100)
        return
    overrides = {
        int(c): [int(n) for n in s.split(",")] for c, s in (x.split(":") for x in args.configs.split(";") if x)
    }
    os.environ["BENCH_SALT"] = SALT
    print(f"CPUs: {os.cpu_count()}; load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        for count in args.counts:
            source = Path(tmp) / f"dicom-{count}"
            start = time.perf_counter()
            size = generate(source, count)
            print(
                f"\n{count} instances, {size / 2**20:.1f} MiB, generated in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            for shards in overrides.get(count, args.shards):
                label = f"{shards} shard(s)" if shards else "unsharded"
                label += ", input too" if shards and args.input_shards else ""
                root = Path(tmp) / f"out-{count}-{shards}"
                tasks = dag(str(source), shards, args.deidentify, args.input_shards)
                done = schedule(tasks, root, f"n{shards}", args.parallelism)
                summary = summarize(count, label, done)
                print(
                    f"{label}: wall {summary['wall_s']:.1f} s, tasks {summary['task_s']:.0f} s in all "
                    f"(load {summary['load']:.1f})",
                    flush=True,
                )
                for row in summary["tasks"]:
                    print(
                        f"  {row['task']:<32} {row['seconds']:7.1f} s  RSS {row['peak_tree_mib']:6.0f} MiB  "
                        f"PSS {row['peak_pss_mib']:6.0f} MiB",
                        flush=True,
                    )
                if args.json:
                    with open(args.json, "a") as handle:
                        handle.write(json.dumps(summary) + "\n")
                import shutil

                shutil.rmtree(root, ignore_errors=True)
            import shutil

            shutil.rmtree(source, ignore_errors=True)


if __name__ == "__main__":
    main()
