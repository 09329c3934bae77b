"""Which speed figures Findings stand on: the fastest variant by its runs' median step (a few slow
steps move mean examples/s, not a median), and the Holm family without the examples/s verdicts an
interleaved timing phase replaced (analysis.stats.interleaved gives those instead).
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.stats.multiplicity import ALPHA, holm


def fastest_by_median_step(cfg: pd.DataFrame) -> tuple[str | None, float, int, float]:
    """(label, examples/s at its median step, runs, median step ms) of the label whose runs' median
    step (step_ms_p50: each run's slowest rank) has the smallest median over its runs; no run with
    a step time: (None, nan, 0, nan).

    >>> cfg = pd.DataFrame({"label": ["nn", "nn", "sync"], "step_ms_p50": [10.0, 30.0, 16.0],
    ...                     "global_batch": 256})
    >>> fastest_by_median_step(cfg)
    ('sync', 16000.0, 1, 16.0)
    """
    ms = pd.to_numeric(cfg["step_ms_p50"], errors="coerce") if "step_ms_p50" in cfg else pd.Series(dtype=float)
    timed = cfg.assign(step_ms_p50=ms)[ms > 0]
    if timed.empty:
        return None, float("nan"), 0, float("nan")
    per = timed.groupby("label")["step_ms_p50"].agg(["median", "size"])
    label = per["median"].idxmin()
    step = float(per.at[label, "median"])
    batch = float(timed.loc[timed["label"] == label, "global_batch"].iloc[0])
    return str(label), batch / (step / 1e3), int(per.at[label, "size"]), step


def holm_without(comps: pd.DataFrame, replaced: set[tuple[str, str]]) -> pd.DataFrame:
    """`comps` with the examples/s verdicts of the (configuration, variant) pairs in `replaced` (their
    speed given by an interleaved timing phase instead) out of the Holm family, and Holm redone over
    the examples/s and accuracy p values left.

    >>> c = pd.DataFrame({"configuration": "c", "variant": ["a", "b"], "examples_per_s_p": [0.02, 0.02],
    ...                   "test_acc_p": [0.02, float("nan")], "examples_per_s_holm": None, "test_acc_holm": None})
    >>> holm_without(c, set())["examples_per_s_holm"].tolist()  # 3 p values of 0.02: 3 × 0.02 > 0.05
    [False, False]
    >>> holm_without(c, {("c", "b")})["examples_per_s_holm"].tolist()  # 2 left: 2 × 0.02 < 0.05
    [True, None]
    """
    out = comps.copy()
    gone = [(c, v) in replaced for c, v in zip(out["configuration"], out["variant"])]
    out.loc[gone, "examples_per_s_p"] = float("nan")
    adjusted = holm(pd.concat([out["examples_per_s_p"], out["test_acc_p"]], ignore_index=True).astype(float))
    marks = [None if math.isnan(p) else bool(p < ALPHA) for p in adjusted]
    out["examples_per_s_holm"], out["test_acc_holm"] = marks[:len(out)], marks[len(out):]
    return out
