"""A small GitHub-markdown table formatter (pandas' to_markdown needs `tabulate`), and the one way
this project prints a number: thousands separators, fixed notation, never e-notation."""
from __future__ import annotations

import math
import numbers
from typing import Mapping

import pandas as pd

MISSING = "–"
NOT_MEASURED = "n/a"  # a metric these runs could not measure (accuracy on random labels)


def fmt_number(value: float, spec: str = ".4g") -> str:
    """A number as the report prints it: thousands separators and fixed notation.

    `spec` ".Ng" keeps N significant digits (never fewer than the integer part); ".Nf" keeps N
    decimals; integers print whole. NaN/None print as MISSING.

        fmt_number(28009.9) -> '28,010'      fmt_number(0.0123456) -> '0.01235'
        fmt_number(917.36)  -> '917.4'       fmt_number(1234.5, ".2f") -> '1,234.50'
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    kind, digits = spec[-1], int(spec.lstrip(".")[:-1] or 4)
    if kind == "f":
        return f"{v:,.{digits}f}"
    if kind != "g":
        raise ValueError(f"number format {spec!r}: use '.Ng' (significant digits) or '.Nf' (decimals)")
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    # '0.5000' from '.4g' reads as more precise than the value is; trailing zeros go, as with %g.
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cell(value, floatfmt: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if value is None or value is pd.NA or isinstance(value, numbers.Real):
        return fmt_number(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str | Mapping[str, str] = ".4g") -> str:
    """Render a DataFrame (its columns, not its index) as a markdown table.

    Numbers go through `fmt_number(value, floatfmt)`, NaN/None print as '–', '|' is escaped.
    `floatfmt` may map column names to formats (others keep ".4g"), so a column of percentages
    prints the same decimals in every row. Numeric columns are right-aligned.

        to_markdown(pd.DataFrame({"variant": ["nn"], "acc": [0.8123]}), ".2f")
        -> '| variant | acc |\\n| --- | ---: |\\n| nn | 0.81 |'
    """
    header = "| " + " | ".join(_cell(c, ".4g") for c in df.columns) + " |"
    align = "| " + " | ".join(
        "---:" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        else "---" for c in df.columns) + " |"
    specs = [floatfmt.get(c, ".4g") if isinstance(floatfmt, Mapping) else floatfmt for c in df.columns]
    body = ["| " + " | ".join(_cell(v, spec) for v, spec in zip(row, specs)) + " |"
            for row in df.itertuples(index=False, name=None)]
    return "\n".join([header, align, *body])
