"""The compatibility matrix as markdown: the report's section, and the table of docs/compatibility.md
(written by ``python -m analysis.compat_table``).

Each case is a row, linked to the pytorch/pytorch issues that motivated it and saying what passing
means (bench.rundir.COMPAT_CASES); each variant a column. Under the matrix, the cells that did not
pass with their detail.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.render.mdtable import to_markdown
from analysis.transform.compat_matrix import compat_matrix, compat_notes, groups
from bench import rundir
from bench.errors import UsageError

BEGIN, END = "<!-- compat-table:begin -->", "<!-- compat-table:end -->"


def issue_links(case: str) -> str:
    """'fp16-autocast' -> '[#20634](https://github.com/pytorch/pytorch/issues/20634), [#96203](…)'."""
    numbers = rundir.COMPAT_CASES.get(case, ("", ()))[1]
    return ", ".join(f"[#{n}]({rundir.COMPAT_ISSUE_URL.format(n)})" for n in numbers) or "baseline"


def _sentence(meta: dict, part: pd.DataFrame) -> str:
    backends = sorted(set(part["backend"]) - {"none"})
    counts = part["status"].value_counts()
    tally = ", ".join(f"{counts[s]} {s}" for s in rundir.COMPAT_STATUSES if s in counts)
    return (f"torch {meta['torch']} on {meta['device']}; two-rank cells over "
            f"{', '.join(backends) or 'no backend (none ran)'}. {len(part)} cells: {tally}. "
            "×r: the step time over the same variant's float32 contiguous eager step on the same "
            f"shape; ~: those step times were noisy (IQR / median > {rundir.NOISY_IQR_OVER_MEDIAN:.0%}).")


def matrix_markdown(df: pd.DataFrame, heading: str = "###") -> str:
    """Per torch version and device: a sentence, the matrix, and the details of the cells that did
    not pass."""
    out = []
    for meta, part in groups(df):
        wide = compat_matrix(part)
        wide.insert(1, "issues", [issue_links(c) for c in wide["case"]])
        wide.insert(2, "passes when", [rundir.COMPAT_CASES.get(c, ("",))[0] for c in wide["case"]])
        wide["case"] = [f"`{c}`" for c in wide["case"]]
        notes = compat_notes(part)
        out += [f"{heading} torch {meta['torch']}, {meta['device']}", "", _sentence(meta, part), "",
                to_markdown(wide), ""]
        if len(notes):
            out += ["Cells that did not pass:", "", to_markdown(notes), ""]
    return "\n".join(out)


def compat_section(df: pd.DataFrame) -> str:
    """The report's "Compatibility" section; '' when no matrix was given or found."""
    if df.empty:
        return ""
    return "\n".join(["## Compatibility", "",
                      "What each BN variant survives, from `python -m bench.compat`: each cell is a "
                      "small real check run in its own processes with its own time limit "
                      "(docs/compatibility.md describes the cases).", "",
                      matrix_markdown(df)])


def write_into(page: Path, block: str) -> None:
    """Replace the text between BEGIN and END in `page` with `block`."""
    text = page.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise UsageError(f"{page} needs one {BEGIN} line and, after it, one {END} line")
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    rundir.atomic_write_text(page, f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}")
