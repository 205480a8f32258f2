"""Scale a numeric column of a CSV table.

Rows whose value is missing are dropped unless --keep-missing is given.
"""

import argparse

import pandas as pd

from claimed_airflow.core.sources import report

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--table", required=True, help="input: CSV table to read")
parser.add_argument("--column", default="age", help="numeric column to scale")
parser.add_argument("--factor", type=float, default=2.0, help="multiplier")
parser.add_argument("--mode", choices=["multiply", "divide"], default="multiply", help="how to apply the factor")
parser.add_argument("--keep-missing", action="store_true", help="keep rows whose value is missing")
parser.add_argument("--out", default="scaled.csv", help="output: the scaled table")
args = parser.parse_args()

frame = pd.read_csv(args.table)
if args.column not in frame.columns:
    raise SystemExit(f"column {args.column!r} not in {list(frame.columns)}")
if not args.keep_missing:
    frame = frame.dropna(subset=[args.column])
factor = args.factor if args.mode == "multiply" else 1 / args.factor
frame[args.column] = frame[args.column] * factor
frame.to_csv(args.out, index=False)
report(rows=len(frame), total=float(frame[args.column].sum()))
