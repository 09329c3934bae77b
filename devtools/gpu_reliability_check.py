"""GPU checks of the failure-and-resume guarantees: --deterministic repeats, kill-and-resume equality,
SIGUSR1 mid-epoch and resume equality, the divergence step on CUDA, and what the divergence guard
costs (a check every 50 steps against checks at epoch ends only).

    OUT=/tmp/out python -m devtools.gpu_reliability_check --data-dir .gpu/data

Prints and writes $OUT/gpu_reliability.json. About 2-3 minutes on one H100/H200.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import rundir
from bench.argcheck import in_path, out_dir
from bench.errors import OneLineParser, UsageError, cli

REPO = Path(__file__).resolve().parent.parent
TRAIN = ["--no-profile", "--batch-size", "256", "--limit-train", "20000", "--limit-test", "2000", "--epochs", "3"]
FULL = ["--limit-train", "60000", "--limit-test", "10000", "--epochs", "2"]


class Runner:
    """bench.train runs into one folder; each run's return code, wall time and stderr tail kept."""

    def __init__(self, out: Path, data_dir: str):
        self.runs, self.data_dir, self.results = out / "runs", data_dir, {}
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cmd(self, name: str, *flags: str) -> list[str]:
        return [sys.executable, "-m", "bench.train", "--data-dir", self.data_dir, "--out", str(self.runs),
                *TRAIN, "--run-name", name, *flags]

    def run(self, name: str, *flags: str) -> int:
        t0 = time.time()
        p = subprocess.run(self.cmd(name, *flags), env=self.env, capture_output=True, text=True)
        self.results[name] = {"rc": p.returncode, "wall_s": round(time.time() - t0, 1), "err": p.stderr[-600:]}
        return p.returncode

    def rows(self, name: str) -> list[tuple[str, ...]]:
        with open(self.runs / name / "metrics.csv") as f:
            return [(r["train_loss"], r["train_acc"], r["test_acc"]) for r in csv.DictReader(f)]

    def summary(self, name: str) -> dict:
        return json.loads((self.runs / name / "summary.json").read_text())


def determinism(r: Runner) -> dict:
    for name in ("det-a", "det-b"):
        r.run(name, "--variant", "nn", "--deterministic")
    for name in ("nd-a", "nd-b"):
        r.run(name, "--variant", "nn")
    return {"deterministic_equal": r.rows("det-a") == r.rows("det-b"),
            "nondeterministic_rows": [r.rows("nd-a"), r.rows("nd-b")], "deterministic_rows": r.rows("det-a")}


def kill_and_resume(r: Runner) -> dict:
    """SIGKILL right after the first epoch's checkpoint, resume, compare with an uninterrupted run."""
    p = subprocess.Popen(r.cmd("cut", "--variant", "nn", "--deterministic"), env=r.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (r.runs / "cut" / "checkpoint.pt").exists() and p.poll() is None:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed = {"rc": p.returncode, "status": r.summary("cut")["status"]}
    r.run("cut", "--variant", "nn", "--deterministic", "--resume", str(r.runs / "cut"))
    s = r.summary("cut")
    return {"killed": killed, "resumed": {k: s.get(k) for k in ("status", "resumed_from_epoch", "epochs")},
            "resume_equal_deterministic": r.rows("cut") == r.rows("det-a")}


def preempt_and_resume(r: Runner) -> dict:
    """SIGUSR1 once the first step checkpoint exists (one process stops at the next step), then
    --resume; the outcome columns must equal the uninterrupted deterministic run's."""
    flags = ("--variant", "nn", "--deterministic", "--checkpoint-every-steps", "20")
    p = subprocess.Popen(r.cmd("pre", *flags), env=r.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (r.runs / "pre" / "checkpoint.pt").exists() and p.poll() is None:
        time.sleep(0.005)
    t0 = time.time()
    p.send_signal(signal.SIGUSR1)
    p.wait()
    s = r.summary("pre")
    stopped = {"rc": p.returncode, "stop_s": round(time.time() - t0, 2),
               **{k: s.get(k) for k in ("status", "epochs_done", "steps_done", "stop_signal")}}
    r.run("pre", *flags, "--resume", str(r.runs / "pre"))
    return {"preempted": stopped, "preempt_resumed_status": r.summary("pre")["status"],
            "preempt_resume_equal_deterministic": r.rows("pre") == r.rows("det-a")}


def divergence(r: Runner) -> dict:
    """The divergence step with the default check (every 50 steps on CUDA) and with every step; then
    throughput with checks every 50 steps against checks at epoch ends only."""
    r.run("div50", "--lr", "1e36", "--diverge-above", "off")
    r.run("div1", "--lr", "1e36", "--diverge-above", "off", "--check-finite-every", "1")
    r.run("blowup", "--lr", "1e9")  # finite but huge: the 100x bound, on the device
    keys = ("status", "diverged_epoch", "diverged_step", "diverged_loss", "diverged_bound")
    out = {"diverged": [{k: r.summary(n).get(k) for k in keys} for n in ("div50", "div1", "blowup")]}
    for name, every in (("guard50", "50"), ("guard_epoch_end", "1000000000")):
        r.run(name, *FULL, "--check-finite-every", every)
        out[name] = {k: r.summary(name)[k] for k in ("examples_per_s", "step_ms_p50")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="devtools.gpu_reliability_check", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data-dir", required=True, type=in_path, help="Fashion-MNIST folder (the four IDX files)")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_reliability_out"), type=out_dir, help="output folder ($OUT)")
    a = p.parse_args(argv)
    return cli("devtools.gpu_reliability_check", lambda: _run(Path(a.out), a.data_dir))


def _run(out: Path, data_dir: str) -> int:
    import torch

    if not torch.cuda.is_available():  # on the CPU it would train for minutes and check nothing of CUDA's
        raise UsageError("needs a CUDA GPU and this machine shows none; run it on a GPU machine")
    out.mkdir(parents=True, exist_ok=True)
    r = Runner(out, data_dir)
    res = {**determinism(r), **kill_and_resume(r), **preempt_and_resume(r), **divergence(r), "runs": r.results}
    rundir.write_json(out / "gpu_reliability.json", res)  # strict JSON, as every file the suite writes
    print(json.dumps(rundir.finite_or_null(res), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
