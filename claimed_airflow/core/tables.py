"""Reading and writing tables (CSV, Parquet, JSON lines) by file suffix; pandas is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from claimed_airflow.core.errors import ClaimedError

if TYPE_CHECKING:
    import pandas as pd


def read_table(path: str | Path, *, name: str = "table") -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".json", ".jsonl"):
            return pd.read_json(path, lines=suffix == ".jsonl")
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise ClaimedError(f"{name}: cannot read table {path.name}: {exc}") from None


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
