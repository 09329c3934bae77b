"""Rehearse a multi-node job on one machine: N hosts in network namespaces, each running launch/multinode.sh.

    python -m launch.hostlab --hosts 2 -- bench.train --variant scratch-sync --epochs 1 --limit-train 2048
    python -m launch.hostlab --hosts 2 --rate 200mbit -- bench.collectives --sizes 16M --out c.csv
    python -m launch.hostlab --hosts 2 --cut-at-s 20 --cut-for-s 60 -- bench.train --pg-timeout-s 30 ...
    python -m launch.hostlab --hosts 2 --kill-host 1 --kill-at-s 20 -- bench.train ...

Each host has its own network stack, address (10.213.0.<i+1>) and host name (lab<pid>-host<i>) on a
bridged link, shaped to `--rate` each way with tc's token bucket; the file system is the machine's,
shared as a cluster's would be. Every host runs launch/multinode.sh (NNODES=N, RDZV_HOST = host 0's
address, LOCAL_ADDR and GLOO_SOCKET_IFNAME its own) with MODULE and its flags. Faults: every link
cut for `--cut-for-s` seconds at `--cut-at-s`, or every process of host `--kill-host` SIGKILLed at
`--kill-at-s` (launch.lab_supervisor). Each host's console goes to `--out`/host<i>.log and, prefixed,
to this one. The lab (its namespaces, links and processes) is removed on every way out: success,
failure, Ctrl-C, SIGTERM. Exit code: 0 when every host exits 0, else host 0's code if non-zero, else
the first non-zero host's (a killed host reads 128 + 9); 124 past `--timeout-s`. Flags are checked
first, then root and iproute2, which the lab needs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from bench.argcheck import non_negative_float, non_negative_int, out_dir, positive_float, positive_int
from bench.errors import OneLineParser, UsageError, cli
from launch import lab_supervisor, netns
from launch.torchrun_job import MODULES, REPO, split_argv

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RDZV_PORT = 29500  # each host has its own network stack: no other job's port can collide
MAX_HOSTS = 200    # addresses 10.213.0.1 to .200 on the lab's /24


class Stopped(BaseException):
    """A stop signal reached the lab: its clean-up runs, then it exits 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="launch.hostlab", allow_abbrev=False, description=__doc__.splitlines()[0],
                      epilog=f"After --: MODULE ({', '.join(MODULES)}) and its flags.")
    p.add_argument("--hosts", type=positive_int, default=2, metavar="N", help="hosts (network namespaces), "
                   f"one rank each, at most {MAX_HOSTS}")
    p.add_argument("--rate", metavar="RATE", help="shape every host's link to RATE each way, tc's syntax "
                   "(200mbit, 1gbit); default: unshaped")
    p.add_argument("--cut-at-s", type=non_negative_float, metavar="S", help="cut every link S seconds after "
                   "the hosts start")
    p.add_argument("--cut-for-s", type=positive_float, metavar="D", help="... for D seconds, then restore it")
    p.add_argument("--kill-host", type=non_negative_int, metavar="K", help="SIGKILL every process of host K ...")
    p.add_argument("--kill-at-s", type=non_negative_float, metavar="S", help="... S seconds after the hosts start")
    p.add_argument("--clock-from", metavar="TEXT", help="count the fault times from the first console line of "
                   "any host containing TEXT (e.g. 'epoch 1/'), not from the start")
    p.add_argument("--timeout-s", type=positive_int, default=3600, metavar="S", help="kill hosts still "
                   "running after S seconds, exit 124")
    p.add_argument("--out", type=out_dir, default="runs/hostlab", metavar="DIR", help="the hosts' console "
                   "logs and lab.json")
    return p


def check_flags(args) -> None:
    """The lab's own flags, creating nothing; UsageError naming the flag."""
    if args.hosts > MAX_HOSTS:
        raise UsageError(f"--hosts {args.hosts}: at most {MAX_HOSTS} hosts")
    if (args.cut_at_s is None) != (args.cut_for_s is None):
        raise UsageError("--cut-at-s S and --cut-for-s D go together: give both")
    if (args.kill_host is None) != (args.kill_at_s is None):
        raise UsageError("--kill-host K and --kill-at-s S go together: give both")
    if args.kill_host is not None and args.kill_host >= args.hosts:
        raise UsageError(f"--kill-host {args.kill_host}: hosts are numbered 0 to {args.hosts - 1}")
    if args.rate:
        netns.rate_bits(args.rate)


def check(args, rest: list[str]) -> tuple[str, list[str], list[str]]:
    """(module, its flags, where its results go), or UsageError: the lab's flags, the module's
    (bench.train's at the lab's world size), then root and the tools; creates nothing."""
    check_flags(args)
    if not rest or rest[0] not in MODULES:
        raise UsageError(f"name the module after --: one of {', '.join(MODULES)} (got {rest[0] if rest else 'none'})")
    module, module_args = rest[0], rest[1:]
    if module == "bench.train":
        from launch import preflight
        results = [str(preflight.check_train_args(module_args, args.hosts, prog="launch.hostlab",
                                                  create=False).run_dir)]
    else:
        results = [module_args[i + 1] for i, a in enumerate(module_args[:-1]) if a == "--out"]
        results += [a.split("=", 1)[1] for a in module_args if a.startswith("--out=")]
    netns.check_can_run()
    return module, module_args, results


