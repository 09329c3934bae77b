"""What every report figure shares: a legend that sits beside or below the axes, never on the
data, and one way to save. Figures must be made with ``layout="constrained"``, which makes room
for an ``outside`` legend."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402

PLACES = {"right": "outside right upper", "below": "outside lower center"}
# Line styles and open markers of decreasing size: lines that lie on top of each other still show
# as nested markers and alternating dashes.
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def line_style(i: int) -> dict:
    """Keyword arguments for the i-th of several lines on one axes."""
    return {"color": f"C{i % 10}", "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
            "marker": MARKERS[i % len(MARKERS)], "markersize": max(4.0, 11.0 - 1.5 * (i % 6)),
            "markerfacecolor": "none", "markeredgewidth": 1.3}


def legend_outside(fig: Figure, handles=None, labels=None, where: str = "right", ncol: int = 1,
                   title: str | None = None) -> Legend:
    """A figure legend `where` ('right' or 'below') of the axes; handles default to the first axes'
    that has any (duplicates by label dropped, first kept)."""
    if handles is None:
        found: dict[str, object] = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                found.setdefault(lab, h)
        labels, handles = list(found), list(found.values())
    return fig.legend(handles, labels, loc=PLACES[where], ncol=ncol, fontsize=8, frameon=False, title=title)


def save(fig: Figure, path: Path, dpi: int = 110) -> None:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
