"""Open runs in TensorBoard: each run's loss/accuracy curves and its profile under one run name.

    python -m launch.view RUNS... [--port 6006]     # or launch/view.sh RUNS...

RUNS are run directories, folders holding them, or bare folders of ``*.pt.trace.json[.gz]`` files.
TensorBoard (with the torch-tb-profiler plugin) serves on 127.0.0.1 only; it reads a temporary tree
of symbolic links ``<name> -> <run>/traces``, so a run shows as ``<name>`` (not ``<name>/traces``)
in the scalars dashboard and in the PyTorch Profiler tab alike, with workers ``rank0 … rankN``.
The tree is removed when TensorBoard stops (Ctrl-C). See docs/traces.md.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from analysis.load.trace_dirs import find_trace_dirs, run_dir_of
from analysis.load.trace_files import find_trace_files
from bench import rundir  # the format module; it imports no torch
from bench.argcheck import in_path, positive_int
from bench.errors import OneLineParser, UsageError, cli

DEFAULT_PORT = 6006
HOST = "127.0.0.1"
HEAD_BYTES = 16 << 10  # of a trace, decompressed: holds its metadata
PROFILE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")  # what the profiler plugin reads


def view_folders(paths: list[str | Path]) -> dict[str, Path]:
    """Run name → the folder TensorBoard should read for it (``<run>/traces``, or a bare trace folder).

    A run is named by its path below the RUNS argument it was found under (a run passed itself is
    named after its directory); a name met twice gets ``~2``, ``~3``. Run directories count whether
    profiled or not: their ``traces/`` holds the scalars either way.

    >>> view_folders(["/nowhere"])
    {}
    """
    names: dict[str, Path] = {}
    seen: set[Path] = set()
    for arg in map(Path, paths):
        if arg.name == rundir.TRACES and rundir.is_run_dir(arg.parent):
            arg = arg.parent  # a run's traces/ folder stands for the run
        folders = {d.resolve() for d in find_trace_dirs(arg)} if arg.is_dir() else set()
        folders |= {(r / rundir.TRACES).resolve() for r in rundir.find_run_dirs([arg])
                    if (r / rundir.TRACES).is_dir()}
        for folder in sorted(folders - seen):
            seen.add(folder)
            run = run_dir_of(folder)
            name = run.name if run == arg.resolve() else str(run.relative_to(arg.resolve()))
            unique, k = name, 1
            while unique in names:
                k += 1
                unique = f"{name}~{k}"
            names[unique] = folder
    return names


def link_tree(folders: dict[str, Path], root: Path) -> Path:
    """Make ``root/<name>`` a symbolic link to each folder; return ``root``.

    TensorBoard and the profiler plugin both follow links when they walk a logdir.
    """
    for name, folder in folders.items():
        link = root / name
        for parent in link.parents:
            if parent == root:
                break
            if parent.is_symlink():
                # Never create files inside a run the user pointed us at.
                raise ValueError(f"run {name} lies inside run {parent.relative_to(root)}: "
                                 f"pass the two separately")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder, target_is_directory=True)
    return root


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
            "--host", HOST, "--port", str(port)]


def tensorboard_env() -> dict[str, str]:
    """The plugin logs every file it parses at INFO; keep the console for TensorBoard's own lines."""
    return {**os.environ, "TORCH_PROFILER_LOG_LEVEL": os.environ.get("TORCH_PROFILER_LOG_LEVEL", "WARNING")}


def profile_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(PROFILE_SUFFIXES))


def trace_host(path: Path) -> str | None:
    """The host a trace was recorded on (bench.train writes it into the trace's metadata, near the
    top of the file, so only the head is read); None where the trace does not say."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(HEAD_BYTES).decode(errors="replace")
    except (OSError, EOFError):
        return None
    m = re.search(r'"hostname":\s*"([^"]*)"', head)
    return m.group(1) if m else None


def how_to_open(folders: dict[str, Path], port: int) -> str:
    traces = [t for f in folders.values() for t in profile_files(f)]
    lines = [f"TensorBoard: http://{HOST}:{port}/  ({len(folders)} run(s): scalars in SCALARS / TIME SERIES, "
             f"profiles in the PYTORCH_PROFILER tab; Ctrl-C stops it)"]
    unnamed = [name for name, f in folders.items() if not profile_files(f) and find_trace_files(f)]
    if unnamed:
        lines.append(f"not in the profiler tab (trace files not named *.pt.trace.json[.gz]): {', '.join(unnamed)}")
    if traces:
        lines += ["Perfetto: open https://ui.perfetto.dev, 'Open trace file', pick one of these "
                  "(gzip'd JSON is read as is):"]
        hosts = {t: trace_host(t) for t in traces[:8]}
        lines += [f"  {t}" + (f"  (host {hosts[t]})" if hosts[t] else "") for t in traces[:8]]
        if len(traces) > 8:
            lines.append(f"  ... and {len(traces) - 8} more")
    else:
        lines.append("no profiler traces in these runs (trained with profiling off): scalars only")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="launch.view", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=in_path, metavar="RUNS", help="run directories, folders holding them, "
                   "or folders of *.pt.trace.json.gz files")
    p.add_argument("--port", type=positive_int, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT})")
    args = p.parse_args(argv)
    return cli("launch.view", lambda: _run(args.paths, args.port))


def _run(paths: list[str], port: int) -> int:
    missing = [q for q in paths if not Path(q).exists()]
    folders = view_folders([q for q in paths if Path(q).exists()])
    if missing or not folders:
        what = f"{', '.join(missing)} not found" if missing else \
            f"no run directories or trace folders under {', '.join(paths)}"
        raise UsageError(f"{what}: pass the --out folder of bench.train or a run directory")
    # SIGTERM (a closed terminal, a test's finaliser) unwinds like Ctrl-C, so the tree goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    root = Path(tempfile.mkdtemp(prefix="bnbench-view-"))
    try:
        try:
            link_tree(folders, root)
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(how_to_open(folders, port), flush=True)
        return _serve(root, port)
    except KeyboardInterrupt:
        return 0
    finally:
        shutil.rmtree(root)  # removes the links, never what they point to


def _serve(logdir: Path, port: int) -> int:
    """TensorBoard in the foreground; stopped with us, however we stop."""
    tb = subprocess.Popen(tensorboard_command(logdir, port), env=tensorboard_env())
    try:
        return tb.wait()
    finally:
        if tb.poll() is None:
            tb.terminate()
            try:
                tb.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tb.kill()
                tb.wait()

