"""Calibrate the speed verdicts: how often identical arms are called different, and how often a
planted slowdown of known size is found, by bench.timing's interleaved design and by the old one.

    python benchmarks/verdicts.py [--repeats 20] [--load] [--slowdown 0.10] [--seed 0] [--design both]

Each repeat is one interleaved timing job (bench.tools.interleave) of LeNet with nn, four arms:
copies A and A′ of nn (the baseline and the report's A/A control), a third copy A″ of nn judged as
a variant is, and a fourth copy whose every step ends in busy CPU work of F × that step's own CPU
time (the planted slowdown, 1 + F by construction; it exists only here, never as a user variant).
The script runs torch on one intra-op thread, so a step's CPU time is its thread's. The report's
own analysis (analysis.stats.interleaved) gives every ratio, interval and verdict; the control
(A′) sets the noise floor the verdicts must clear. Counted over the repeats:
    A/A false positives   A″, identical to A, reads "faster" or "slower"
    controls out          the control's floor exceeds the bound (every verdict withheld)
    detections            the planted arm reads "slower"
    ratio error           |estimated ratio − (1 + F)| / (1 + F), median over repeats
`--design sequential` (or both) measures the old design: two bench.train runs of nn one after another (separate
processes), the ratio of their median steps and the within-run block-bootstrap interval the report
gave it; a false positive is an interval that excludes 1.
`--load` runs benchmarks/cpuhog.py's bursty CPU hog throughout (one process per CPU).
Last line (interleaved design): `verdicts: aa_false_positive=X/N detected=Y/N ratio_error=Z%`.
"""
from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.load.timing_dirs import load_timing  # noqa: E402
from analysis.stats import block_bootstrap as blockboot, interleaved  # noqa: E402
from analysis.load.run_dirs import load_runs, load_step_times  # noqa: E402
from bench.argcheck import non_negative_int, out_dir, positive_float, positive_int  # noqa: E402
from bench.errors import OneLineParser  # noqa: E402
from bench.run.config import TrainConfig  # noqa: E402
from bench.tools import interleave  # noqa: E402
from benchmarks.cpuhog import Hog  # noqa: E402
import torch  # noqa: E402

PLANTED = "nn-planted"


THIRD_COPY = 2  # nn's copies 0 and 1 are bench.timing's baseline and control


def extra_arms(tc: interleave.TimingConfig, fraction: float):
    """extra_arms for interleave.run: a third copy of nn (A″), and a fresh nn copy whose every step
    ends in busy CPU work of `fraction` × that step's own CPU time. Counted in CPU time, the wait is
    stretched by a busy machine exactly as the step is, and a preemption inside it adds no overshoot;
    so the planted ratio of wall-clock medians is 1 + F by construction, however loaded the machine.
    (A wait of a fixed wall time calibrated beforehand becomes another share of a step a neighbour
    slowed, and a wall-clock spin overshoots by a scheduler slice whenever it is preempted.)"""
    def extra(arms: list[interleave.Arm]) -> list[interleave.Arm]:
        total = interleave.SPARE_STEPS + tc.warmup + tc.rounds * tc.steps
        third = interleave.build_arm(arms[0].job.plan, arms[0].job.info, THIRD_COPY, total)
        arm = interleave.build_arm(arms[0].job.plan, arms[0].job.info, 0, total)
        step = arm.step

        def slowed(x, y):
            t = time.process_time()
            out = step(x, y)
            now = time.process_time()
            end = now + fraction * (now - t)
            while time.process_time() < end:
                pass
            return out
        arm = replace(arm, variant=PLANTED, step=slowed)
        for a in (third, arm):
            interleave.run_steps(a, tc.warmup)
        return [third, arm]
    return extra


def interleaved_repeat(args, i: int, out: Path) -> tuple[dict, dict, dict]:
    train = TrainConfig(model="lenet", batch_size=args.batch_size, limit_train=args.limit_train,
                        data_dir=args.data_dir, device="cpu", seed=args.seed + i, out=str(out),
                        run_name=f"interleaved-{i}", overwrite=True)
    tc = interleave.TimingConfig(train=train, variants=("nn",), rounds=args.rounds, steps=args.steps,
                                 warmup=args.warmup)
    run_dir = interleave.timing(tc, log=lambda *a, **k: None, extra_arms=extra_arms(tc, args.slowdown))
    t = load_timing([run_dir])
    comps = interleaved.comparisons(t.runs, t.steps).set_index(["variant", "copy"])
    return (comps.loc[("nn", 1)].to_dict(), comps.loc[("nn", THIRD_COPY)].to_dict(),
            comps.loc[(PLANTED, 0)].to_dict())


def _arm(r: dict) -> str:
    return f"{r['step_ms_ratio']:.3f} [{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]"


