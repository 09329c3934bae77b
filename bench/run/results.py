"""The run directory's files: laid out before the job is built (config, environment, a running
summary), and what a finished (or diverged) run leaves: every rank's step times, the summary, BN
parameters."""
from __future__ import annotations

import shutil

import torch
import torch.distributed as tdist

from bench import rundir
from bench.nets import bn_layers
from bench.run import dist, envinfo
from bench.run.job import Job
from bench.run.loop import reduce_
from bench.run.plan import RunPlan
from bench.run.steptimer import percentile


def start_run_dir(plan: RunPlan, info: dist.DistInfo) -> None:
    """Rank 0 lays out the run directory (fresh, or as left for a resume) and records what runs."""
    if info.distributed:
        tdist.barrier()  # every rank has validated before rank 0 touches the file system
    ranks = envinfo.rank_hosts()
    if info.is_main:
        if not plan.resume:
            if plan.run_dir.exists():
                shutil.rmtree(plan.run_dir)
            (plan.run_dir / rundir.TRACES).mkdir(parents=True)
        config = {**plan.record(), "launcher": info.launcher, "backend": info.backend,
                  "device_type": info.device.type, "restart_count": info.restart_count}
        rundir.write_json(plan.run_dir / rundir.CONFIG, config)
        rundir.write_json(plan.run_dir / rundir.ENV, {**envinfo.collect(info.device), "ranks": ranks,
                                                      "hosts": len({r["hostname"] for r in ranks})})
        rundir.write_json(plan.run_dir / rundir.SUMMARY, {"status": rundir.RUNNING, "run_name": plan.run_name,
                                                          "resumed": plan.resume,
                                                          "restart_count": info.restart_count})
    if info.distributed:
        tdist.barrier()


def gather_step_ms(times: list[float], info: dist.DistInfo) -> list[list[float]]:
    """Every rank's measured step times (ms), indexed by rank. Ranks time the same steps; a rank
    with a different count is a bug, reported as one rather than as a hung collective."""
    if not info.distributed:
        return [times]
    counts = [torch.zeros((), dtype=torch.int64, device=info.device) for _ in range(info.world_size)]
    tdist.all_gather(counts, torch.tensor(len(times), device=info.device))
    if len({int(c) for c in counts}) > 1:
        raise RuntimeError(f"ranks timed different numbers of steps: {[int(c) for c in counts]}")
    if not times:
        return [[] for _ in range(info.world_size)]
    mine = torch.tensor(times, dtype=torch.float64, device=info.device)
    out = [torch.empty_like(mine) for _ in range(info.world_size)]
    tdist.all_gather(out, mine)
    return [t.tolist() for t in out]


def bn_param_rows(net: torch.nn.Module) -> list[dict]:
    """Final scale, shift and running statistics of every norm layer, one row per channel; a layer
    without running statistics (gn) has them empty."""
    rows = []
    for name, m in bn_layers(net):
        cols = [m.weight, m.bias, getattr(m, "running_mean", None), getattr(m, "running_var", None)]
        empty = [None] * m.weight.numel()
        for c, vals in enumerate(zip(*(empty if t is None else t.detach().float().cpu().tolist() for t in cols))):
            rows.append(dict(zip(rundir.BN_PARAMS_COLUMNS, (name, c, *vals))))
    return rows


def _peak_mem(info: dist.DistInfo) -> int | None:
    if info.device.type != "cuda":
        return None
    return int(reduce_(torch.tensor(torch.cuda.max_memory_allocated(info.device), device=info.device),
                       tdist.ReduceOp.MAX).item())


def _wait_share(metrics: list[dict], times: list[float]) -> float | None:
    """The input pipeline's share of the timed steps: seconds waited for batches (the longest-waiting
    rank's, each epoch) over the slowest rank's step seconds. None before any step was timed."""
    waited = [m.get("data_wait_s") for m in metrics]
    if not times or any(w is None for w in waited):  # a checkpoint from before it was recorded
        return None
    return sum(w for w in waited if w == w) / (sum(times) / 1e3)  # NaN: an epoch with no timed step


def summarise(job: Job, by_rank: list[list[float]], status: str, start: int) -> dict:
    """summary.json: final metrics, throughput and step times of the slowest rank, status."""
    plan, info, cfg = job.plan, job.info, job.plan.cfg
    W, G = plan.world_size, plan.global_batch
    slowest = max(range(W), key=lambda r: sum(by_rank[r]))  # the slowest rank sets the pace
    times = by_rank[slowest]
    eps = G * len(times) / (sum(times) / 1e3) if times else float("nan")
    nan = float("nan")
    last = job.metrics[-1] if job.metrics else {"train_loss": nan, "train_acc": nan, "test_acc": nan}
    return {
        "status": status, "run_name": plan.run_name, "variant": cfg.variant, "model": cfg.model,
        "world_size": W, "per_rank_batch": plan.per_rank_batch, "global_batch": G, "epochs": cfg.epochs,
        "epochs_done": len(job.metrics), "seed": cfg.seed,
        "train_loss": last["train_loss"], "train_acc": last["train_acc"], "test_acc": last["test_acc"],
        "test_acc5": last.get("test_acc5"),
        "examples_per_s": eps, "examples_per_s_per_rank": eps / W, "measured_steps": len(times),
        "step_ms_p50": percentile(times, 50), "step_ms_p90": percentile(times, 90),
        "step_ms_rank": slowest, "peak_mem_bytes": _peak_mem(info), "device": str(info.device),
        # what DDP all-reduces each step: analysis.scale models that all-reduce at other world sizes
        "grad_bytes": sum(p.numel() * p.element_size() for p in job.net.parameters() if p.requires_grad),
        "bn_group_size": plan.bn_group_size, "bn_description": plan.bn_description,
        "mode": cfg.mode, "amp": cfg.amp, **job.step.setup_times(),
        "bn_emulate_ranks": cfg.bn_emulate_ranks, "data": cfg.data,
        "data_wait_share": _wait_share(job.metrics, times),
        "resumed_from_epoch": start if plan.resume else None, "restart_count": info.restart_count,
    }


def write(job: Job, by_rank: list[list[float]], summary: dict) -> None:
    """Rank 0 writes step_times.csv, bn_params.csv and summary.json (last: it says the run ended)."""
    if not job.info.is_main:
        return
    run_dir = job.plan.run_dir
    rundir.write_csv(run_dir / rundir.STEP_TIMES, rundir.STEP_TIMES_COLUMNS,
                     [{"rank": r, "epoch": e + 1, "step": s, "step_ms": t}
                      for r, ms in enumerate(by_rank) for (e, s, _), t in zip(job.measured_ms, ms)])
    rundir.write_csv(run_dir / rundir.BN_PARAMS, rundir.BN_PARAMS_COLUMNS, bn_param_rows(job.net))
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
