"""Holm's step-down correction against hand-worked and brute-force answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats.multiplicity import holm


def test_holm_by_hand():
    # m = 4, sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> running max.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_untested_rows_stay_out_of_the_family():
    got = holm([0.02, math.nan, 0.03])
    assert math.isnan(got[1])
    assert got[[0, 2]] == pytest.approx([0.04, 0.04])  # m = 2, not 3
    assert np.isnan(holm([math.nan, math.nan])).all() and holm([]).shape == (0,)


def test_holm_rejects_what_the_sequential_procedure_rejects():
    rng = np.random.default_rng(7)
    for _ in range(200):
        p = rng.uniform(0, 0.08, size=rng.integers(1, 12))
        rejected = set()  # reject p_(i) while p_(i) <= α / (m − i), i from 0
        for i, j in enumerate(np.argsort(p)):
            if p[j] > 0.05 / (len(p) - i):
                break
            rejected.add(j)
        assert set(np.flatnonzero(holm(p) <= 0.05)) == rejected
