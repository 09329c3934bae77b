"""launch.run: bench.train's checks at the job's world size before torchrun starts (bad input: one
line, exit 2, nothing started or created), the torchrun command it builds, and the exit code it
reads back. Real launches through it are in tests/test_stepbounds.py and tests/test_multinode.py."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

import launch.run
import launch.torchrun_job
from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_USAGE
from tests.procs import python_m

# (launcher flags, bench.train flags, words the one line must hold)
BAD = {
    "indivisible batch": (["--nproc", "2"], ["--batch-size", "255"], ["255", "not divisible by world size 2"]),
    "two nodes make the world": (["--nproc", "2", "--nnodes", "2", "--rdzv-endpoint", "h:1"], ["--batch-size", "6"],
                                 ["6", "world size 4"]),
    "per-rank batch 1, local BN": (["--nproc", "2"], ["--batch-size", "2", "--variant", "nn"], ["per-rank batch 1"]),
    "sync on CPU ranks": (["--nproc", "2"], ["--variant", "sync", "--device", "cpu"], ["--variant sync", "CPU"]),
    "nodes without a rendezvous": (["--nnodes", "2"], [], ["--rdzv-endpoint"]),
    "no process": (["--nproc", "0"], [], ["--nproc"]),
    "unknown variant": (["--nproc", "2"], ["--variant", "batchnorm"], ["--variant", "invalid choice"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_before_anything_starts(case, tmp_path, monkeypatch, capsys):
    ours, train, words = BAD[case]
    monkeypatch.setattr(launch.torchrun_job, "run_torchrun", lambda *a: pytest.fail("torchrun started"))
    out = tmp_path / "runs"
    try:
        rc = launch.run.main([*ours, "--", *train, "--out", str(out), "--limit-train", "512"])
    except SystemExit as e:  # argparse's own exit for a flag it rejects
        rc = e.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == EXIT_USAGE and captured.out == ""
    assert len(lines) == 1 and lines[0].startswith("launch.run: error: "), lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists()  # the checks create nothing, not even --out


def test_two_rank_bad_input_prints_exactly_one_line(tmp_path, data_dir):
    p = python_m("launch.run", "--nproc", "2", "--", "--batch-size", "255", "--data-dir", data_dir,
                 "--out", tmp_path / "runs", timeout=120)
    assert p.returncode == EXIT_USAGE
    assert p.stdout == "" and len(p.stderr.splitlines()) == 1, p.stderr
    assert "not divisible by world size 2" in p.stderr and "torchrun" not in p.stderr.lower()
    assert not (tmp_path / "runs").exists()


def _args(**kw) -> SimpleNamespace:
    base = dict(nproc=8, nnodes=1, rdzv_endpoint=None, rdzv_id="bnbench", local_addr=None, max_restarts=0,
                grace_s=30, module="bench.train")
    return SimpleNamespace(**{**base, **kw})


def test_torchrun_command_one_node_and_several():
    one = launch.torchrun_job.torchrun_command(_args(), ["--variant", "nn"])
    assert one[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert one[-4:] == ["-m", "bench.train", "--variant", "nn"]
    assert one[one.index("--nproc-per-node") + 1] == "8"
    # SIGUSR1 (Slurm's --signal) reaches the ranks, which get --grace-s to checkpoint
    assert "SIGUSR1" in one[one.index("--signals-to-handle") + 1].split(",")
    assert one[one.index("--shutdown-timeout") + 1] == "30"
    multi = launch.torchrun_job.torchrun_command(_args(nnodes=2, rdzv_endpoint="node0:29500", rdzv_id="job42",
                                              local_addr="10.0.0.2"), [])
    assert "--standalone" not in multi
    pairs = dict(zip(multi, multi[1:]))
    assert (pairs["--nnodes"], pairs["--rdzv-backend"], pairs["--rdzv-endpoint"], pairs["--rdzv-id"],
            pairs["--local-addr"]) == ("2", "c10d", "node0:29500", "job42", "10.0.0.2")


@pytest.mark.parametrize("rc, status, expected", [
    (0, "complete", 0), (1, "diverged", EXIT_DIVERGED), (1, "interrupted", EXIT_INTERRUPTED),
    (1, "failed", 1), (1, None, 1), (143, "running", 143),
])
def test_exit_code_is_the_runs(rc, status, expected, tmp_path):
    """torchrun exits 1 for any failing rank; the run's summary says which failure it was."""
    if status is not None:
        rundir.write_json(tmp_path / rundir.SUMMARY, {"status": status})
    assert launch.torchrun_job.exit_code(rc, tmp_path) == expected
