"""The README's picture: a small real comparison on this machine, photographed in headless Chromium.

    python -m devtools.readme_picture [--out docs/img/report.png] [--keep DIR]    (make readme-picture)

Runs ``launch.compare`` (every variant, the launcher this machine calls for) with a short setting,
then has Debian's ``chromium`` (taken from PATH; nothing is downloaded) take a screenshot of the top
of ``report.html``: the Findings, the runs table and the training curves. The runs and the report go
to a temporary folder unless ``--keep DIR`` names one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.argcheck import out_dir, out_file
from bench.errors import OneLineParser, UsageError, cli

# Short enough for a 2-core CPU machine (about two minutes), long enough that every run has timed
# steps after the profiler window and a curve of several points.
TRAIN_FLAGS = ("--epochs", "3", "--limit-train", "16384", "--limit-test", "2000")
# A comparison this short sizes its timing phase to the fewest rounds (10), whose A/A interval is too
# wide to show what the phase does; 200 rounds of 1 step add about half a minute here.
TIMING_FLAGS = ("--timing-rounds", "200")
# The report is laid out for a 1400-px page (its body is at most 1320 px wide); the picture shows the
# top 2000 px: Findings, Not run, Runs, the reference numbers and the training curves.
WIDTH_PX, HEIGHT_PX = 1400, 2000
SHOT_TIMEOUT_S = 120


def screenshot(html: Path, png: Path, scratch: Path) -> None:
    """`html`'s top WIDTH_PX × HEIGHT_PX pixels as `png`, taken by headless Chromium."""
    browser = shutil.which("chromium")
    if browser is None:
        raise UsageError("chromium not found on PATH: install Debian's chromium (make browser does)")
    png.parent.mkdir(parents=True, exist_ok=True)
    # A throwaway profile, so the user's own Chromium settings are neither read nor touched.
    # --no-sandbox: Chromium's sandbox cannot start as root (containers); the page is our own report.
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-device-scale-factor=1", f"--user-data-dir={scratch / 'chromium-profile'}",
           f"--window-size={WIDTH_PX},{HEIGHT_PX}", f"--screenshot={png.resolve()}", html.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SHOT_TIMEOUT_S)
    if done.returncode != 0 or not png.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"chromium could not take the screenshot (exit {done.returncode}: {last})")


def make_picture(out: Path, work: Path) -> int:
    """Run the comparison into `work`, then photograph its report into `out`; the comparison's exit code."""
    from launch import variant_compare as compare  # imports torch: only once the arguments are known to be good

    out, home = out.resolve(), os.getcwd()
    # Run from inside `work` with relative folders, so the picture shows `runs`, not a temporary path.
    os.chdir(work)
    try:
        rc = compare.main(["--out", "runs", "--report", "report", *TRAIN_FLAGS, *TIMING_FLAGS])
    finally:
        os.chdir(home)
    html = work / "report" / "report.html"
    if not html.is_file():
        print(f"devtools.readme_picture: no report was written (launch.compare exit {rc})", file=sys.stderr)
        return rc or 1
    screenshot(html, out, work)
    print(f"devtools.readme_picture: {out} from {html}", flush=True)
    return rc


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="devtools.readme_picture", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=out_file, default="docs/img/report.png",
                   help="where the PNG goes (default %(default)s)")
    p.add_argument("--keep", type=out_dir, metavar="DIR",
                   help="keep the runs and the report in DIR (default: a temporary folder, removed)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out, args.keep = Path(args.out), args.keep and Path(args.keep)

    def body() -> int:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            return make_picture(args.out, args.keep)
        with tempfile.TemporaryDirectory(prefix="bnbench-picture-") as tmp:
            return make_picture(args.out, Path(tmp))

    return cli("devtools.readme_picture", body)


if __name__ == "__main__":
    sys.exit(main())
