"""launch.hostlab: two hosts in network namespaces with their own names and addresses, a shaped link,
a cut link and a killed host that lose nothing, and a lab that leaves nothing behind.

Needs root and iproute2 (CI runs as root); elsewhere every lab test skips with the reason."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import rundir
from launch import netns
from tests.procs import REPO, env

PG_TIMEOUT_S = 10
MARGIN_S = 10  # a rank's stop after its collective times out: the failure record, on a loaded 2-core machine
TRAIN = ["bench.train", "--variant", "scratch-sync", "--epochs", "2", "--limit-train", "4096", "--batch-size", "64",
         "--limit-test", "200", "--pg-timeout-s", str(PG_TIMEOUT_S)]
COMPARED = ["epoch", "train_loss", "train_acc", "test_acc"]  # what a resumed run must reproduce exactly
STOPPED = re.compile(r"^host(\d+)\s+([\d.]+)s\| bench\.train: rank (\d+) stopped", re.MULTILINE)


def _why_not() -> str | None:
    try:
        netns.check_can_run()
    except Exception as e:  # UsageError: not root, or a tool missing
        return f"launch.hostlab cannot run here: {e}"
    return None


REASON = _why_not()
needs_lab = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def hostlab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.hostlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(OMP_NUM_THREADS="1"), cwd=REPO)


def lab_pid(out: str) -> int:
    return int(re.search(r"host 0 lab(\d+)-host0", out).group(1))


def assert_nothing_left(pid: int) -> None:
    """No namespace of that lab, and no process that was started for it (torchrun's agents carry the
    lab's rendezvous id on their command line; ranks are their children, gone with them)."""
    assert netns.ours(pid) == []
    tag = f"bnlab-{pid}".encode()
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and tag in (proc / "cmdline").read_bytes():
                left.append(proc.name)
        except OSError:
            pass
    assert left == []


def train_lab(tmp: Path, data_dir: Path, *faults: str, resume: bool = False) -> subprocess.CompletedProcess:
    runs = tmp / "runs"
    extra = ["--resume", str(runs / "lenet-scratch-sync-ws2-b64-s0")] if resume else []
    return hostlab("--hosts", "2", "--out", str(tmp / "lab"), *faults, "--", *TRAIN, "--data-dir", str(data_dir),
                   "--out", str(runs), *extra)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, data_dir):
    """An uninterrupted 2-host run: what every interrupted and resumed one must reproduce."""
    tmp = tmp_path_factory.mktemp("hostlab-base")
    p = train_lab(tmp, data_dir)
    return tmp / "runs" / "lenet-scratch-sync-ws2-b64-s0", p


def test_refuses_bad_flags_and_non_root_in_one_line():
    p = subprocess.run([sys.executable, "-m", "launch.hostlab", "--rate", "fast", "--", "bench.train"],
                       capture_output=True, text=True, env=env(), cwd=REPO, timeout=120)
    assert (p.returncode, p.stdout) == (2, "") and len(p.stderr.splitlines()) == 1 and "--rate" in p.stderr
    p = subprocess.run([sys.executable, "-m", "launch.hostlab", "--", "bench.nothing"], capture_output=True, text=True,
                       env=env(), cwd=REPO, timeout=120)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "bench.collectives" in p.stderr
    if os.geteuid() == 0:  # as an ordinary user: one line naming root
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                            "launch.hostlab", "--", "bench.collectives", "--out", "x.csv"],
                           capture_output=True, text=True, env=env(), cwd=REPO, timeout=120)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "root" in p.stderr, p.stderr


@needs_lab
def test_two_hosts_with_their_own_names_and_addresses(baseline, tmp_path):
    run, p = baseline
    assert p.returncode == 0, p.stdout[-3000:]
    envj = rundir.read_json(run / rundir.ENV)
    names = [r["hostname"] for r in envj["ranks"]]
    assert envj["hosts"] == 2 and len(set(names)) == 2 and all(n.endswith(f"-host{i}") for i, n in enumerate(names))
    assert [r["address"] for r in envj["ranks"]] == [f"{netns.SUBNET}.1", f"{netns.SUBNET}.2"]
    assert rundir.read_json(run / rundir.SUMMARY)["status"] == rundir.COMPLETE
    # every rank's trace says which host it ran on; launch.view lists both
    from launch.tensorboard_view import how_to_open, trace_host, view_folders
    traces = sorted((run / rundir.TRACES).glob("rank*.pt.trace.json.gz"))
    assert [trace_host(t) for t in traces] == names
    listing = how_to_open(view_folders([run]), 6006)
    assert all(f"(host {n})" in listing for n in names)
    # the report's per-rank table names the hosts
    from analysis.render.steps_section import STEPS_CSV, steps_section
    from analysis.load.run_dirs import load_rank_hosts, load_runs, load_step_times
    runs = load_runs([run])
    md = steps_section(load_step_times(runs), tmp_path, None, load_rank_hosts(runs))
    per_rank = pd.read_csv(tmp_path / STEPS_CSV)
    assert per_rank.sort_values("rank")["host"].tolist() == names and "its host" in md
    assert_nothing_left(lab_pid(p.stdout))


