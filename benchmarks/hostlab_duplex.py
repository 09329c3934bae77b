"""Does a shaped lab link carry both directions at once, for raw TCP and for gloo? (needs root)

    sudo python benchmarks/hostlab_duplex.py --rate 200mbit

Two hosts of launch.netns, one rank in each. Over one TCP connection: 8 MiB one way, then 8 MiB
each way at once (a thread receives while the main thread sends). Over gloo: the same with
send/recv and isend/irecv, then an all-gather (8 MiB a rank) and an all-reduce (16 MiB). Prints the
median of 3 of each, and MB/s per direction (1 MB = 10^6 bytes).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N = 8 << 20
PORT_TCP, PORT_GLOO = 29700, 29600


def median_s(fn, sync, k: int = 3) -> float:
    """Median of k runs of fn, each timed from a sync to a sync after it (a sender's call can return
    while its data still sits in socket buffers and the link's queue)."""
    fn()
    times = []
    for _ in range(k):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[k // 2]


def raw_tcp(rank: int, server: str) -> dict[str, float]:
    if rank == 0:
        srv = socket.create_server((server, PORT_TCP))
        s, _ = srv.accept()
    else:
        time.sleep(1)
        s = socket.create_connection((server, PORT_TCP))
    payload = b"x" * N

    def recv_all():
        got = 0
        while got < N:
            got += len(s.recv(min(1 << 20, N - got)))

    def sync():
        s.sendall(b"s")
        assert s.recv(1) == b"s"

    def one_way():
        s.sendall(payload) if rank == 0 else recv_all()
        sync()

    def both_ways():
        t = threading.Thread(target=recv_all)
        t.start()
        s.sendall(payload)
        t.join()
        sync()
    return {"TCP one way": median_s(one_way, sync), "TCP both ways": median_s(both_ways, sync)}


def gloo(rank: int, server: str) -> dict[str, float]:
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://{server}:{PORT_GLOO}", rank=rank, world_size=2)
    x, y, z, out = torch.ones(N // 4), torch.empty(N // 4), torch.ones(N // 2), torch.empty(N // 2)

    def one_way():
        dist.send(x, 1) if rank == 0 else dist.recv(y, 0)

    def both_ways():
        for w in (dist.isend(x, 1 - rank), dist.irecv(y, 1 - rank)):
            w.wait()
    return {"gloo one way": median_s(one_way, dist.barrier), "gloo both ways": median_s(both_ways, dist.barrier),
            "gloo all_gather (8 MiB a rank)": median_s(lambda: dist.all_gather_into_tensor(out, x), dist.barrier),
            "gloo all_reduce (16 MiB)": median_s(lambda: dist.all_reduce(z), dist.barrier)}


def worker(rank: int, server: str) -> None:
    results = {**raw_tcp(rank, server), **gloo(rank, server)}
    if rank == 0:
        for name, s in results.items():
            per_direction = (2 * N if "all_reduce" in name else N) / s / 1e6
            print(f"  {name:<32} {s * 1e3:7.0f} ms  {per_direction:6.1f} MB/s per direction", flush=True)


def main() -> int:
    sys.path.insert(0, str(REPO))
    from bench.errors import OneLineParser, cli
    p = OneLineParser(prog="benchmarks/hostlab_duplex.py", description=__doc__.splitlines()[0])
    p.add_argument("--rate", default="200mbit", help="the link's rate, tc's syntax (default %(default)s)")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    from launch import netns
    if a.worker is not None:
        worker(a.worker, f"{netns.SUBNET}.1")
        return 0
    return cli("benchmarks/hostlab_duplex.py", lambda: measure(a.rate))


def measure(rate: str) -> int:
    """Check the rate and root (one line, exit 2), then run both hosts' workers on a lab link."""
    from launch import netns
    netns.rate_bits(rate)
    netns.check_can_run()
    lab = netns.plan(2)
    print(f"{rate}: {netns.rate_bits(rate) / 8e6:.1f} MB/s each way", flush=True)
    try:
        netns.create(lab, netns.rate_bits(rate))
        env = {**os.environ, "GLOO_SOCKET_IFNAME": netns.IFNAME, "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([netns.tool("ip"), "netns", "exec", h.netns, sys.executable, __file__, "--worker",
                                   str(h.index)], env=env, stderr=subprocess.DEVNULL) for h in lab.hosts]
        return max(proc.wait(timeout=600) for proc in procs)
    finally:
        netns.remove(lab)


if __name__ == "__main__":
    sys.exit(main())
