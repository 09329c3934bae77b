"""Shared hand-made run tables and reference values for the statistics tests.

Expected values in the tests are computed there from the formulas, with Student-t critical values
from printed tables or scipy.stats called directly, never from the code under test.
"""
from __future__ import annotations

import math

import pandas as pd

# Two-sided 95 % critical values t_{0.975, df} from a printed t table.
T_TABLE = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 10: 2.228139, 30: 2.042272}

BASE = dict(variant="nn", model="lenet_bn", world_size=1, per_rank_batch=64, epochs=2,
            mode="eager", amp="none", bn_group_size=0, lr=0.1, limit_train=0, device="cpu",
            bn_emulate_ranks=1, data="fashion-mnist", image_size=28, channels_last=False, steps=0,
            status="complete", train_loss=0.5, train_acc=0.85, test_acc=0.8,
            examples_per_s=1000.0, examples_per_s_per_rank=1000.0, step_ms_p50=10.0,
            step_ms_p90=12.0, peak_mem_bytes=1e6)


def make_runs(*specs: dict) -> pd.DataFrame:
    """Each spec overrides BASE; a list value makes one run (seed) per element."""
    rows = []
    for spec in specs:
        lists = {k: v for k, v in spec.items() if isinstance(v, list)}
        n = len(next(iter(lists.values()))) if lists else 1
        for i in range(n):
            row = {**BASE, **{k: v for k, v in spec.items() if k not in lists},
                   **{k: v[i] for k, v in lists.items()}, "seed": i}
            row["global_batch"] = row["per_rank_batch"] * row["world_size"]
            row["run"] = f"{row['variant']}-w{row['world_size']}-b{row['per_rank_batch']}-s{i}"
            rows.append(row)
    return pd.DataFrame(rows)


def t_cdf(x: float, df: float, steps: int = 20000) -> float:
    """Student-t CDF by Simpson integration of the density: an independent check of t_quantile."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    f = lambda u: c * (1 + u * u / df) ** (-(df + 1) / 2)  # noqa: E731
    h = x / steps
    s = f(0) + f(x) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
    return 0.5 + s * h / 3


def scaling_runs() -> pd.DataFrame:
    return make_runs(
        {"world_size": 1, "examples_per_s": [990.0, 1000.0, 1010.0]},
        {"world_size": 4, "examples_per_s": [3564.0, 3600.0, 3636.0]},
        {"world_size": 2, "per_rank_batch": 32, "examples_per_s": [1800.0, 1900.0]},
        {"world_size": 2, "variant": "sync", "examples_per_s": [1500.0, 1520.0]},
    )
