"""The flagship DAG as the KFP tests export it."""

from __future__ import annotations

from pathlib import Path

FLAGSHIP = Path(__file__).resolve().parents[2] / "dags" / "dicom_to_deployment.py"


def skip_options() -> list[str]:
    """``--skip`` for the reviewer's approval task: human-in-the-loop has no KFP equivalent."""
    return ["--skip", "approval"] if 'task_id="approval"' in FLAGSHIP.read_text() else []
