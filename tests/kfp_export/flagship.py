"""The flagship DAG as the KFP tests export it: as it is, no options (its approval task becomes a KFP step)."""

from __future__ import annotations

from pathlib import Path

FLAGSHIP = Path(__file__).resolve().parents[2] / "dags" / "dicom_to_deployment.py"
