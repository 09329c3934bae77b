"""launch/multinode.sh as two 'nodes' on loopback, and launch/slurm.sbatch with stand-in Slurm tools."""
from __future__ import annotations

import json
import os
from collections import Counter
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import EXIT_INTERRUPTED
from tests import procs
from tests.procs import free_port
from tests.proctree import FAULTHANDLER, tails, wait_together

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 300
# both nodes together, well under torchrun's 300 s exit barrier: a passing job takes ~15 s on a loaded
# 2-core machine; past it the test fails with both nodes' stacks and logs (tests.proctree)
NODES_DEADLINE_S = 120


def _start_nodes(tmp_path: Path, data_dir: Path, *extra: str) -> tuple[list[subprocess.Popen], list[Path]]:
    """launch/multinode.sh twice: two nodes of one rank each, rendezvous on loopback; their logs."""
    # LOGLEVEL=INFO: torchrun's agents log each stage (rendezvous, workers, exit barrier) for a failure's record
    env = procs.env(NNODES="2", NPROC_PER_NODE="1", RDZV_HOST="127.0.0.1", RDZV_PORT=str(free_port()),
                    RDZV_ID=f"loopback-{os.getpid()}-{tmp_path.name}", LOCAL_ADDR="127.0.0.1",
                    PYTHON=sys.executable, OMP_NUM_THREADS="1", LOGLEVEL="INFO", **FAULTHANDLER)
    args = ["bash", str(REPO / "launch" / "multinode.sh"), "--device", "cpu", "--data-dir", str(data_dir),
            "--limit-train", "512", "--limit-test", "100", "--epochs", "1", "--batch-size", "64",
            "--out", str(tmp_path / "runs"), "--no-profile", *extra]
    logs = [tmp_path / f"node{i}.log" for i in range(2)]
    nodes = []
    for log in logs:  # files, not pipes: a node's output never blocks it, and a hang's record survives it
        with open(log, "w") as out:
            nodes.append(subprocess.Popen(args, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    return nodes, logs


def test_two_nodes_on_loopback_make_one_world_size_2_run(tmp_path, data_dir):
    nodes, logs = _start_nodes(tmp_path, data_dir)
    assert wait_together(nodes, logs, NODES_DEADLINE_S) == [0, 0], tails(logs)
    run = tmp_path / "runs" / "lenet-nn-ws2-b64-s0"
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert (config["world_size"], config["per_rank_batch"], config["launcher"]) == (2, 32, "torchrun")
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert summary["measured_steps"] == 512 // 64 - 5  # 8 steps, the first 5 warm-up steps untimed
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.name]


def test_a_rank_failing_after_the_last_step_fails_both_nodes_at_once(tmp_path, data_dir):
    """Rank 0 fails after the last collective (/dev/full stands in for a full disk under --results-file)
    while rank 1 has nothing left to do. The ranks end together, so rank 1 fails too, and neither node's
    torchrun waits in its exit barrier (up to 300 s) for an agent whose rank failed."""
    nodes, logs = _start_nodes(tmp_path, data_dir, "--results-file", "/dev/full")
    # without the barrier rank 1 has exited 0 by then: its node ends 0, or waits out the deadline
    assert wait_together(nodes, logs, NODES_DEADLINE_S) == [1, 1], tails(logs)
    assert "OSError: [Errno 28] No space left on device" in "".join(log.read_text() for log in logs)


@pytest.mark.parametrize("srun_rc, requeued", [(0, False), (EXIT_INTERRUPTED, True), (1, False)])
def test_slurm_script_starts_one_multinode_launcher_per_node(srun_rc, requeued, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record, requeue = tmp_path / "srun.txt", tmp_path / "requeue.txt"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nif [ "$1" = requeue ]; then echo "$@" > {requeue}; exit 0; fi\n'
                                      '[ "$1 $2 $3" = "show hostnames gpu[07-08]" ] || exit 9\n'
                                      'printf "gpu07\\ngpu08\\n"\n')
    (bin_dir / "srun").write_text(f'#!/bin/sh\necho "$NNODES $NPROC_PER_NODE $RDZV_HOST $RDZV_PORT $RDZV_ID"'
                                  f' > {record}\necho "$@" >> {record}\nexit {srun_rc}\n')
    for tool in ("scontrol", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu[07-08]",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "8", "SLURM_JOB_ID": "4242",
           "SLURM_SUBMIT_DIR": str(REPO)}
    r = subprocess.run(["bash", str(REPO / "launch" / "slurm.sbatch"), "--variant", "sync", "--epochs", "3"],
                       env=env, timeout=30)
    assert r.returncode == srun_rc  # the job's exit code is the launchers'
    env_line, cmd_line = record.read_text().splitlines()
    assert env_line == "2 8 gpu07 29500 4242"
    assert cmd_line == (f"--nodes 2 --ntasks-per-node 1 --wait=60 bash "
                        f"{REPO}/launch/multinode.sh --variant sync --epochs 3")
    # bench.train's interrupted code (a checkpoint is written), and only that, requeues the job
    assert (requeue.read_text().split() if requeue.exists() else None) == (["requeue", "4242"] if requeued else None)
    script = (REPO / "launch" / "slurm.sbatch").read_text()
    assert "#SBATCH --signal=USR1@120" in script and "#SBATCH --requeue" in script


@pytest.mark.parametrize("missing", ["NNODES", "RDZV_HOST"])
def test_multinode_names_the_missing_variable(missing):
    env = {k: v for k, v in os.environ.items() if k not in ("NNODES", "RDZV_HOST")}
    env.update({"NNODES": "2", "RDZV_HOST": "127.0.0.1"})
    del env[missing]
    r = subprocess.run(["bash", str(REPO / "launch" / "multinode.sh")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and missing in r.stderr


def test_gpu_check_cpu_smoke_runs_every_piece(tmp_path, data_dir):
    data = data_dir
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DATA": str(data), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(REPO / "devtools" / "gpu_check.sh"), "--cpu-smoke"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=DEADLINE_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 piece(s) failed" in r.stdout
    with open(out / "modes.csv") as f:
        modes = f.read().splitlines()
    assert len(modes) == 2 and modes[1].startswith("lenet,nn,64,eager,none,")
    with open(out / "overhead.csv") as f:
        arms = sorted(line.split(",")[1] for line in f.read().splitlines()[1:])
    assert arms == ["bare", "bare+marks", "harness", "profiled"]
    with open(out / "micro.csv") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    # every CPU-runnable local variant (gn included) in both passes, and the copy, at each shape × dtype
    cells = Counter((r[4], r[6]) for r in rows)
    assert set(cells) == {("copy", "copy"), *((v, op) for v in ("scratch", "nn", "gn")
                                              for op in ("forward", "forward_backward"))}, cells
    assert len(set(cells.values())) == 1 and len(rows) == 7 * next(iter(cells.values()))
    assert (out / "report" / "micro_ratio_to_copy.png").stat().st_size > 0
    with open(out / "collectives_gloo_ws1.csv") as f:  # 2 sizes × 2 collectives + LeNet's 4 layers × 2
        rows = f.read().splitlines()
    assert len(rows) == 1 + 4 + 8 and rows[1].startswith("gloo,1,1,cpu,all_reduce,sweep,")
    assert "| lenet.bn1 | 4x6x24x24 | bfloat16 | nn |" in (out / "report" / "micro.md").read_text()
    assert "skipped: no CUDA device" in (out / "fused.log").read_text()  # the fused piece ran, GPU-only
    resnet50 = (out / "resnet50_report" / "report.md").read_text()  # piece 6: the per-layer BN table
    assert "### BN cost per layer" in resnet50 and "| layer4.2.bn3 | 2x2048x1x1 | float32 |" in resnet50
