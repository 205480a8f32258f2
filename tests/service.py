"""A real server started for a test (Orthanc, dcmqrscp): launched, waited for, stopped; ``with`` stops it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class Service:
    """Base of the test servers: ``launch`` starts the command with its log in ``folder``, ``stop`` ends it."""

    folder: Path
    process: subprocess.Popen | None = None
    log = None

    def launch(self, name: str, command: list[str], answers: Callable[[], object], **popen) -> None:
        """Start ``command`` and wait until ``answers()`` raises no OSError (at most 30 s)."""
        self.log = open(self.folder / f"{name.lower()}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, **popen)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.folder / f'{name.lower()}.log').read_text()[-2000:]}")
            try:
                answers()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer within 30 s")

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log:
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