def _assert_failed_and_resumable(tmp: Path, data_dir: Path, p: subprocess.CompletedProcess, base: Path) -> dict:
    run = tmp / "runs" / base.name
    summary = rundir.read_json(run / rundir.SUMMARY)
    assert summary["status"] == rundir.FAILED and summary["resumable"], p.stdout[-3000:]
    # one line naming the peers it lost (and the collective, where the error came out of one: a
    # reset seen while waiting on DDP's or a BN layer's pending work has no collective on its stack)
    assert "\n" not in summary["failure"] and "lost contact with rank" in summary["failure"], summary["failure"]
    assert not [f.name for f in run.rglob(".*.tmp")]  # no partial file
    assert len(pd.read_csv(run / rundir.METRICS)) == 1  # epoch 1 done, its checkpoint the last one
    assert_nothing_left(lab_pid(p.stdout))
    again = train_lab(tmp, data_dir, resume=True)
    assert again.returncode == 0, again.stdout[-3000:]
    got, want = (pd.read_csv(d / rundir.METRICS)[COMPARED] for d in (run, base))
    pd.testing.assert_frame_equal(got, want)  # exactly the uninterrupted run's
    assert_nothing_left(lab_pid(again.stdout))
    return summary


@needs_lab
def test_a_cut_longer_than_the_timeout_fails_both_hosts_in_time_and_resume_loses_nothing(baseline, tmp_path,
                                                                                       data_dir):
    base, _ = baseline
    p = train_lab(tmp_path, data_dir, "--clock-from", "epoch 1/", "--cut-at-s", "0.5",
                  "--cut-for-s", str(PG_TIMEOUT_S + 8))
    assert p.returncode == 1, p.stdout[-3000:]
    cut = re.search(r"launch\.hostlab: ([\d.]+) s \(fault clock [\d.]+ s\): every link cut", p.stdout)
    cut_at = float(cut.group(1))
    stops = {int(rank): float(t) for _, t, rank in STOPPED.findall(p.stdout)}
    assert sorted(stops) == [0, 1], p.stdout[-3000:]  # both ranks, each on its own host
    assert all(t - cut_at <= PG_TIMEOUT_S + MARGIN_S for t in stops.values()), (cut_at, stops)
    summary = _assert_failed_and_resumable(tmp_path, data_dir, p, base)
    if summary["collective"]:  # the wait that timed out was in a collective call, not in DDP's pending work
        assert f", in {summary['collective']})" in summary["failure"]


@needs_lab
def test_a_killed_host_is_named_and_resume_loses_nothing(baseline, tmp_path, data_dir):
    base, _ = baseline
    p = train_lab(tmp_path, data_dir, "--clock-from", "epoch 1/", "--kill-host", "1", "--kill-at-s", "0.5")
    assert p.returncode == 1 and "host 1 137" in p.stdout, p.stdout[-3000:]
    summary = _assert_failed_and_resumable(tmp_path, data_dir, p, base)
    assert re.search(r"rank 1 on lab\d+-host1", summary["failure"]), summary["failure"]


@needs_lab
def test_a_shaped_link_reads_its_rate(tmp_path):
    rate = "100mbit"
    p = hostlab("--hosts", "2", "--rate", rate, "--out", str(tmp_path / "lab"), "--", "bench.collectives",
                "--sizes", "2M", "--collectives", "all_reduce", "--bn-models", "", "--iters", "3", "--warmup", "1",
                "--out", str(tmp_path / "c.csv"))
    assert p.returncode == 0, p.stdout[-3000:]
    (row,) = pd.read_csv(tmp_path / "c.csv").to_dict("records")
    assert row["hosts"] == 2
    # 2 ranks: busbw = algbw × 2(n−1)/n = algbw; each rank sends S over its own link of R each way
    assert abs(row["busbw_gbps"] / (netns.rate_bits(rate) / 8 / 1e9) - 1) < 0.25, row
    assert_nothing_left(lab_pid(p.stdout))


@needs_lab
def test_sigterm_removes_the_lab_and_its_processes(tmp_path, data_dir):
    proc = subprocess.Popen([sys.executable, "-m", "launch.hostlab", "--hosts", "2", "--out", str(tmp_path / "lab"),
                             "--", *TRAIN, "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=REPO)
    try:
        first = ""
        while "host 0 lab" not in first:
            first += proc.stdout.readline() or pytest.fail(f"the lab ended before it started: {first}")
        pid = lab_pid(first)
        deadline = time.monotonic() + 60
        while not any(netns.pids(n) for n in netns.ours(pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the hosts' launchers are running
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "the lab is removed" in out, first + out
    assert_nothing_left(pid)