def host_command(lab: netns.Lab, host: netns.Host, module: str, module_args: list[str],
                 hosts_file: Path) -> tuple[list[str], dict]:
    """The command and environment of one host: launch/multinode.sh inside its namespace, under its name."""
    env = {**os.environ, "NNODES": str(len(lab.hosts)), "NPROC_PER_NODE": "1", "RDZV_HOST": lab.hosts[0].address,
           "RDZV_PORT": str(RDZV_PORT), "RDZV_ID": lab.tag, "LOCAL_ADDR": host.address, "MODULE": module,
           "GLOO_SOCKET_IFNAME": netns.IFNAME, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)  # a lab started from inside a job is still its own job
    # A UTS namespace of its own, so the host name is the host's alone, and the lab's hosts file over
    # /etc/hosts in the mount namespace `ip netns exec` makes (a cluster resolves its nodes' names too).
    argv = [netns.tool("ip"), "netns", "exec", host.netns, netns.tool("unshare"), "--uts", "--",
            "sh", "-c", 'hostname "$0" && mount --bind "$1" /etc/hosts && shift && exec "$@"', host.name,
            str(hosts_file.resolve()), "bash", str(REPO / "launch" / "multinode.sh"), *module_args]
    return argv, env


def write_hosts_file(lab: netns.Lab, path: Path) -> Path:
    """/etc/hosts of the lab's hosts: every host's name and address (also as the IPv4-mapped IPv6
    address a dual-stack socket reports its peer by), and localhost."""
    path.write_text("127.0.0.1 localhost\n" + "".join(f"{h.address} {h.name}\n::ffff:{h.address} {h.name}\n"
                                                      for h in lab.hosts))
    return path


def _say(text: str) -> None:
    print(f"launch.hostlab: {text}", flush=True)


def _start_hosts(lab: netns.Lab, args, module: str, module_args: list[str],
                 procs: list[subprocess.Popen]) -> tuple[lab_supervisor.Clock, list]:
    """Start every host's launcher (appended to `procs` as it starts, for the clean-up) and its pump."""
    hosts_file, clock = write_hosts_file(lab, args.out / "hosts"), lab_supervisor.Clock(args.clock_from)
    for h in lab.hosts:
        argv, env = host_command(lab, h, module, module_args, hosts_file)
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True))
    return clock, [lab_supervisor.pump(p, h, args.out / f"host{h.index}.log", clock) for p, h in zip(procs, lab.hosts)]


def run_lab(args, module: str, module_args: list[str], results: list[str]) -> int:
    """Make the lab, run the hosts to their end, record lab.json, remove the lab; the lab's exit code."""
    lab = netns.plan(args.hosts)
    args.out.mkdir(parents=True, exist_ok=True)
    if stale := netns.remove_stale():
        _say(f"removed {len(stale)} namespace(s) left by labs that were killed: {', '.join(stale)}")
    procs: list[subprocess.Popen] = []
    try:
        netns.create(lab, netns.rate_bits(args.rate) if args.rate else None)
        _say(f"{len(lab.hosts)} host(s) on a bridge, links {'shaped to ' + args.rate if args.rate else 'unshaped'}: "
             + ", ".join(f"host {h.index} {h.name} {h.address}" for h in lab.hosts))
        clock, pumps = _start_hosts(lab, args, module, module_args, procs)
        codes, events = lab_supervisor.supervise(lab, procs, args, clock, _say)
        for t in pumps:
            t.join(timeout=5)
        record = {"module": module, "args": module_args, "rate": args.rate, "faults": events, "results": results,
                  "hosts": [{**asdict(h), "exit_code": c} for h, c in zip(lab.hosts, codes)]}
        (args.out / "lab.json").write_text(json.dumps(record, indent=2) + "\n")
        for r in results:
            _say(f"results: {r}")
        _say(f"host logs and lab.json: {args.out}; exit codes: "
             + ", ".join(f"host {i} {'still running (killed at --timeout-s)' if c is None else c}"
                         for i, c in enumerate(codes)))
        return lab_supervisor.lab_code(codes)
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)  # the clean-up itself is not interrupted
        netns.remove(lab)
        for p in procs:
            p.wait()
        _say(f"removed the lab's {len(lab.hosts) + 1} namespaces, their links and processes")


def _stop(signum, frame):
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    ours, rest = split_argv(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    args.out = Path(args.out)

    def body() -> int:
        module, module_args, results = check(args, rest)
        for s in STOP_SIGNALS:
            signal.signal(s, _stop)
        try:
            return run_lab(args, module, module_args, results)
        except Stopped as e:
            print(f"launch.hostlab: stopped by {e}; the lab is removed", file=sys.stderr)
            return 128 + e.signum
    return cli("launch.hostlab", body)
