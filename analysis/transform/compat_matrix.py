"""The pivots of the compatibility matrix that the report and docs/compatibility.md show, pure
DataFrame → DataFrame: `compat_matrix` (cases down, variants across) and `compat_notes` (the details
of the cells that did not pass, one row per distinct detail). The rows come from
:mod:`analysis.load.compat_csv`.
"""
from __future__ import annotations

import pandas as pd

from bench import rundir

GROUP = ["torch", "device"]  # one matrix per torch version and device


def _cell(row: pd.Series) -> str:
    ratio = row["step_time_ratio"]
    if pd.isna(ratio):
        return row["status"]
    noisy = row.get("step_time_noisy")
    return f"{row['status']} ×{ratio:.2f}" + ("~" if not pd.isna(noisy) and bool(noisy) else "")


def compat_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """One row per case (in COMPAT_CASES order, then any other), one column per variant (in the
    order first seen); a cell is the status, with ×ratio where a step time was measured, and a
    "~" after it when those times were noisy.

        variant,case,status,step_time_ratio,step_time_noisy = [nn,fp32,pass,NaN,NA],
            [nn,channels-last,pass,1.25,False], [nn,bf16-autocast,pass,0.9,True], [sync,fp32,n/a,NaN,NA]
        -> case           nn          sync
           fp32           pass        n/a
           bf16-autocast  pass ×0.90~ –
           channels-last  pass ×1.25  –
    """
    variants = list(dict.fromkeys(df["variant"]))
    known = [c for c in rundir.COMPAT_CASES if c in set(df["case"])]
    cases = known + [c for c in dict.fromkeys(df["case"]) if c not in rundir.COMPAT_CASES]
    cells = df.assign(cell=df.apply(_cell, axis=1) if len(df) else []).drop_duplicates(
        ["case", "variant"], keep="last")
    wide = cells.pivot(index="case", columns="variant", values="cell")
    wide = wide.reindex(index=cases, columns=variants)
    return wide.rename_axis(columns=None).reset_index()


def compat_notes(df: pd.DataFrame) -> pd.DataFrame:
    """The cells that did not pass: variant, status, detail and the cases that share them (one row
    for a reason repeated across cases, e.g. a variant that cannot run on this device).

        [sync,fp32,n/a,"CUDA only"], [sync,channels-last,n/a,"CUDA only"], [nn,fp32,pass,""]
        -> variant  status  cases                detail
           sync     n/a     fp32, channels-last  CUDA only
    """
    cols = ["variant", "status", "cases", "detail"]
    bad = df[df["status"] != "pass"]
    if bad.empty:
        return pd.DataFrame(columns=cols)
    grouped = bad.groupby(["variant", "status", "detail"], sort=False)["case"].agg(", ".join)
    notes = grouped.rename("cases").reset_index()[cols]
    order = {v: i for i, v in enumerate(dict.fromkeys(df["variant"]))}
    return notes.sort_values("variant", key=lambda s: s.map(order), kind="stable", ignore_index=True)


def groups(df: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(torch and device of the group, its rows), one per matrix to show, in order of appearance;
    the backends its two-rank cells used are in the rows."""
    return [(dict(zip(GROUP, key)), part) for key, part in df.groupby(GROUP, sort=False)]
