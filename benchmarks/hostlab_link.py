"""A link of known speed checks bench.collectives and the scale model (needs root: launch.hostlab).

    sudo python benchmarks/hostlab_link.py --rate 200mbit --out /tmp/hostlab-link

1. bench.collectives on 2 hosts of launch.hostlab whose link is shaped to --rate, and on 1 rank (the
   per-call floor): the largest all-reduce's and all-gather's busbw against the rate.
2. bench.train at world size 1 (no lab) and on the 2 hosts, per-rank batch --per-rank-batch, for
   each of --models and --variants (the 2-host runs traced, so the model's collective count is
   checked), then analysis.scale fed those collectives: its validation table (prediction, measurement,
   error) is printed as it stands in scale_validation.csv.
Prints numbers only; what they mean is on docs/results/hostlab-cpu-2core-2026-12-07.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.argcheck import output_dir, positive_int  # noqa: E402
from bench.errors import OneLineParser, UsageError, cli  # noqa: E402
from launch.netns import check_can_run, rate_bits  # noqa: E402

SIZES = "4,64,1K,16K,256K,1M,4M,16M"
LOOPBACK = "loopback"  # --rate loopback: the same measurements with both ranks on this machine's loopback


def run(*args: str, timeout: float) -> None:
    """A `python -m` command from the repository, one intra-op thread a process; its tail on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "KINETO_LOG_LEVEL": "5"}
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(args)}\n{(p.stdout + p.stderr)[-3000:]}")
    print(f"  {time.monotonic() - t:6.1f} s  {' '.join(args[:12])}{' ...' if len(args) > 12 else ''}", flush=True)


def lab(rate: str, out: Path, *module: str, timeout: float = 900) -> None:
    """2 ranks on the lab's 2 hosts; with rate 'loopback', 2 ranks on this machine's loopback instead."""
    if rate == LOOPBACK:
        run("torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", *module, timeout=timeout)
    else:
        run("launch.hostlab", "--hosts", "2", "--rate", rate, "--out", str(out / "lab"), "--", *module, timeout=timeout)


def train_args(model: str, variant: str, ranks: int, batch: int, steps: int, data: str, out: Path) -> list[str]:
    return ["--model", model, "--variant", variant, "--epochs", "1", "--batch-size", str(batch * ranks),
            "--limit-train", str(batch * ranks * steps), "--limit-test", "100", "--data-dir", data,
            "--out", str(out), "--overwrite"]


def busbw_check(csv: Path, rate: str) -> None:
    c = pd.read_csv(csv)
    if rate == LOOPBACK:
        sweep = c[c["shape"] == "sweep"][["collective", "bytes", "busbw_gbps"]]
        print("\nloopback busbw (GB/s):\n" + sweep.to_string(index=False))
        return
    link_gbps = rate_bits(rate) / 8 / 1e9
    print(f"\nlink {rate} = {link_gbps:.4f} GB/s; busbw of the largest sweep sizes (GB/s, error against the rate):")
    sweep = c[c["shape"] == "sweep"]
    for coll, g in sweep.groupby("collective"):
        for _, r in g.sort_values("bytes").tail(3).iterrows():
            print(f"  {coll:<10} {int(r['bytes']):>9} B  {r['time_us_median'] / 1e3:8.1f} ms  "
                  f"busbw {r['busbw_gbps']:.4f}  "
                  f"{r['busbw_gbps'] / link_gbps - 1:+.1%}  (IQR/median {r['iqr_over_median']:.1%})")


def main() -> int:
    p = OneLineParser(prog="benchmarks/hostlab_link.py", description=__doc__.splitlines()[0])
    p.add_argument("--rate", default="200mbit", help="the link's rate, tc's syntax, or "
                   "'loopback' for 2 ranks on loopback (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="folder for the CSVs, runs and scale output")
    p.add_argument("--data-dir", default=str(REPO / "data"), help="Fashion-MNIST folder (bench.train --data-dir)")
    p.add_argument("--models", default="lenet", help="comma-separated networks to train (default %(default)s)")
    p.add_argument("--variants", default="nn,scratch-sync", help="comma-separated BN variants (default %(default)s)")
    p.add_argument("--per-rank-batch", type=positive_int, default=8, help="per-rank batch (default %(default)s)")
    p.add_argument("--steps", type=positive_int, default=72, help="steps per run, 12 of them untimed (default %(default)s)")
    a = p.parse_args()
    return cli("benchmarks/hostlab_link.py", lambda: measure(a))


def measure(a) -> int:
    """Check the flags (one line, exit 2), then the collectives, the training runs and the scale model."""
    if a.steps <= 12:
        raise UsageError(f"--steps {a.steps}: the first 12 steps are untimed; give more, e.g. --steps 72")
    output_dir("--out", a.out)
    if not Path(a.data_dir).is_dir():
        raise UsageError(f"--data-dir {a.data_dir}: no such folder; name the Fashion-MNIST folder")
    if a.rate != LOOPBACK:
        rate_bits(a.rate)
        check_can_run()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"collectives on the {a.rate} link, and on one rank:", flush=True)
    lab(a.rate, out, "bench.collectives", "--sizes", SIZES, "--bn-models", "lenet", "--iters", "10", "--warmup", "3",
        "--out", str(out / "c2.csv"))
    run("bench.collectives", "--sizes", "4,64", "--bn-models", "lenet", "--iters", "10", "--out", str(out / "c1.csv"),
        timeout=300)
    busbw_check(out / "c2.csv", a.rate)
    print("\ntraining runs, world size 1 and 2 hosts:")
    for model in a.models.split(","):
        for variant in a.variants.split(","):
            run("bench.train", *train_args(model, variant, 1, a.per_rank_batch, a.steps, a.data_dir, out / "ws1"),
                "--no-profile", timeout=1800)
            lab(a.rate, out, "bench.train", *train_args(model, variant, 2, a.per_rank_batch, a.steps, a.data_dir,
                                                         out / "ws2"), timeout=3600)
    run("analysis.scale", str(out / "ws1"), str(out / "ws2"), "--collectives", str(out / "c2.csv"), str(out / "c1.csv"),
        "-o", str(out / "scale"), timeout=600)
    v = pd.read_csv(out / "scale" / "scale_validation.csv")
    cols = ["model", "variant", "per_rank_batch", "measured_step_ms", "predicted_step_ms", "error", "compute_ms",
            "bn_comm_ms", "ddp_ms", "harness_ms", "measured_calls_per_step", "predicted_calls_per_step"]
    print(f"\nscale model against the 2-host runs on the {a.rate} link (ms):")
    print(v[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
