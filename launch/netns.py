"""Network namespaces as hosts: make them, shape and cut their links, kill their processes, remove them.

A lab of N hosts is N + 1 namespaces named ``bnlab-<pid>-…`` (the pid of the process that made them,
so labs started side by side never meet): ``…-hub`` holds a bridge, and each host ``…-h<i>`` one end
of a veth pair (``lab0``, address 10.213.0.<i+1>/24) whose other end is a port of the bridge. Every
link is created inside the lab's namespaces, none in the caller's, and no namespace has a route
beyond 10.213.0.0/24, so nothing outside the lab is reachable from it or touched by it; removing the
namespaces removes every link with them. Needs root and iproute2 (``ip``, ``tc``).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from bench.errors import UsageError

PREFIX = "bnlab"
SUBNET = "10.213.0"  # a private test range; each lab has its own copy inside its own namespaces
IFNAME = "lab0"      # each host's interface (the GLOO_SOCKET_IFNAME of its ranks)
BRIDGE = "br0"
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
RATE = re.compile(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)", re.IGNORECASE)
BURST_S, MIN_BURST_BYTES = 0.001, 4096  # the token bucket's depth: 1 ms of the rate, at least one frame
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}  # tc's units: decimal, bits per second


@dataclass(frozen=True)
class Host:
    index: int
    netns: str    # its network namespace
    name: str     # its host name (socket.gethostname() inside it)
    address: str  # its address on the lab's link


@dataclass(frozen=True)
class Lab:
    tag: str                # bnlab-<pid>: the prefix of every namespace of this lab
    hosts: tuple[Host, ...]

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"


def tool(name: str) -> str:
    """Path of an iproute2/util-linux tool, also where PATH lacks the sbin folders; UsageError if absent."""
    found = shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if not found:
        raise UsageError(f"`{name}` not found: install iproute2 / util-linux "
                         "(the host lab needs `ip`, `tc`, `unshare`)")
    return found


def check_can_run() -> None:
    """UsageError unless this process is root and has ip, tc and unshare."""
    if os.geteuid() != 0:
        raise UsageError("the host lab makes network namespaces and needs root: run it as root (CI does)")
    for name in ("ip", "tc", "unshare"):
        tool(name)


def rate_bits(text: str) -> float:
    """tc's rate syntax in bits per second: '200mbit' -> 2e8; UsageError for anything else.

    >>> rate_bits("200mbit"), rate_bits("1.5gbit")
    (200000000.0, 1500000000.0)
    """
    m = RATE.fullmatch(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--rate {text!r}: give bits per second as tc writes them, e.g. 200mbit, 1gbit, 500kbit")
    return float(m.group(1)) * RATE_UNITS[m.group(2).lower()]


def plan(hosts: int, pid: int | None = None) -> Lab:
    """The names and addresses of a lab of `hosts` hosts (nothing is created)."""
    pid = os.getpid() if pid is None else pid
    tag = f"{PREFIX}-{pid}"
    return Lab(tag, tuple(Host(i, f"{tag}-h{i}", f"lab{pid}-host{i}", f"{SUBNET}.{i + 1}") for i in range(hosts)))


def _ip(*args: str) -> None:
    r = subprocess.run([tool("ip"), *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _tc(netns: str, *args: str) -> None:
    r = subprocess.run([tool("ip"), "netns", "exec", netns, tool("tc"), *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"tc {' '.join(args)} in {netns}: {r.stderr.strip()}")


def shape(netns: str, dev: str, bits_per_s: float) -> None:
    """A token bucket on `dev`'s egress: `bits_per_s` sustained, up to 100 ms of queue before packets
    are dropped. The bucket holds 1 ms of the rate (at least 4 KiB, so a full-size frame passes):
    a larger one refills while a training step computes and passes the first part of the next step's
    gradients unshaped, so small all-reduces would beat the rate."""
    burst = max(int(bits_per_s / 8 * BURST_S), MIN_BURST_BYTES)
    _tc(netns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{int(bits_per_s)}bit",
        "burst", str(burst), "latency", "100ms")


def create(lab: Lab, bits_per_s: float | None = None) -> None:
    """Make the lab's namespaces, bridge and links; shape every link both ways when `bits_per_s` is given.
    On failure the caller still calls `remove` (it removes whatever was made)."""
    _ip("netns", "add", lab.hub)
    _ip("-n", lab.hub, "link", "add", BRIDGE, "type", "bridge")
    for dev in ("lo", BRIDGE):
        _ip("-n", lab.hub, "link", "set", dev, "up")
    for h in lab.hosts:
        _ip("netns", "add", h.netns)
        _ip("-n", lab.hub, "link", "add", f"p{h.index}", "type", "veth", "peer", "name", IFNAME, "netns", h.netns)
        _ip("-n", lab.hub, "link", "set", f"p{h.index}", "master", BRIDGE, "up")
        _ip("-n", h.netns, "addr", "add", f"{h.address}/24", "dev", IFNAME)
        for dev in ("lo", IFNAME):
            _ip("-n", h.netns, "link", "set", dev, "up")
        if bits_per_s:  # the host's sending side, and the bridge's side towards it
            shape(h.netns, IFNAME, bits_per_s)
            shape(lab.hub, f"p{h.index}", bits_per_s)


def set_links(lab: Lab, up: bool) -> None:
    """Every host's link up or down at the bridge (a pulled cable: the hosts keep their addresses and
    routes, their packets are lost, and TCP retransmits until the link is back or it gives up)."""
    for h in lab.hosts:
        _ip("-n", lab.hub, "link", "set", f"p{h.index}", "up" if up else "down")


def pids(netns: str) -> list[int]:
    """Processes in `netns` (every process of that host)."""
    r = subprocess.run([tool("ip"), "netns", "pids", netns], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def kill_all(netns: str, sig: int = signal.SIGKILL) -> int:
    """Send `sig` to every process of the host; how many there were."""
    found = pids(netns)
    for pid in found:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(found)


def remove(lab: Lab, grace_s: float = 15.0) -> None:
    """Stop every process of the lab (SIGTERM, then SIGKILL after `grace_s`) and remove its
    namespaces, and with them every link it made. Safe to call on a lab half made or already gone."""
    spaces = [h.netns for h in lab.hosts] + [lab.hub]
    existing = set(names())
    spaces = [s for s in spaces if s in existing]
    if any(kill_all(s, signal.SIGTERM) for s in spaces):
        end = time.monotonic() + grace_s
        while time.monotonic() < end and any(pids(s) for s in spaces):
            time.sleep(0.1)
    for s in spaces:
        while kill_all(s, signal.SIGKILL):
            time.sleep(0.05)
        subprocess.run([tool("ip"), "netns", "del", s], capture_output=True)


def names() -> list[str]:
    """Every network namespace of this machine, by name."""
    r = subprocess.run([tool("ip"), "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def ours(pid: int | None = None) -> list[str]:
    """Namespaces made by the lab of `pid` (default: any lab)."""
    start = f"{PREFIX}-{pid}-" if pid is not None else f"{PREFIX}-"
    return [n for n in names() if n.startswith(start)]


def remove_stale() -> list[str]:
    """Remove the namespaces of labs whose process is gone (killed with SIGKILL, which no clean-up
    survives); the names removed."""
    stale = []
    for n in ours():
        pid = n.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            stale.append(n)
            while kill_all(n):
                time.sleep(0.05)
            subprocess.run([tool("ip"), "netns", "del", n], capture_output=True)
    return stale
