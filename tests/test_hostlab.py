"""launch.hostlab: two hosts in network namespaces with their own names and addresses, a shaped link,
a cut link and a killed host that lose nothing, and a lab that leaves nothing behind.

Needs root and iproute2 (CI runs as root); elsewhere every lab test skips with the reason. Six labs
in all, each as small as its point allows: one uninterrupted reference run (its records checked,
and the run every resumed one must equal), one run cut and then, resumed, killed, and its final
resume; a short all-reduce on a shaped link; a lab stopped by SIGTERM."""
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

PG_TIMEOUT_S = 10  # low enough to fail fast, high enough for the first barrier of ranks started apart
MARGIN_S = 10  # a rank's stop after its collective times out: the failure record, on a loaded 2-core machine
RUN = "lenet-scratch-sync-ws2-b64-s0"
TRAIN = ["bench.train", "--variant", "scratch-sync", "--epochs", "2", "--limit-train", "1024", "--batch-size", "64",
         "--limit-test", "128", "--pg-timeout-s", str(PG_TIMEOUT_S)]
COMPARED = ["epoch", "train_loss", "train_acc", "test_acc"]  # what a resumed run must reproduce exactly
STOPPED = re.compile(r"^host(\d+)\s+([\d.]+)s\| bench\.train: rank (\d+) stopped", re.MULTILINE)
CUT = re.compile(r"launch\.hostlab: ([\d.]+) s \(fault clock [\d.]+ s\): every link cut")


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


def train_lab(tmp: Path, data_dir: Path, *faults: str, resume: bool = False,
              profile: bool = False) -> subprocess.CompletedProcess:
    runs = tmp / "runs"
    extra = (["--resume", str(runs / RUN)] if resume else []) + ([] if profile else ["--no-profile"])
    p = hostlab("--hosts", "2", "--out", str(tmp / "lab"), *faults, "--", *TRAIN, "--data-dir", str(data_dir),
                "--out", str(runs), *extra)
    assert_nothing_left(lab_pid(p.stdout))
    return p


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted 2-host run, traced: its records are checked, and every resumed run must equal it."""
    tmp = tmp_path_factory.mktemp("hostlab-ref")
    p = train_lab(tmp, data_dir, profile=True)
    assert p.returncode == 0, p.stdout[-3000:]
    return tmp / "runs" / RUN


def test_refuses_bad_flags_in_one_line_and_makes_nothing(tmp_path, capsys, monkeypatch):
    from launch import lab_runner
    monkeypatch.chdir(tmp_path)

    def refused(*args: str) -> str:  # in this process: a command's start costs seconds on a loaded machine
        try:
            rc = lab_runner.main(list(args))
        except SystemExit as e:  # argparse's own refusals
            rc = e.code
        out, err = capsys.readouterr()
        assert (rc, out) == (2, "") and len(err.splitlines()) == 1, (args, err)
        return err
    assert "--rate" in refused("--rate", "fast", "--", "bench.train")
    assert "bench.collectives" in refused("--", "bench.nothing")
    (tmp_path / "f").write_text("")
    assert "--out" in refused("--out", str(tmp_path / "f" / "lab"), "--", "bench.collectives")
    assert "--kill-host" in refused("--kill-host", "2", "--kill-at-s", "1", "--", "bench.collectives")
    assert "--hosts" in refused("--hosts", "0", "--", "bench.collectives")
    assert "--cut-for-s" in refused("--cut-at-s", "1", "--cut-for-s", "0", "--", "bench.collectives")
    assert os.listdir(tmp_path) == ["f"]  # nothing made, not even the default --out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the command as an ordinary user")
def test_refuses_an_ordinary_user_in_one_line_after_checking_its_flags():
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                        "launch.hostlab", "--", "bench.collectives", "--out", "x.csv"],
                       capture_output=True, text=True, env=env(), cwd=REPO, timeout=120)
    assert (p.returncode, p.stdout) == (2, "") and len(p.stderr.splitlines()) == 1 and "root" in p.stderr, p.stderr


@needs_lab
def test_two_hosts_with_their_own_names_and_addresses(reference, tmp_path):
    envj = rundir.read_json(reference / rundir.ENV)
    names = [r["hostname"] for r in envj["ranks"]]
    assert envj["hosts"] == 2 and len(set(names)) == 2 and all(n.endswith(f"-host{i}") for i, n in enumerate(names))
    assert [r["address"] for r in envj["ranks"]] == [f"{netns.SUBNET}.1", f"{netns.SUBNET}.2"]
    assert rundir.read_json(reference / rundir.SUMMARY)["status"] == rundir.COMPLETE
    # every rank's trace says which host it ran on; launch.view lists both
    from launch.tensorboard_view import how_to_open, trace_host, view_folders
    traces = sorted((reference / rundir.TRACES).glob("rank*.pt.trace.json.gz"))
    assert [trace_host(t) for t in traces] == names
    listing = how_to_open(view_folders([reference]), 6006)
    assert all(f"(host {n})" in listing for n in names)
    # the report's per-rank table names the hosts
    from analysis.load.run_dirs import load_rank_hosts, load_runs, load_step_times
    from analysis.render.steps_section import STEPS_CSV, steps_section
    runs = load_runs([reference])
    md = steps_section(load_step_times(runs), tmp_path, None, load_rank_hosts(runs))
    per_rank = pd.read_csv(tmp_path / STEPS_CSV)
    assert per_rank.sort_values("rank")["host"].tolist() == names and "its host" in md


def _failed_after_epoch_1(run: Path, out: str) -> dict:
    """summary.json of a run that failed in epoch 2: one line naming the peers it lost, resumable
    from epoch 1's checkpoint, no partial file."""
    summary = rundir.read_json(run / rundir.SUMMARY)
    assert summary["status"] == rundir.FAILED and summary["resumable"], out[-3000:]
    # (and the collective, where the error came out of one: a reset or timeout seen while waiting on
    # DDP's or a BN layer's pending work has none on its stack)
    assert "\n" not in summary["failure"] and "lost contact with rank" in summary["failure"], summary["failure"]
    if summary["collective"]:
        assert f", in {summary['collective']})" in summary["failure"]
    assert not [f.name for f in run.rglob(".*.tmp")]
    assert len(pd.read_csv(run / rundir.METRICS)) == 1
    return summary


