"""The one line a results page names its machine with, rendered from a run's env.json.

    python -m analysis.machine RUN_DIR_OR_ENV_JSON

A results page says on what it was measured: GPU and driver, CUDA, cuDNN and NCCL, CPU, memory,
Python and torch. All of it comes from the env.json a run writes (bench.run.envinfo), so the page
and the run cannot disagree; a field the file does not hold reads "not recorded".
"""
from __future__ import annotations

import sys
from pathlib import Path

from analysis.render.machine_line import machine_line
from bench import rundir
from bench.argcheck import in_path, input_files
from bench.errors import OneLineParser, cli


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="analysis.machine", description=__doc__.splitlines()[0])
    p.add_argument("source", type=in_path, help="a run directory, or its env.json")
    a = p.parse_args(argv)

    def body() -> int:
        path = Path(a.source)
        env_path, = input_files("source", [path / rundir.ENV if path.is_dir() else path])
        print(machine_line(rundir.read_json(env_path)))
        return 0

    return cli("analysis.machine", body)


if __name__ == "__main__":
    sys.exit(main())
