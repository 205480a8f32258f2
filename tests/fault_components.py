"""Components for the fault-injection tests (tests/test_faults.py), run in-process and by ``claimed-airflow run``."""

from __future__ import annotations

import time
from pathlib import Path

from claimed_airflow.core import InputPath, OutputPath, component


@component("faults")
def slow_writer(files: int = 100, size: int = 65536, hold: float = 0.0, output: OutputPath = "out") -> dict:
    """Write ``files`` files of ``size`` bytes, print ``WRITTEN``, then wait ``hold`` seconds.

    :param files: Number of files.
    :param size: Bytes per file.
    :param hold: Seconds to wait after writing (the test kills the process meanwhile).
    :param output: Output folder.
    """
    out = Path(output)
    out.mkdir()
    for i in range(files):
        (out / f"part-{i:04d}.bin").write_bytes(bytes([i % 251]) * size)
    print("WRITTEN", flush=True)
    time.sleep(hold)
    return {"files": files}


@component("faults")
def two_outputs(data: InputPath, first: OutputPath = "first", second: OutputPath = "second.txt") -> dict:
    """Copy ``data`` into a folder of five files and one file.

    :param data: Input text file.
    :param first: Output folder.
    :param second: Output file.
    """
    text = Path(data).read_text()
    Path(first).mkdir()
    for i in range(5):
        (Path(first) / f"{i}.txt").write_text(text * (i + 1))
    Path(second).write_text(text.upper())
    return {"length": len(text)}
