"""The compatibility matrix's CSVs (python -m bench.compat) as one tidy table: every `compat.csv`
(bench.rundir.COMPAT_CSV) under the report's folders, plus files named explicitly. The pivots the
report shows are :mod:`analysis.transform.compat_matrix`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench import rundir

NUMERIC = ("step_time_ratio", "case_s", "ranks")


def find_compat(paths: Iterable[str | Path]) -> list[Path]:
    """Files named COMPAT_CSV under the folders of `paths`, and files among `paths` themselves."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_file():
            found.add(p)
        elif p.is_dir():
            found.update(p.rglob(rundir.COMPAT_CSV))
    return sorted(found)


def load_compat(files: Iterable[str | Path]) -> pd.DataFrame:
    """The rows of every file, columns COMPAT_COLUMNS; a file that is not a compatibility matrix
    is skipped with a warning naming it.

        compat.csv = "variant,case,status,detail,step_time_ratio,...\\nnn,fp32,pass,...\\n"
        -> load_compat([compat.csv]) has one row, variant "nn", case "fp32", status "pass"
    """
    cols = list(rundir.COMPAT_COLUMNS)
    frames = []
    for f in map(Path, files):
        try:
            df = pd.read_csv(f, dtype={c: str for c in cols if c not in NUMERIC}, keep_default_na=False,
                             na_values={"step_time_ratio": [""]})
        except (OSError, ValueError, pd.errors.ParserError) as e:
            warnings.warn(f"skipping {f}: unreadable ({e})", stacklevel=2)
            continue
        if missing := set(cols) - set(df.columns):
            warnings.warn(f"skipping {f}: no {', '.join(sorted(missing))} column", stacklevel=2)
            continue
        if bad := set(df["status"]) - set(rundir.COMPAT_STATUSES):
            warnings.warn(f"skipping {f}: unknown status {', '.join(sorted(bad))}", stacklevel=2)
            continue
        noisy = df["step_time_noisy"].map({"True": True, "False": False, "": pd.NA})
        frames.append(df[cols].assign(step_time_noisy=noisy.astype("boolean")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
