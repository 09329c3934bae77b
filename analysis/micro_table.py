"""The micro-benchmark's table and bar chart of time over a copy's, from bench.micro CSVs.

    python -m analysis.micro_table micro.csv micro_compiled.csv --out reports/micro
"""
from __future__ import annotations

import sys
from pathlib import Path

from analysis.load.micro_csv import load_micro
from analysis.render.micro_section import micro_section
from bench.argcheck import in_file, input_files, out_dir, output_dir
from bench.errors import OneLineParser, cli


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="analysis.micro_table", description=__doc__.splitlines()[0])
    p.add_argument("csv", nargs="+", type=in_file, help="CSV files written by python -m bench.micro --out")
    p.add_argument("--out", default="reports/micro", type=out_dir, help="folder for micro.md and its chart (default: %(default)s)")
    a = p.parse_args(argv)
    return cli("analysis.micro_table", lambda: _run(a.csv, Path(a.out)))


def _run(csvs: list[str], out: Path) -> int:
    input_files("csv", csvs)
    output_dir("--out", out)
    text = micro_section(load_micro(csvs), out)
    (out / "micro.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
