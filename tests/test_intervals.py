"""Interval arithmetic: t quantiles, Welch df, intervals in each metric's space, contrasts, p values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.stats.intervals import diff_ci, mean_ci, ratio_ci, t_quantile, welch_df
from tests.statsdata import T_TABLE, t_cdf


@pytest.mark.parametrize("df", sorted(T_TABLE))
def test_t_quantile_matches_printed_table(df):
    assert t_quantile(df) == pytest.approx(T_TABLE[df], abs=2e-6)


@pytest.mark.parametrize("df", [2.5, 4.959, 17.3])
def test_t_quantile_non_integer_df_inverts_integrated_cdf(df):
    assert t_cdf(t_quantile(df), df) == pytest.approx(0.975, abs=1e-7)


def test_welch_df_by_hand():
    # a: n=3, s²=0.0004; b: n=4, s²=0.002/3. Terms 0.0004/3 and 0.0005/3.
    ta, tb = 0.0004 / 3, (0.002 / 3) / 4
    expected = (ta + tb) ** 2 / (ta**2 / 2 + tb**2 / 3)
    assert welch_df(0.0004, 3, 0.002 / 3, 4) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(4.959, abs=1e-3)



# ---------------------------------------------------------------- intervals in the metric's own space

def t975(df: float) -> float:
    return float(scipy_stats.t.ppf(0.975, df))


@pytest.mark.parametrize("values", [[1000.0, 3000.0], [980.0, 1000.0, 1030.0], [5.0, 9.0, 40.0, 7.0]])
def test_positive_interval_is_log_scale_delta_method_around_the_mean(values):
    x = np.array(values)
    n, m, s = len(x), x.mean(), x.std(ddof=1)
    half = t975(n - 1) * (s / m) / math.sqrt(n)
    got = mean_ci(pd.Series(values), "positive")
    assert got[:3] == pytest.approx((n, m, s))
    assert got[3:] == pytest.approx((m * math.exp(-half), m * math.exp(half)), rel=1e-12)
    assert 0 < got[3] < m < got[4]


def test_positive_interval_matches_the_raw_t_interval_at_small_spread():
    x = pd.Series([990.0, 1000.0, 1010.0])  # CV 1 %: the two must agree to (CV·t/√n)² ≈ 0.03 %
    raw = mean_ci(x, "real")
    log = mean_ci(x, "positive")
    assert log[3] == pytest.approx(raw[3], rel=5e-4) and log[4] == pytest.approx(raw[4], rel=5e-4)


def test_proportion_interval_is_logit_scale_and_stays_in_the_unit_interval():
    x = np.array([0.50, 0.99])
    m, s = x.mean(), x.std(ddof=1)
    assert m + t975(1) * s / math.sqrt(2) > 1  # the raw t interval would pass 100 %
    logit = math.log(m / (1 - m))
    half = t975(1) * (s / math.sqrt(2)) / (m * (1 - m))
    got = mean_ci(pd.Series(x), "proportion")
    assert got[3:] == pytest.approx((1 / (1 + math.exp(-(logit - half))), 1 / (1 + math.exp(-(logit + half)))))
    assert 0 < got[3] < m < got[4] < 1


def test_p_value_is_two_sided_from_the_t_distribution():
    from analysis.stats.intervals import t_p_value
    assert t_p_value(T_TABLE[4], 4) == pytest.approx(0.05, abs=1e-6)
    assert t_p_value(-T_TABLE[30], 30) == pytest.approx(0.05, abs=1e-6)
    assert math.isnan(t_p_value(1.0, math.nan))


def test_contrasts_of_identical_seeds_have_no_width():
    same = diff_ci(3, 0.8, 0.0, 3, 0.8, 0.0)
    assert (same.low, same.high, same.p_value) == (0.0, 0.0, 1.0)
    apart = ratio_ci(3, 100.0, 0.0, 3, 150.0, 0.0)
    assert (apart.low, apart.high, apart.p_value) == (1.5, 1.5, 0.0)