@needs_lab
def test_a_cut_and_a_killed_host_fail_in_time_named_and_resume_loses_nothing(reference, tmp_path, data_dir):
    run = tmp_path / "runs" / RUN
    # 1. every link cut, longer than the timeout, once epoch 1 is recorded: both hosts' ranks stop in time
    p = train_lab(tmp_path, data_dir, "--clock-from", "epoch 1/", "--cut-at-s", "0",
                  "--cut-for-s", str(PG_TIMEOUT_S + 5))
    assert p.returncode == 1, p.stdout[-3000:]
    cut_at = float(CUT.search(p.stdout).group(1))
    stops = {int(rank): float(t) for _, t, rank in STOPPED.findall(p.stdout)}
    assert sorted(stops) == [0, 1], p.stdout[-3000:]  # both ranks, each on its own host
    assert all(t - cut_at <= PG_TIMEOUT_S + MARGIN_S for t in stops.values()), (cut_at, stops)
    _failed_after_epoch_1(run, p.stdout)
    # 2. resumed, and host 1 killed as the run resumes: the survivor names it
    p = train_lab(tmp_path, data_dir, "--clock-from", "resuming", "--kill-host", "1", "--kill-at-s", "0",
                  resume=True)
    assert p.returncode == 1 and "host 1 137" in p.stdout, p.stdout[-3000:]
    summary = _failed_after_epoch_1(run, p.stdout)
    assert re.search(r"rank 1 on lab\d+-host1", summary["failure"]), summary["failure"]
    # 3. resumed once more, both hosts up: exactly the uninterrupted run's metrics
    p = train_lab(tmp_path, data_dir, resume=True)
    assert p.returncode == 0, p.stdout[-3000:]
    got, want = (pd.read_csv(d / rundir.METRICS)[COMPARED] for d in (run, reference))
    pd.testing.assert_frame_equal(got, want)


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
def test_sigterm_removes_the_lab_and_its_processes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "launch.hostlab", "--hosts", "2", "--out", str(tmp_path / "lab"),
                             "--", "bench.collectives", "--out", str(tmp_path / "c.csv")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=REPO)
    try:
        first = ""
        while "host 0 lab" not in first:
            first += proc.stdout.readline() or pytest.fail(f"the lab ended before it started: {first}")
        pid = lab_pid(first)
        deadline = time.monotonic() + 60
        hosts = [h.netns for h in netns.plan(2, pid).hosts]
        while not all(h in netns.names() and netns.pids(h) for h in hosts) and time.monotonic() < deadline:
            time.sleep(0.2)  # until every host's launcher runs
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "the lab is removed" in out, first + out
    assert_nothing_left(pid)
