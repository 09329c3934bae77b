"""Seeds needed and the smallest resolvable difference: against Monte Carlo and Cohen's tables."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats.power import min_resolvable, ncp_for_power, parse_resolve, parse_targets, seeds_needed
from bench.errors import UsageError


@pytest.mark.parametrize("n", [3, 5])
def test_smallest_resolvable_difference_is_found_80_percent_of_the_time(n):
    # Two groups of n from N(0, 1) and N(δ_min, 1): the t test (Welch's df is 2n − 2 here, as for
    # the pooled test) should reject at 5 % in 80 % of 20,000 simulated studies (sd 0.3 %).
    delta = min_resolvable(n, 1.0, n, 1.0)
    rng = np.random.default_rng(11 + n)
    a = rng.standard_normal((20_000, n))
    b = rng.standard_normal((20_000, n)) + delta
    rejected = scipy_stats.ttest_ind(b, a, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.80, abs=0.012)


def test_noncentrality_tends_to_the_normal_answer():
    assert ncp_for_power(math.inf) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert ncp_for_power(1e6) == pytest.approx(2.801585, abs=1e-4)
    assert ncp_for_power(4) > ncp_for_power(10) > ncp_for_power(100)  # fewer df, wider t


# Cohen (1988), Table 2.4.1: runs per group for 80 % power, two-sided α = 0.05, effect size d.
@pytest.mark.parametrize("d,n", [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_seeds_needed_match_cohens_table(d, n):
    assert seeds_needed(1.0, 1.0, d) == n
    assert seeds_needed(0.007, 0.007, 0.007 * d) == n  # only the ratio δ/σ matters


def test_unequal_spreads_need_more_seeds_than_the_smaller_spread_alone():
    assert seeds_needed(0.5, 1.5, 1.0) > seeds_needed(1.0, 1.0, 1.0)  # same total variance, fewer df
    assert seeds_needed(1.0, 1.0, 1e-4) == math.inf  # past MAX_SEEDS


@pytest.mark.parametrize("text,kind,value", [("0.5pt", "pt", 0.5), ("1.4 pts", "pt", 1.4), ("5%", "%", 5.0),
                                             (".5pt", "pt", 0.5), ("12.5%", "%", 12.5)])
def test_resolve_targets_parse(text, kind, value):
    t = parse_resolve(text)
    assert (t.kind, t.value) == (kind, value)
    assert t.delta() == pytest.approx(value / 100 if kind == "pt" else math.log(1 + value / 100))


@pytest.mark.parametrize("text,fragment", [("abc", "give a difference such as 0.5pt"), ("5", "give a difference"),
                                           ("-0.5pt", "above zero"), ("0%", "above zero"),
                                           ("150pt", "below 100"), ("5%%", "give a difference")])
def test_bad_resolve_targets_are_usage_errors(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_resolve(text)


def test_one_target_per_kind():
    assert [str(t) for t in parse_targets(["0.5pt", "5%"])] == ["0.5pt", "5%"]
    with pytest.raises(UsageError, match="given twice"):
        parse_targets(["0.5pt", "1pt"])
