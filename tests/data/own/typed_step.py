"""A typed main(): the function's signature and docstring are the component's spec."""

from claimed_airflow.core.types import InputPath, OutputPath


def main(table: InputPath, column: str = "age", minimum: float = 0.0, kept: OutputPath = "kept.csv") -> dict:
    """Keep the rows of a CSV table whose column is at least a minimum.

    :param table: CSV table to read.
    :param column: Numeric column compared with the minimum.
    :param minimum: Smallest value kept.
    :param kept: The rows kept.
    """
    import pandas as pd

    frame = pd.read_csv(table)
    if column not in frame.columns:
        raise KeyError(f"column {column!r} not in the table")
    frame = frame[frame[column] >= minimum]
    frame.to_csv(kept, index=False)
    return {"rows": len(frame)}
