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
`--kill-at-s`. Each host's console goes to `--out`/host<i>.log and, prefixed, to this one. The
lab (its namespaces, links and processes) is removed on every way out: success, failure, Ctrl-C,
SIGTERM. Exit code: 0 when every host exits 0, else host 0's code if non-zero, else the first
non-zero host's (a killed host reads 128 + 9); 124 past `--timeout-s`. Needs root and iproute2.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from bench.errors import OneLineParser, UsageError, cli
from bench.run.config import non_negative_int
from launch import netns
from launch.run import MODULES, REPO, split_argv

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RDZV_PORT = 29500  # each host has its own network stack: no other job's port can collide
EXIT_TIMEOUT = 124


class Stopped(BaseException):
    """A stop signal reached the lab: its clean-up runs, then it exits 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="launch.hostlab", allow_abbrev=False, description=__doc__.splitlines()[0],
                      epilog="After --: MODULE (bench.train, bench.collectives, bench.timing) and its flags.")
    p.add_argument("--hosts", type=int, default=2, metavar="N", help="hosts (network namespaces), one rank "
                   "each (default %(default)s)")
    p.add_argument("--rate", metavar="RATE", help="shape every host's link to RATE each way, tc's syntax "
                   "(200mbit, 1gbit); default: unshaped")
    p.add_argument("--cut-at-s", type=float, metavar="S", help="cut every link S seconds after the hosts start")
    p.add_argument("--cut-for-s", type=float, metavar="D", help="... for D seconds, then restore it")
    p.add_argument("--kill-host", type=int, metavar="K", help="SIGKILL every process of host K ...")
    p.add_argument("--kill-at-s", type=float, metavar="S", help="... S seconds after the hosts start")
    p.add_argument("--clock-from", metavar="TEXT", help="count the fault times from the first console line of "
                   "any host containing TEXT (e.g. 'epoch 1/'), not from the start")
    p.add_argument("--timeout-s", type=non_negative_int, default=3600, metavar="S", help="kill hosts still "
                   "running after S seconds, exit 124 (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/hostlab"), metavar="DIR", help="the hosts' console "
                   "logs and lab.json (default %(default)s)")
    return p


def check(args, rest: list[str]) -> tuple[str, list[str], list[str]]:
    """(module, its flags, where its results go), or UsageError; bench.train's flags are checked at
    the lab's world size, creating nothing."""
    if not rest or rest[0] not in MODULES:
        raise UsageError(f"name the module after --: one of {', '.join(MODULES)} (got {rest[0] if rest else 'none'})")
    module, module_args = rest[0], rest[1:]
    if not 1 <= args.hosts <= 200:
        raise UsageError(f"--hosts must be between 1 and 200 (got {args.hosts})")
    if (args.cut_at_s is None) != (args.cut_for_s is None) or (args.cut_at_s or 0) < 0 or (args.cut_for_s or 1) <= 0:
        raise UsageError("--cut-at-s S and --cut-for-s D go together: S >= 0, D > 0 seconds")
    if (args.kill_host is None) != (args.kill_at_s is None) or (args.kill_at_s or 0) < 0:
        raise UsageError("--kill-host K and --kill-at-s S go together: S >= 0 seconds")
    if args.kill_host is not None and not 0 <= args.kill_host < args.hosts:
        raise UsageError(f"--kill-host {args.kill_host}: hosts are numbered 0 to {args.hosts - 1}")
    if args.rate:
        netns.rate_bits(args.rate)
    netns.check_can_run()
    if module == "bench.train":
        from launch import preflight
        return module, module_args, [str(preflight.check_train_args(module_args, args.hosts, prog="launch.hostlab",
                                                                    create=False).run_dir)]
    outs = [module_args[i + 1] for i, a in enumerate(module_args[:-1]) if a == "--out"]
    return module, module_args, outs + [a.split("=", 1)[1] for a in module_args if a.startswith("--out=")]


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


class Clock:
    """Seconds since the lab started (`elapsed`), and on the fault clock (`now`), which starts at once
    or at the first console line holding `text`."""

    def __init__(self, text: str | None):
        self.text = text
        self.start = time.monotonic()
        self.zero = None if text else self.start

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def saw(self, line: str) -> None:
        if self.zero is None and self.text in line:
            self.zero = time.monotonic()

    def now(self) -> float | None:
        return None if self.zero is None else time.monotonic() - self.zero


