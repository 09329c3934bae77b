"""Comparison report from run directories: report.md, report.html (plots embedded), summary.csv.

    python -m analysis.report RUN_DIR_OR_PARENT... -o REPORT_DIR [--resolve 0.5pt] [--resolve 5%]
                              [--compat CSV] [--collectives CSV... | --preset NAME]

--resolve names a difference to resolve: the sweep section then gives, for each comparison with two
or more seeds, the seeds per variant needed to find it with 80 % power (docs/statistics.md).
A compatibility matrix (python -m bench.compat) is shown when one is found: every compat.csv under
the given folders, and any named with --compat.
With --collectives or --preset the report ends with "At scale (predicted)" (analysis.scale).
"""
from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import markdown

from analysis.load.compat_csv import find_compat, load_compat
from analysis.load.micro_csv import load_micro
from analysis.load.reference import REFERENCE_ROWS
from analysis.load.run_dirs import (load_bn_params, load_metrics, load_rank_hosts, load_runs, load_skipped,
                                    load_step_times)
from analysis.load.timing_dirs import load_timing
from analysis.load.trace_dirs import load_traced_runs
from analysis.render import (compat_section, findings_section, kernels_section, runs_section,
                             small_batch_section, steps_section, sweep_section, timing_section)
from analysis.render.labels import run_labels
from analysis.stats.interleaved import Speed
from analysis.stats.power import ResolveTarget, parse_targets
from analysis.stats.seed_groups import group_stats
from bench.argcheck import in_file, in_path, out_dir
from bench.errors import OneLineParser, UsageError, cli, one_line_warnings

HTML_HEAD = """<!doctype html><html><head><meta charset="utf-8"><title>bnbench report</title><style>
body{font-family:system-ui,sans-serif;max-width:1320px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}img{max-width:100%}code{background:#f5f5f5}</style></head><body>
"""


def _embed_images(html: str, out_dir: Path) -> str:
    """Inline every local PNG as a data URI, so report.html is one self-contained file."""
    def repl(m: re.Match) -> str:
        src = out_dir / m.group(1)
        if not src.is_file():
            return m.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(src.read_bytes()).decode()}"'
    return re.sub(r'src="([^":]+\.png)"', repl, html)


def build(paths: list[str], out_dir: str | Path, resolve: tuple[ResolveTarget, ...] = (),
          compat: tuple[str, ...] = (), collectives: list[str] | None = None, preset: str | None = None,
          micro: list[str] | None = None) -> Path:
    """Write the report for the run directories under `paths` into out_dir; return report.md's path.

    `resolve`: differences to resolve, for the sweep section's seeds-needed column. `compat`:
    compatibility CSVs shown besides those found under `paths`. `collectives` (bench.collectives
    CSVs) or `preset` adds the "At scale (predicted)" section. `micro`: bench.micro CSVs of the runs'
    device, for the per-layer BN table's ratio to a copy."""
    out_dir = Path(out_dir)
    runs, timing = load_runs(paths), load_timing(paths)
    if runs.empty and timing.runs.empty:
        raise FileNotFoundError(f"no run directories (with config.json) under {', '.join(map(str, paths))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    speed = Speed.of(timing)
    if runs.empty:  # only timing runs: their findings and table are the whole report
        return _write(out_dir, "\n".join(["# bnbench report", "", f"{len(timing.runs)} timing run(s) from "
                                          f"{', '.join(map(str, paths))}.", "",
                                          findings_section.findings_section(runs, load_step_times(runs), speed),
                                          timing_section.timing_section(speed)]))
    runs_section.summary_table(runs, REFERENCE_ROWS).to_csv(out_dir / "summary.csv", index=False)
    labels, steps = run_labels(runs), load_step_times(runs)
    sections = [
        "# bnbench report", "",
        f"{len(runs)} run(s) from {', '.join(map(str, paths))}; devices: "
        f"{', '.join(sorted(map(str, runs['device'].dropna().unique())))}.", "",
        findings_section.findings_section(runs, steps, speed),
        timing_section.timing_section(speed),
        runs_section.not_run_section(load_skipped(paths)),
        runs_section.runs_section(runs, labels),
        runs_section.reference_section(REFERENCE_ROWS),
        runs_section.curves_section(load_metrics(runs), load_bn_params(runs), labels, out_dir),
        steps_section.steps_section(steps, out_dir, labels, load_rank_hosts(runs)),
        sweep_section.sweep_section(runs, out_dir, resolve=resolve, steps=steps),
        small_batch_section.small_batch_section(group_stats(runs), out_dir),
        kernels_section.kernel_section(load_traced_runs([Path(p) for p in runs["path"]]), out_dir, labels,
                                       load_micro(micro) if micro else None),
        compat_section.compat_section(load_compat(find_compat([*paths, *compat]))),
    ]
    if collectives or preset:
        from analysis import scale  # only reports that ask for a prediction pay for the model
        sections.append(scale.section(paths, out_dir, collectives, preset))
    return _write(out_dir, "\n".join(sections))


def _write(out_dir: Path, md: str) -> Path:
    """report.md and report.html (images inlined) in out_dir; report.md's path."""
    (out_dir / "report.md").write_text(md)
    body = markdown.markdown(md, extensions=["tables"])
    (out_dir / "report.html").write_text(HTML_HEAD + _embed_images(body, out_dir) + "\n</body></html>\n")
    return out_dir / "report.md"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="analysis.report", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=in_path, help="run directories or folders holding them")
    p.add_argument("-o", "--out", default="reports/latest", type=out_dir, help="report directory")
    p.add_argument("--resolve", action="append", metavar="DIFF",
                   help="a difference to resolve, e.g. 0.5pt (accuracy points) or 5%% (relative, for "
                        "throughput and step time): adds the seeds needed per comparison; once per kind")
    p.add_argument("--compat", action="append", default=[], type=in_file, metavar="CSV",
                   help="a compatibility matrix from python -m bench.compat to show (compat.csv files "
                        "under the run folders are found without it); repeatable")
    p.add_argument("--collectives", nargs="+", type=in_file, metavar="CSV", help="bench.collectives CSV(s): add the At-scale section")
    p.add_argument("--preset", help="collective cost preset (analysis/load/scale_presets.toml): add the At-scale section")
    p.add_argument("--micro", action="append", type=in_file, metavar="CSV",
                   help="a bench.micro CSV from the runs' device: the per-layer BN table then gives each "
                        "layer's time over a copy's (repeatable)")
    args = p.parse_args(argv)
    return cli("analysis.report", lambda: _run(args))


def _run(args) -> int:
    with one_line_warnings():
        try:
            path = build(args.paths, args.out, parse_targets(args.resolve), tuple(args.compat),
                         args.collectives, args.preset, args.micro)
        except FileNotFoundError as e:
            raise UsageError(str(e)) from None
    print(f"report: {path} (and report.html, summary.csv) in {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
