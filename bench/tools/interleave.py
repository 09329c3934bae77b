"""Interleaved timing: every variant built side by side, timed in short rounds of shuffled order.

    python -m bench.timing --variants nn scratch [--rounds 200] [--steps 1] [--warmup 5] [--seed 0]
                           [bench.train flags] --out DIR
    torchrun --standalone --nproc_per_node=2 -m bench.timing --variants nn scratch-sync --out DIR

Each (variant, copy) is an arm: a job built exactly as bench.train builds one (bench.run.job.
build_job: same world, device, data, network, optimiser and step). The first variant, the baseline,
is built twice (copies 0 and 1): the two copies run the same computation, so their ratio is the
noise floor measured in the same run (the A/A control). After each arm's warm-up, every round times
`--steps` consecutive steps of each arm, in an order shuffled from `--seed` every round, so drift
and neighbours fall on every arm alike. Every rank records its steps (CUDA events, or the host clock
on CPU); rank 0 writes a run directory of kind "timing" (bench.rundir) with timing.csv and the
machine's load (load.csv), sampled at the start, after every round and at the end.
"""
from __future__ import annotations

import os
import random
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import torch.distributed as tdist

from bench import rundir
from bench.run import dist, envinfo
from bench.run.config import TrainConfig
from bench.run.datasets import fashion_mnist as fmnist
from bench.run.job import Job, build_job
from bench.run.loop import epoch_order
from bench.run.plan import RunPlan, resolve
from bench.run.steptimer import StepTimer, gc_paused
from bench.tools.machineload import LoadSampler

QUIET_WINDOW_S = 0.5  # the start sample: other processes' CPU share while this job sits idle
PROGRESS_LINES = 20   # at most about this many round lines, however many rounds
SPARE_STEPS = 50      # batches beyond the rounds', for a tool's own extra steps (a calibration)


@dataclass(frozen=True)
class TimingConfig:
    train: TrainConfig       # every other option, as bench.train reads it (its variant is unused)
    variants: tuple[str, ...]  # the first is the baseline, built twice
    rounds: int = 200        # rounds of the shuffled arms
    steps: int = 1           # timed steps of each arm per round: arms alternate every step, finer
                             # than a neighbour's bursts (benchmarks/verdicts.py measured coarser rounds)
    warmup: int = 5          # untimed steps of each arm before the first round


@dataclass
class Arm:
    """One timed copy of a variant: its job, its batches and the step the rounds call."""
    variant: str
    copy: int
    job: Job
    batches: Iterator
    step: Callable

    @property
    def key(self) -> tuple[str, int]:
        return self.variant, self.copy