def _pump(proc: subprocess.Popen, host: netns.Host, log: Path, clock: Clock) -> threading.Thread:
    """Copy a host's console to its log and, prefixed with the host, to this console."""
    def copy():
        with open(log, "w") as f:
            for line in proc.stdout:
                clock.saw(line)
                f.write(line)
                f.flush()
                print(f"host{host.index} {clock.elapsed():6.1f}s| {line}", end="", flush=True)
    t = threading.Thread(target=copy, daemon=True)
    t.start()
    return t


def supervise(lab: netns.Lab, procs: list[subprocess.Popen], args, clock: Clock,
              say) -> tuple[list[int | None], list[dict]]:
    """Wait for the hosts, injecting the faults on time; (exit codes, None for a host still running at
    the timeout; the faults as they happened, seconds on the fault clock)."""
    events = []
    todo = []
    if args.cut_at_s is not None:
        todo += [(args.cut_at_s, "cut"), (args.cut_at_s + args.cut_for_s, "restore")]
    if args.kill_host is not None:
        todo.append((args.kill_at_s, "kill"))
    todo.sort()
    codes: list[int | None] = [None] * len(procs)
    while any(c is None for c in codes) and clock.elapsed() < args.timeout_s:
        now = clock.now()
        while todo and now is not None and todo[0][0] <= now:
            _, what = todo.pop(0)
            if what == "kill":
                n = netns.kill_all(lab.hosts[args.kill_host].netns)
                say(f"{clock.elapsed():.1f} s (fault clock {now:.1f} s): "
                    f"SIGKILLed host {args.kill_host}'s {n} processes")
            else:
                netns.set_links(lab, up=what == "restore")
                say(f"{clock.elapsed():.1f} s (fault clock {now:.1f} s): "
                    f"{'links restored' if what == 'restore' else 'every link cut'}")
            events.append({"fault": what, "clock_s": round(now, 3), "elapsed_s": round(clock.elapsed(), 3)})
        for i, p in enumerate(procs):
            if codes[i] is None and (rc := p.poll()) is not None:
                codes[i] = 128 - rc if rc < 0 else rc
                say(f"{clock.elapsed():.1f} s: host {i} ({lab.hosts[i].name}) exited {codes[i]}")
        time.sleep(0.1)
    return codes, events


def lab_code(codes: list[int | None]) -> int:
    """The lab's exit code from its hosts'.

    >>> lab_code([0, 0]), lab_code([1, 137]), lab_code([0, 75]), lab_code([0, None])
    (0, 1, 75, 124)
    """
    if any(c is None for c in codes):
        return EXIT_TIMEOUT
    return next((c for c in codes if c), 0)


def run_lab(args, module: str, module_args: list[str], results: list[str]) -> int:
    lab = netns.plan(args.hosts)
    say = lambda text: print(f"launch.hostlab: {text}", flush=True)  # noqa: E731
    args.out.mkdir(parents=True, exist_ok=True)
    if stale := netns.remove_stale():
        say(f"removed {len(stale)} namespace(s) left by labs that were killed: {', '.join(stale)}")
    procs: list[subprocess.Popen] = []
    try:
        netns.create(lab, netns.rate_bits(args.rate) if args.rate else None)
        say(f"{len(lab.hosts)} host(s) on a bridge, links {'shaped to ' + args.rate if args.rate else 'unshaped'}: "
            + ", ".join(f"host {h.index} {h.name} {h.address}" for h in lab.hosts))
        hosts_file, clock = write_hosts_file(lab, args.out / "hosts"), Clock(args.clock_from)
        for h in lab.hosts:
            argv, env = host_command(lab, h, module, module_args, hosts_file)
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))
        pumps = [_pump(p, h, args.out / f"host{h.index}.log", clock) for p, h in zip(procs, lab.hosts)]
        codes, events = supervise(lab, procs, args, clock, say)
        for t in pumps:
            t.join(timeout=5)
        record = {"module": module, "args": module_args, "rate": args.rate, "faults": events, "results": results,
                  "hosts": [{**asdict(h), "exit_code": c} for h, c in zip(lab.hosts, codes)]}
        (args.out / "lab.json").write_text(json.dumps(record, indent=2) + "\n")
        for r in results:
            say(f"results: {r}")
        say(f"host logs and lab.json: {args.out}; exit codes: "
            + ", ".join(f"host {i} {'still running (killed at --timeout-s)' if c is None else c}"
                        for i, c in enumerate(codes)))
        return lab_code(codes)
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)  # the clean-up itself is not interrupted
        netns.remove(lab)
        for p in procs:
            p.wait()
        say(f"removed the lab's {len(lab.hosts) + 1} namespaces, their links and processes")


def _stop(signum, frame):
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    ours, rest = split_argv(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)

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


if __name__ == "__main__":
    sys.exit(main())
