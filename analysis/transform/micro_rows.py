"""bench.micro's rows as the tables the report shows (pure transforms); the rows come from
:mod:`analysis.load.micro_csv`."""
from __future__ import annotations

import pandas as pd


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Add `impl`: the variant, '+compile' when compiled; and `case`: the shape's name, with its batch where
    one name was measured at several, and ' CL' for channels_last inputs.

    >>> d = pd.DataFrame({"variant": ["nn", "scratch"], "compiled": [False, True], "shape_name": "s",
    ...                   "shape": ["2x3x4x4", "8x3x4x4"], "memory_format": ["contiguous", "channels_last"]})
    >>> with_labels(d)[["impl", "case"]].values.tolist()
    [['nn', 's b2'], ['scratch+compile', 's b8 CL']]
    """
    df = df.assign(impl=df["variant"] + df["compiled"].map({True: "+compile", False: ""}))
    if "memory_format" not in df:  # rows from before --memory-formats
        df = df.assign(memory_format="contiguous")
    batch = df["shape"].astype(str).str.split("x").str[0]
    several = df.groupby("shape_name")["shape"].transform("nunique") > 1
    case = df["shape_name"] + (" b" + batch).where(several, "")
    return df.assign(case=case + df["memory_format"].map({"channels_last": " CL"}).fillna(""))


def micro_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (shape, dtype, impl): forward and forward+backward time (us), GB/s, × copy time.

    The copy row of each (shape, dtype) carries its own time in `forward_us`; units are in the names.

    >>> rows = pd.DataFrame({"shape_name": ["s"] * 3, "shape": ["2x3"] * 3, "dtype": ["float32"] * 3,
    ...     "variant": ["copy", "nn", "nn"], "compiled": [False] * 3,
    ...     "op": ["copy", "forward", "forward_backward"],
    ...     "time_us_median": [1.0, 5.0, 20.0], "gb_per_s": [8.0, 1.6, 0.8], "ratio_to_copy": [1.0, 5.0, 20.0],
    ...     "iqr_over_median": [0.0] * 3})
    >>> micro_table(rows)[["impl", "forward_us", "forward_backward_x_copy"]].values.tolist()
    [['copy', 1.0, nan], ['nn', 5.0, 20.0]]
    """
    df = with_labels(df).assign(op=lambda d: d["op"].replace({"copy": "forward"}))
    wide = df.pivot_table(index=["shape_name", "case", "shape", "memory_format", "dtype", "impl"], columns="op",
                          values=["time_us_median", "gb_per_s", "ratio_to_copy", "iqr_over_median"],
                          aggfunc="first", sort=False)
    names = {"time_us_median": "us", "gb_per_s": "gb_per_s", "ratio_to_copy": "x_copy",
             "iqr_over_median": "iqr_over_median"}
    wide.columns = [f"{op}_{names[v]}" for v, op in wide.columns]
    order = [f"{op}_{n}" for op in ("forward", "forward_backward") for n in names.values()]
    wide = wide.reindex(columns=order).reset_index()
    wide.loc[wide["impl"] == "copy", "forward_x_copy"] = 1.0
    return wide


PASSES = {"forward": "forward", "forward_backward": "forward+backward"}  # table prefix -> words


def mark_fastest(table: pd.DataFrame) -> pd.DataFrame:
    """Add `fastest`: the passes in which the implementation has the lowest median time of its
    (shape, dtype), the copy aside; '' where it has none. Tied implementations are all marked.

    >>> t = pd.DataFrame({"shape_name": ["s"] * 3, "dtype": ["float32"] * 3,
    ...     "impl": ["copy", "nn", "fused"], "forward_us": [1.0, 5.0, 2.0],
    ...     "forward_backward_us": [float("nan"), 9.0, 9.0]})
    >>> mark_fastest(t)["fastest"].tolist()
    ['', 'forward+backward', 'forward, forward+backward']
    """
    out = table.copy()
    layers = out["impl"] != "copy"
    marks = pd.Series([[] for _ in range(len(out))], index=out.index)
    for prefix, words in PASSES.items():
        times = out[f"{prefix}_us"].where(layers)
        best = times.groupby([out["shape_name"], out["dtype"]]).transform("min")
        for i in out.index[times.notna() & (times == best)]:
            marks[i].append(words)
    return out.assign(fastest=marks.map(", ".join))
