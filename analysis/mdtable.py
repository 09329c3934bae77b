"""A small GitHub-markdown table formatter (pandas' to_markdown needs `tabulate`)."""
from __future__ import annotations

import math
import numbers

import pandas as pd

MISSING = "–"


def _cell(value, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, (bool,)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """Render a DataFrame (its columns, not its index) as a markdown table.

    Floats use `floatfmt`, integers print as integers, NaN/None as '–', '|' is escaped.
    Numeric columns are right-aligned.

        to_markdown(pd.DataFrame({"variant": ["nn"], "acc": [0.8123]}), ".2f")
        -> '| variant | acc |\\n| --- | ---: |\\n| nn | 0.81 |'
    """
    header = "| " + " | ".join(_cell(c, floatfmt) for c in df.columns) + " |"
    align = "| " + " | ".join(
        "---:" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        else "---" for c in df.columns) + " |"
    body = ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |"
            for row in df.itertuples(index=False, name=None)]
    return "\n".join([header, align, *body])
