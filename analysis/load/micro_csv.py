"""bench.micro's CSVs as one tidy table (pandas, no torch); the tables shown are
:mod:`analysis.transform.micro_rows`."""
from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

KEY = ["shape_name", "shape", "memory_format", "dtype", "variant", "compiled", "op"]


def load_micro(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Rows of every CSV; a measurement present in several (the copy is in each) is kept once, first."""
    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        raise ValueError("no micro-benchmark CSV given")
    df = pd.concat(frames, ignore_index=True)
    if "memory_format" not in df:  # CSVs written before bench.micro had --memory-formats
        df["memory_format"] = "contiguous"
    df["memory_format"] = df["memory_format"].fillna("contiguous")
    df["compiled"] = df["compiled"].astype(str).str.lower().eq("true")
    return df.drop_duplicates(KEY, keep="first").reset_index(drop=True)
