"""Start bench.train under torchrun after checking its flags for the whole world first.

    python -m launch.run --nproc 8 -- --variant sync --epochs 10
    python -m launch.run --nnodes 2 --nproc 8 --rdzv-endpoint node0:29500 --rdzv-id job42 -- --variant sync

Every check bench.train makes before it trains (bench.run.plan.resolve: batch divisible by the world
size, a per-rank batch BN can use, `sync` on CPU ranks, the run directory, ...) runs here first, with
the world size torchrun will make (nodes × processes per node) and without creating anything. Bad
input is one line and exit code 2, before any process starts: no line per rank, no torchrun report.

Then torchrun runs the job: `--standalone` on one node, a c10d rendezvous across nodes
(launch/multinode.sh and launch/slurm.sbatch start this on every node). torchrun passes SIGTERM and
SIGUSR1 on to the ranks, which stop at a step boundary with a checkpoint (bench.run.stepbounds) within
`--grace-s`; this launcher passes the signals it receives to torchrun. The exit code is bench.train's
(docs/reliability.md): torchrun reports every failing job as 1, so a diverged or interrupted run's
code is read back from its summary.json.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_INTERRUPTED, OneLineParser, UsageError, cli
from bench.argcheck import non_negative_int, positive_int
from launch import preflight

REPO = Path(__file__).resolve().parent.parent
# torchrun forwards these to the ranks; SIGUSR1 is what Slurm's --signal usually sends.
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1")
MODULES = ("bench.train", "bench.collectives", "bench.timing")  # what a job may run (launch.hostlab's hosts too)
STATUS_EXIT = {rundir.DIVERGED: EXIT_DIVERGED, rundir.INTERRUPTED: EXIT_INTERRUPTED}


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="launch.run", allow_abbrev=False, description=__doc__.splitlines()[0],
                      epilog="Everything after -- goes to bench.train (or --module).")
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N", help="ranks on this node (default 1; "
                   "usually its GPUs)")
    p.add_argument("--nnodes", type=positive_int, default=1, metavar="N", help="nodes in the job (default 1)")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous of a multi-node job: any one "
                   "node, the same on every node")
    p.add_argument("--rdzv-id", default="bnbench", metavar="ID", help="job id, the same on every node "
                   "(default %(default)s)")
    p.add_argument("--local-addr", metavar="ADDR", help="this node's address as peers reach it")
    p.add_argument("--max-restarts", type=non_negative_int, default=0, metavar="K", help="torchrun restarts after a "
                   "failure; a restarted job resumes from its checkpoint (default %(default)s)")
    p.add_argument("--grace-s", type=non_negative_int, default=30, metavar="S", help="after a stop signal, seconds the "
                   "ranks get to checkpoint and exit before torchrun kills them (default %(default)s)")
    p.add_argument("--module", choices=MODULES, default=MODULES[0], help="what torchrun runs on every rank "
                   "(only bench.train's flags are checked first)")
    return p


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(launcher flags, bench.train flags), split at the first `--`.

    >>> split_argv(["--nproc", "2", "--", "--variant", "nn"])
    (['--nproc', '2'], ['--variant', 'nn'])
    """
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def check(args, train_args: list[str]):
    """bench.train's own checks at this job's world size, creating nothing; the plan (None for another
    module, whose ranks check their own flags), or UsageError."""
    if args.nproc < 1 or args.nnodes < 1:
        raise UsageError(f"--nproc and --nnodes must be at least 1 (got {args.nproc}, {args.nnodes})")
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise UsageError(f"--nnodes {args.nnodes} needs --rdzv-endpoint HOST:PORT, the same on every node")
    if args.module != "bench.train":
        return None
    return preflight.check_train_args(train_args, args.nproc * args.nnodes, prog="launch.run", create=False)


def torchrun_command(args, train_args: list[str]) -> list[str]:
    """The torchrun command line: standalone on one node, a c10d rendezvous across several."""
    if args.nnodes == 1 and not args.rdzv_endpoint:
        where = ["--standalone"]
    else:
        where = ["--nnodes", str(args.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", args.rdzv_endpoint,
                 "--rdzv-id", args.rdzv_id, *(["--local-addr", args.local_addr] if args.local_addr else [])]
    return [sys.executable, "-m", "torch.distributed.run", *where, "--nproc-per-node", str(args.nproc),
            "--max-restarts", str(args.max_restarts), "--signals-to-handle", ",".join(FORWARDED),
            "--shutdown-timeout", str(args.grace_s), "-m", args.module, *train_args]


def run_torchrun(command: list[str]) -> int:
    """Run torchrun with the repository importable from anywhere; pass on the signals this process gets.
    Its exit code, 128 + n for a signal.

    torchrun runs in its own session, so a signal sent to this process's group (Ctrl-C in a terminal,
    `kill -USR1 -PGID`, a scheduler signalling the task's group) reaches it once, from here. Twice, a
    SIGUSR1 would interrupt torchrun's own shutdown, and it would stop the ranks with SIGTERM instead."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    forward = lambda signum, frame: proc.send_signal(signum)  # noqa: E731
    for name in FORWARDED:
        signal.signal(signal.Signals[name], forward)
    rc = proc.wait()
    return 128 - rc if rc < 0 else rc


def exit_code(rc: int, run_dir: Path) -> int:
    """bench.train's code for the job: torchrun's, unless the run says it diverged or was interrupted
    (torchrun turns every non-zero worker exit into 1). A summary this node cannot read leaves rc."""
    if rc == 0:
        return 0
    try:
        status = rundir.read_json(run_dir / rundir.SUMMARY).get("status")
    except (OSError, ValueError):
        return rc
    return STATUS_EXIT.get(status, rc)


def main(argv: list[str] | None = None) -> int:
    ours, train_args = split_argv(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)

    def body() -> int:
        plan = check(args, train_args)
        rc = run_torchrun(torchrun_command(args, train_args))
        return exit_code(rc, plan.run_dir) if plan else rc
    return cli("launch.run", body)