def sequential_repeat(args, i: int, out: Path) -> dict:
    """Two bench.train runs of nn, one after the other: the old design's A/A comparison."""
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "bench.train", "--variant", "nn", "--epochs", "1", "--no-profile",
                        "--steps", str(args.rounds * args.steps), "--warmup-steps", str(args.warmup),
                        "--batch-size", str(args.batch_size), "--limit-train", str(args.limit_train),
                        "--data-dir", args.data_dir, "--device", "cpu", "--seed", str(args.seed + i),
                        "--out", str(out), "--run-name", f"seq-{i}-{name}", "--overwrite"],
                       check=True, stdout=subprocess.DEVNULL)
    steps = load_step_times(load_runs([out / f"seq-{i}-a", out / f"seq-{i}-b"]))
    a, b = (steps.loc[steps["run"] == f"seq-{i}-{n}", "step_ms"].to_numpy() for n in ("a", "b"))
    ci = blockboot.median_ratio_ci(a, b)
    return {"ratio": ci.estimate, "low": ci.low, "high": ci.high}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def run_interleaved(args, out: Path) -> str:
    fp = out_of_bound = detected = 0
    errors = []
    target = 1 + args.slowdown
    for i in range(args.repeats):
        ctrl, third, plant = interleaved_repeat(args, i, out)
        fp += third["verdict"] in ("faster", "slower")
        out_of_bound += ctrl["verdict"] != "within noise"
        detected += plant["verdict"] == "slower"
        errors.append(abs(plant["step_ms_ratio"] - target) / target)
        print(f"[{i + 1}/{args.repeats}] A/A {_arm(ctrl)} floor {_pct(ctrl['noise_floor'])}  A″ {_arm(third)} "
              f"{third['verdict']}  planted {_arm(plant)} {plant['verdict']}  (nn median "
              f"{plant['baseline_median_ms']:.2f} ms)", flush=True)
    n = args.repeats
    print(f"interleaved: A/A false positives {fp}/{n} (controls over the bound {out_of_bound}/{n}); planted "
          f"{_pct(args.slowdown)} slowdown detected {detected}/{n}; median |ratio − {target:.2f}| / {target:.2f} = "
          f"{_pct(statistics.median(errors))}")
    return f"verdicts: aa_false_positive={fp}/{n} detected={detected}/{n} ratio_error={_pct(statistics.median(errors))}"


def run_sequential(args, out: Path) -> None:
    fp, gaps = 0, []
    for i in range(args.repeats):
        r = sequential_repeat(args, i, out)
        fp += not (r["low"] <= 1 <= r["high"])
        gaps.append(abs(r["ratio"] - 1))
        print(f"[{i + 1}/{args.repeats}] sequential A/A {r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]", flush=True)
    print(f"sequential (old design): A/A called different {fp}/{args.repeats}; |ratio − 1| median "
          f"{_pct(statistics.median(gaps))}, largest {_pct(max(gaps))}")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="benchmarks/verdicts.py", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=positive_int, default=20, help="timing jobs")
    p.add_argument("--load", action="store_true", help="run a bursty CPU hog (one process per CPU) throughout")
    p.add_argument("--slowdown", type=positive_float, default=0.10,
                   help="planted slowdown F: busy CPU work of F × each step's own CPU time")
    p.add_argument("--seed", type=non_negative_int, default=0, help="first repeat's seed (repeat i: seed + i)")
    p.add_argument("--design", choices=("interleaved", "sequential", "both"), default="interleaved",
                   help="bench.timing's interleaved rounds, the old design (two runs in a row), or both")
    p.add_argument("--rounds", type=positive_int, default=interleave.TimingConfig.rounds,
                   help="rounds per timing job (bench.timing's default)")
    p.add_argument("--steps", type=positive_int, default=interleave.TimingConfig.steps,
                   help="steps per arm per round (bench.timing's default)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed steps per arm")
    p.add_argument("--batch-size", type=positive_int, default=64, help="LeNet batch")
    p.add_argument("--limit-train", type=positive_int, default=4096, help="training images")
    p.add_argument("--keep", type=out_dir, metavar="DIR", help="keep every run directory under DIR (default: a temporary folder)")
    p.add_argument("--data-dir", type=out_dir, default=TrainConfig().data_dir, help="Fashion-MNIST folder (as bench.train)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through Hog's exit
    torch.set_num_threads(1)  # the planted wait is one thread's CPU time, as the step's then is
    print(f"verdicts: {args.repeats} repeats, {args.rounds} rounds × {args.steps} steps per arm, LeNet batch "
          f"{args.batch_size}, planted slowdown {_pct(args.slowdown)}, load {'on' if args.load else 'off'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Hog(seed=args.seed) if args.load else _Nothing():
        where = Path(args.keep or tmp)
        if args.design in ("sequential", "both"):
            run_sequential(args, where)
        if args.design in ("interleaved", "both"):
            print(run_interleaved(args, where))
    return 0


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


if __name__ == "__main__":
    sys.exit(main())
