"""The compatibility matrix as markdown, for docs/compatibility.md or stdout.

    python -m analysis.compat_table docs/results/cpu-2core-2026-12-01/compat.csv --into docs/compatibility.md

`--into` replaces what lies between the page's BEGIN and END markers and leaves the rest of the page
as written; without it the markdown goes to stdout.
"""
from __future__ import annotations

import sys
from pathlib import Path

from analysis.load.compat_csv import find_compat, load_compat
from analysis.render.compat_section import matrix_markdown, write_into
from bench import rundir
from bench.argcheck import in_file, in_path
from bench.errors import OneLineParser, UsageError, cli, one_line_warnings


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="analysis.compat_table", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=in_path,
                   help=f"compatibility CSVs, or folders holding {rundir.COMPAT_CSV} files")
    p.add_argument("--into", type=in_file, help="markdown page whose marked block is replaced (default: print)")
    args = p.parse_args(argv)
    return cli("analysis.compat_table", lambda: _run(args.paths, args.into))


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
