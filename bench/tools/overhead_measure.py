"""What the harness and the profiler cost: examples/s of four arms in one process.

    python -m bench.overhead                   # LeNet-BN, nn, batch 256, on the GPU
    python -m bench.overhead --device cpu --limit-train 2048 --epochs 2

    bare       a minimal device-resident loop of the same network, data, batch and optimizer: gather,
               forward, loss, backward, step; CUDA events at the ends of each epoch's measured steps
    bare+marks the bare loop plus bench.run.steptimer's per-step marks (one CUDA event record a step): what
               per-step timing alone costs, so a harness gap can be told apart from it
    harness    bench.train.train() with the profiler off: its own examples/s over its measured steps
    profiled   bench.train.train() with the profiler on; its measured steps all come after the
               profiler's window (the schedule has ended), so this is the cost of having it configured

The arms run in rotation (`--repeats` rounds, each round starting one arm later) so drift in clocks
or neighbours and any cost of going first hit all of them; each arm's median is compared. Budgets:
harness ≥ 97 % of bare, profiled ≥ 98 % of harness. Each arm's spread (IQR over median) is
printed; when it is wider than the budget's margin, the verdict says the rounds cannot resolve it.
Prints one line per run and the ratios; `--csv` writes the runs as a tidy table.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import rundir
from bench.argcheck import out_file
from bench.errors import EXIT_FAILED, OneLineParser, UsageError, cli
from bench.run.datasets import fashion_mnist as fmnist
from bench.run import recipe
from bench.argcheck import positive_int
from bench.run.config import TrainConfig, add_flags
from bench.run.dist import resolve_device
from bench.run.job import build_net
from bench.run.loop import epoch_order
from bench.run.plan import resolve
from bench.run.profiler import WINDOW_STEPS
from bench.run.steptimer import StepTimer, gc_paused, percentile
from bench.run.runner import train

BUDGETS = {"harness_over_bare": 0.97, "profiled_over_harness": 0.98}
ARMS = ("bare", "bare+marks", "harness", "profiled")
# Each budgeted ratio compares these two arms (numerator, denominator).
BUDGET_ARMS = {"harness_over_bare": ("harness", "bare"), "profiled_over_harness": ("profiled", "harness")}


def bare_loop(cfg: TrainConfig, device: torch.device, skip: int, marks: bool = False) -> float:
    """Examples/s of the plainest resident training loop, timed like bench.run.runner (first `skip` steps out).

    `marks` adds the loop's per-step timing marks (read, and so synchronised, only after the epoch's
    closing clock)."""
    data = fmnist.load(cfg.data_dir, device, False, cfg.limit_train, cfg.limit_test)
    net = build_net(cfg, device)
    opt = recipe.make_optimizer(net, recipe.resolve(cfg, cfg.batch_size))  # bench.train's, the textbook's for lenet
    B = cfg.batch_size
    steps = len(data.train_x) // B
    spans, measured = [], 0
    timer = StepTimer(device) if marks else None
    for epoch in range(cfg.epochs):
        order = epoch_order(cfg.seed, epoch, len(data.train_x), steps, B).to(device)
        first = skip if epoch == 0 else 0
        with gc_paused():  # as bench.train does: the arms differ in harness, not in collector pauses
            for i in range(steps):
                if i == first:
                    spans.append(_clock(device))
                idx = order[i]
                x, y = data.train_x[idx], data.train_y[idx]
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if timer is not None:
                    timer.mark()
            if first < steps:
                spans.append(_clock(device))
                measured += steps - first
        if timer is not None:
            timer.read_ms()
    seconds = sum(_elapsed_s(a, b) for a, b in zip(spans[::2], spans[1::2]))
    return B * measured / seconds


def _clock(device: torch.device):
    if device.type == "cuda":
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev
    return time.perf_counter()


def _elapsed_s(a, b) -> float:
    if isinstance(a, float):
        return b - a
    b.synchronize()
    return a.elapsed_time(b) / 1e3


def harness(cfg: TrainConfig) -> float:
    with contextlib.redirect_stdout(io.StringIO()):  # train() prints its epoch lines
        summary = train(cfg)
    return summary["examples_per_s"]


def measure(cfg: TrainConfig, device: torch.device, repeats: int) -> list[dict]:
    """Tidy rows (arm, repeat, examples_per_s); round r runs the arms starting from the r-th."""
    rows = []
    for r in range(repeats):
        for k in range(len(ARMS)):
            arm = ARMS[(r + k) % len(ARMS)]
            if arm.startswith("bare"):
                eps = bare_loop(cfg, device, cfg.warmup_steps, marks=arm == "bare+marks")
            else:
                eps = harness(dataclasses.replace(cfg, profile=arm == "profiled", run_name=f"overhead-{arm}",
                                                  overwrite=True))
            rows.append({"arm": arm, "repeat": r, "examples_per_s": eps})
            print(f"round {r + 1}/{repeats}  {arm:<10} {eps:>12,.1f} examples/s", flush=True)
    return rows


def ratios(rows: list[dict]) -> dict[str, float]:
    """Median examples/s per arm, each arm's spread, and the ratios of medians.

    >>> ratios([{"arm": "bare", "examples_per_s": 100.0}, {"arm": "harness", "examples_per_s": 98.0},
    ...         {"arm": "profiled", "examples_per_s": 49.0}])["profiled_over_harness"]
    0.5
    """
    res: dict[str, float] = {}
    for a in ARMS:
        vals = [r["examples_per_s"] for r in rows if r["arm"] == a]
        med = percentile(vals, 50)
        res[f"{a}_examples_per_s"] = med
        res[f"{a}_spread"] = ((percentile(vals, 75) - percentile(vals, 25)) / med if len(vals) > 1
                              else float("nan"))
    res["marks_over_bare"] = res["bare+marks_examples_per_s"] / res["bare_examples_per_s"]
    for key, (num, den) in BUDGET_ARMS.items():
        res[key] = res[f"{num}_examples_per_s"] / res[f"{den}_examples_per_s"]
    return res


def verdict(res: dict[str, float], key: str) -> str:
    """'within', 'OVER', or, when either arm's spread (IQR over median, across rounds) is wider than
    the budget's margin, a note that the measurement cannot tell.

    >>> verdict({"harness_over_bare": 0.99, "harness_spread": 0.01, "bare_spread": 0.01}, "harness_over_bare")
    'within'
    >>> verdict({"harness_over_bare": 0.99, "harness_spread": 0.08, "bare_spread": 0.01}, "harness_over_bare")
    'within, but unresolved: an arm spreads 8.0% over its rounds, more than the 3% margin'
    """
    floor = BUDGETS[key]
    word = "within" if res[key] >= floor else "OVER"
    spreads = [res[f"{a}_spread"] for a in BUDGET_ARMS[key]]
    if any(math.isnan(x) for x in spreads):
        return f"{word} (one round: no spread to judge it by)"
    spread, margin = max(spreads), 1 - floor
    if spread > margin:
        return (f"{word}, but unresolved: an arm spreads {spread:.1%} over its rounds, "
                f"more than the {margin:.0%} margin")
    return word


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="bench.overhead", description="Harness and profiler overhead.")
    p.add_argument("--variant", default="nn", choices=("scratch", "nn"), help="BN variant (default nn)")
    add_flags(p, ("model", "batch_size", "epochs", "limit_train", "limit_test", "data_dir", "device"),
              epochs=2, limit_test=1000)
    p.add_argument("--repeats", type=positive_int, default=5, help="rounds of the four arms (default 5)")
    p.add_argument("--csv", default=None, type=out_file, help="write the runs here (arm, repeat, examples_per_s)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli("bench.overhead", lambda: _run(args))


def _measure_all(a, device: torch.device) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        cfg = TrainConfig(variant=a.variant, model=a.model, epochs=a.epochs, batch_size=a.batch_size,
                          data_dir=a.data_dir, limit_train=a.limit_train, limit_test=a.limit_test,
                          device=device.type, out=tmp)
        fmnist.prepare(cfg.data_dir)
        plan = resolve(cfg, 1, device, create=False)  # bench.train's own checks and step counts
        steps, untimed = plan.steps_per_epoch * cfg.epochs, plan.untimed_steps
        if steps <= untimed:
            raise UsageError(f"{steps} steps in all, but the profiled run leaves its first {untimed} untimed: "
                             f"raise --limit-train or --epochs")
        print(f"overhead: {cfg.model} {cfg.variant} batch {cfg.batch_size} on {device}, {cfg.epochs} "
              f"epoch(s) per run, {a.repeats} round(s); the profiled run skips its "
              f"{WINDOW_STEPS} window steps", flush=True)
        return measure(cfg, device, a.repeats)


def _run(a) -> int:
    device = resolve_device(a.device, 0)
    rows = _measure_all(a, device)
    if a.csv:
        Path(a.csv).parent.mkdir(parents=True, exist_ok=True)
        rundir.write_csv(a.csv, ("device", "arm", "repeat", "examples_per_s"),
                         [{"device": str(device), **r} for r in rows])
    res = ratios(rows)
    for arm in ARMS:
        print(f"{arm:<10} median {res[f'{arm}_examples_per_s']:>12,.1f} examples/s  "
              f"spread IQR/median {res[f'{arm}_spread']:.1%}")
    print(f"{'marks_over_bare':<22} {res['marks_over_bare']:.3f}  (what per-step timing marks cost)")
    missed = []
    for key, floor in BUDGETS.items():
        missed += [] if res[key] >= floor else [key]
        print(f"{key:<22} {res[key]:.3f}  (budget >= {floor:.2f}: {verdict(res, key)})")
    if device.type != "cuda":
        print("note: CPU timings on a shared machine are noisy; the budgets are meant for a GPU")
    return EXIT_FAILED if a.strict and missed else 0
