"""The compatibility matrix as markdown: the report's section, and the table of docs/compatibility.md.

    python -m analysis.render_compat docs/results/cpu-2core-2026-12-01/compat.csv --into docs/compatibility.md

Each case is a row, linked to the pytorch/pytorch issues that motivated it and saying what passing
means (bench.rundir.COMPAT_CASES); each variant a column. Under the matrix, the cells that did not
pass with their detail. `--into` replaces what lies between the page's BEGIN and END markers and
leaves the rest of the page as written; without it the markdown goes to stdout.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis.compat import compat_matrix, compat_notes, find_compat, groups, load_compat
from analysis.mdtable import to_markdown
from bench import rundir
from bench.errors import OneLineParser, UsageError, cli, one_line_warnings

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


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="analysis.render_compat", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+",
                   help=f"compatibility CSVs, or folders holding {rundir.COMPAT_CSV} files")
    p.add_argument("--into", help="markdown page whose marked block is replaced (default: print)")
    args = p.parse_args(argv)
    return cli("analysis.render_compat", lambda: _run(args.paths, args.into))


def _run(paths: list[str], into: str | None) -> int:
    with one_line_warnings():
        df = load_compat(find_compat(paths))
    if df.empty:
        raise UsageError(f"no compatibility rows in {', '.join(paths)}")
    block = matrix_markdown(df)
    if into is None:
        print(block)
    else:
        write_into(Path(into), block)
        print(f"wrote the matrix into {into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
