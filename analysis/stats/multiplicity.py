"""Many comparisons at once: Holm's step-down correction of a family of p values.

A sweep over 4 variants × 3 world sizes × 2 batches gives dozens of pairwise verdicts, each at
95 %; some are then "significant" by chance alone. Holm (1979) controls the family-wise error rate
(the chance of at least one false verdict in the whole family) at α under any dependence between
the tests — comparisons that share a variant's runs are dependent — and rejects everything
Bonferroni rejects, and often more. Adjusted p values: sort the m p values ascending,
p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)); a verdict survives when p̃ < α.

What the family is, is the caller's choice and must be stated: the report's is every verdict its
comparison table shows (analysis.stats.variant_pairs.pairwise's `family`). The uncorrected interval stays beside
each verdict; Holm adjusts p values, not intervals.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ALPHA = 0.05


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p values in the input's order; NaN (no test) stays NaN and is not in the family.

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