def arm_keys(variants: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """The arms of a timing run: the baseline twice, every other variant once.

    >>> arm_keys(["nn", "scratch"])
    [('nn', 0), ('nn', 1), ('scratch', 0)]
    """
    return [(variants[0], 0), (variants[0], 1), *((v, 0) for v in variants[1:])]


def round_orders(keys: list[tuple[str, int]], rounds: int, seed: int) -> list[list[tuple[str, int]]]:
    """The order of the arms in each round: a fresh shuffle per round from one seeded generator.

    >>> round_orders([("nn", 0), ("nn", 1)], 3, 0) == round_orders([("nn", 0), ("nn", 1)], 3, 0)
    True
    """
    rng = random.Random(seed)
    orders = []
    for _ in range(rounds):
        order = list(keys)
        rng.shuffle(order)
        orders.append(order)
    return orders


def run_name(tc: TimingConfig, world_size: int) -> str:
    """'timing-lenet-nn-scratch-ws1-b256-s0', or --run-name."""
    c = tc.train
    return c.run_name or "timing-" + rundir.default_run_name(
        c.model, "-".join(tc.variants), world_size, c.batch_size, c.seed, mode=c.mode, amp=c.amp,
        bn_emulate_ranks=c.bn_emulate_ranks, channels_last=c.channels_last)


def resolve_plans(tc: TimingConfig, world_size: int, device) -> dict[str, RunPlan]:
    """Every variant's plan, checked as bench.train checks it (UsageError before any process group)."""
    name = run_name(tc, world_size)
    plans = {}
    for v in tc.variants:
        cfg = replace(tc.train, variant=v, run_name=name, profile=False, warmup_steps=tc.warmup, epochs=1)
        plans[v] = resolve(cfg, world_size, device)
    return plans


def build_arm(plan: RunPlan, info: dist.DistInfo, copy: int, total_steps: int) -> Arm:
    """A job of `plan` built as bench.train builds it, with the batches of `total_steps` steps."""
    job = build_job(plan, info)
    order = epoch_order(plan.cfg.seed, 0, plan.data.n_train, total_steps, plan.global_batch)
    order = order.view(total_steps, plan.world_size, plan.per_rank_batch)[:, info.rank].to(info.device)
    return Arm(plan.cfg.variant, copy, job, job.data.batches(order), job.step)


def run_steps(arm: Arm, k: int, timer: StepTimer | None = None) -> list[float]:
    """`k` steps of `arm` (batch fetch and step, as bench.train times them); their ms when timed."""
    if timer is not None:
        timer.mark()
    _chain(arm, k, timer)
    return timer.read_ms() if timer is not None else []


def _chain(arm: Arm, k: int, timer: StepTimer | None) -> None:
    for _ in range(k):
        x, y = next(arm.batches)
        arm.step(x, y)
        if timer is not None:
            timer.mark()


def time_rounds(arms: list[Arm], orders: list[list[tuple[str, int]]], k: int, info: dist.DistInfo,
                sampler: LoadSampler | None, log: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """Time every round; (this rank's timing.csv rows, rank 0's load.csv rows). A round is one chain
    of step boundaries, read once at its end (one synchronize on CUDA), so arms follow each other
    without a pause between them."""
    by_key, timer = {a.key: a for a in arms}, StepTimer(info.device)
    rows, loads, seen = [], [], {a.key: [] for a in arms}
    with gc_paused():  # a collection would land in one timed step (bench.run.steptimer)
        for r, order in enumerate(orders):
            timer.mark()
            for key in order:
                _chain(by_key[key], k, timer)
            ms = timer.read_ms()
            for position, key in enumerate(order):
                mine = ms[position * k:(position + 1) * k]
                rows += [{"round": r, "position": position, "variant": key[0], "copy": key[1], "rank": info.rank,
                          "step": i, "ms": t} for i, t in enumerate(mine)]
                seen[key] += mine
            if sampler is not None:
                loads.append(sampler.sample("round", r))
            if (r + 1) % max(1, len(orders) // PROGRESS_LINES) == 0 or r + 1 == len(orders):
                log(_progress(r, len(orders), seen, loads[-1] if loads else None))
    return rows, loads


def _progress(r: int, rounds: int, seen: dict, load: dict | None) -> str:
    arms = ", ".join(f"{v}{'′' if c else ''} {sorted(ms)[len(ms) // 2]:.2f}" for (v, c), ms in sorted(seen.items()))
    line = f"round {r + 1}/{rounds}: median step so far, ms: {arms}"
    if load and load["other_cpu_share"] is not None:
        line += f"; load {load['loadavg_1m']:.1f}, other processes {load['other_cpu_share']:.0%} of {load['cpus']} CPUs"
    return line


def timing_record(tc: TimingConfig, plan: RunPlan, info: dist.DistInfo, orders) -> dict:
    """config.json of a timing run: the baseline's plan record, the arms and every round's order."""
    record = {k: v for k, v in plan.record().items() if k not in ("variant", "epochs", "warmup_steps", "profile")}
    return {**record, "kind": rundir.TIMING_KIND, "variants": list(tc.variants), "baseline": tc.variants[0],
            "rounds": tc.rounds, "steps_per_round": tc.steps, "warmup": tc.warmup, "order_seed": tc.train.seed,
            "orders": [[f"{v}#{c}" for v, c in o] for o in orders], "launcher": info.launcher,
            "backend": info.backend, "device_type": info.device.type}


def _gather(obj, info: dist.DistInfo) -> list:
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    tdist.all_gather_object(out, obj)
    return out


def run(tc: TimingConfig, plans: dict[str, RunPlan], info: dist.DistInfo, log=print,
        extra_arms: Callable[[list[Arm]], list[Arm]] | None = None) -> Path:
    """Build every arm, warm each up, time the rounds, write the run directory (rank 0); its path.

    `extra_arms` adds arms after the others are built (benchmarks/verdicts.py plants a slowdown)."""
    base = plans[tc.variants[0]]
    total = tc.warmup + tc.rounds * tc.steps
    arms = [build_arm(plans[v], info, c, total + SPARE_STEPS) for v, c in arm_keys(tc.variants)]
    for arm in arms:
        run_steps(arm, tc.warmup)
    arms += extra_arms(arms) if extra_arms else []
    orders = round_orders([a.key for a in arms], tc.rounds, tc.train.seed)
    pids = _gather((socket.gethostname(), os.getpid()), info)
    sampler = LoadSampler([p for h, p in pids if h == pids[0][0]]) if info.is_main else None
    if info.is_main:
        _start_dir(base.run_dir, timing_record(tc, base, info, orders), info)
        sampler.restart()
        time.sleep(QUIET_WINDOW_S)
        loads = [sampler.sample("start")]
    if info.distributed:
        tdist.barrier()
    log(f"{base.run_dir.name}: {len(arms)} arms ({', '.join(f'{v}#{c}' for v, c in (a.key for a in arms))}) × "
        f"{tc.rounds} rounds × {tc.steps} steps, order shuffled from seed {tc.train.seed}; {info.world_size} "
        f"rank(s) on {info.device}")
    rows, round_loads = time_rounds(arms, orders, tc.steps, info, sampler, log)
    host = socket.gethostname()
    every = [r for rank_rows in _gather([{**r, "host": host} for r in rows], info) for r in rank_rows]
    if info.is_main:
        sampler.restart()
        time.sleep(QUIET_WINDOW_S)
        loads += round_loads + [sampler.sample("end")]
        _finish_dir(base.run_dir, every, loads)
        log(f"run directory: {base.run_dir}")
    return base.run_dir


def _start_dir(run_dir: Path, config: dict, info: dist.DistInfo) -> None:
    if run_dir.exists():
        shutil.rmtree(run_dir)  # resolve() refused an existing one unless --overwrite
    run_dir.mkdir(parents=True)
    rundir.write_json(run_dir / rundir.CONFIG, config)
    rundir.write_json(run_dir / rundir.ENV, envinfo.collect(info.device))
    rundir.write_json(run_dir / rundir.SUMMARY, {"status": rundir.RUNNING, "kind": rundir.TIMING_KIND,
                                                 "run_name": run_dir.name})


def _finish_dir(run_dir: Path, rows: list[dict], loads: list[dict]) -> None:
    rundir.write_csv(run_dir / rundir.TIMING, rundir.TIMING_COLUMNS, rows)
    rundir.write_csv(run_dir / rundir.LOAD, rundir.LOAD_COLUMNS, loads)
    rundir.write_json(run_dir / rundir.SUMMARY, {"status": rundir.COMPLETE, "kind": rundir.TIMING_KIND,
                                                 "run_name": run_dir.name, "timed_steps": len(rows)})


def timing(tc: TimingConfig, log=print, extra_arms=None) -> Path:
    """One timing job (this rank's part of it): resolve, set up the process group, run, tear down."""
    _, local_rank, world_size, _ = dist.read_env()
    device = dist.resolve_device(tc.train.device, local_rank)
    plans = resolve_plans(tc, world_size, device)
    if tc.train.data == "fashion-mnist":
        fmnist.prepare(tc.train.data_dir, tc.train.download)
    c = tc.train
    info = dist.setup(c.device, c.backend, c.pg_timeout_s, c.deterministic, c.seed)
    try:
        return run(tc, plans, info, log if info.is_main else (lambda *a, **k: None), extra_arms)
    finally:
        dist.teardown()
