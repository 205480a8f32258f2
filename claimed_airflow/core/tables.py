"""Reading and writing tables (CSV, Parquet, JSON lines) by file suffix; pandas is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from claimed_airflow.core.errors import ClaimedError

if TYPE_CHECKING:
    import pandas as pd


def require_columns(table, wanted, *, param: str, where: str = "", hint: str = "") -> None:
    """Raise one line naming the input (``param``), the missing columns and those there are.

    ``table``: a DataFrame, Arrow table or Spark frame (anything with ``columns``/``column_names``) or a list of names.
    """
    names = table.column_names if hasattr(table, "column_names") else getattr(table, "columns", table)
    have = [str(c) for c in names]
    missing = [repr(str(c)) for c in wanted if c is not None and str(c) not in have]
    if missing:
        what = "column" if len(missing) == 1 else "columns"
        place = f" in {where}" if where else ""
        raise ClaimedError(f"{param}: {what} {', '.join(missing)} missing{place} (columns: {', '.join(have)}){hint}")


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
