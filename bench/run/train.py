"""Train one network with one BN variant; one process or many under torchrun.

    python -m bench.train --variant scratch
    torchrun --standalone --nproc_per_node=2 -m bench.train --variant sync

The run is resolved once (bench.run.plan), then each rank trains (bench.run.loop); rank 0 writes the
run directory (bench.rundir) and prints one line per epoch, then the textbook's two closing lines.
"""
from __future__ import annotations

import sys
import time
import traceback

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_USAGE, UsageError
from bench.nets import set_bn_labels
from bench.run import checkpoint, dist, failure, loop, results, scalars, sources
from bench.run import data as fmnist
from bench.run.config import TrainConfig, from_argv
from bench.run.divergence import DivergenceGuard
from bench.run.outputs import StepOutputs
from bench.run.plan import RunPlan, resolve
from bench.run.profiler import StepProfiler
from bench.run.step import make_step
from bench.run.timing import StepTimer

USAGE_GRACE_S = 5.0


def train(cfg: TrainConfig) -> dict:
    """Run one training job (this rank's part of it); return the summary written to summary.json."""
    _, local_rank, world_size, _ = dist.read_env()
    device = dist.resolve_device(cfg.device, local_rank)
    plan = resolve(cfg, world_size, device, restarted=dist.restart_count() > 0)
    if cfg.data == "fashion-mnist":  # missing or damaged data fails here, before any rank waits
        fmnist.prepare(cfg.data_dir, cfg.download)
    info = dist.setup(cfg.device, cfg.backend, cfg.pg_timeout_s, cfg.deterministic, cfg.seed)
    peers = [("", -1)] * world_size
    try:
        peers = failure.peer_table()
        return run(plan, info)
    except UsageError:
        raise
    except BaseException as e:  # record who failed and why, then let the caller exit non-zero
        failure.record(plan.run_dir, info.rank, e, peers)
        raise
    finally:
        dist.teardown()


def build_job(plan: RunPlan, info: dist.DistInfo) -> loop.Job:
    """Data, network (DDP around it on several ranks), optimizer and step of this rank."""
    cfg = plan.cfg
    data = sources.load(cfg, plan.data, info.device)
    # a synchronising variant gets its group of ranks (groups of one under --bn-group-size 1)
    group = None
    if cfg.variant in rundir.SYNCHRONISING and info.distributed:
        group = dist.consecutive_groups(plan.bn_group_size, info)
    net = loop.build_net(cfg, info.device, group, plan.data)
    model = net
    if info.distributed:
        model = DDP(net, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    # Built before the profiler starts, so graph capture never runs under it.
    step = make_step(model, opt, cfg.mode, cfg.amp, data.example(plan.per_rank_batch))
    return loop.Job(plan, info, data, net, model, opt, step)


def run(plan: RunPlan, info: dist.DistInfo) -> dict:
    """Train every epoch left, then write the results; return the summary."""
    cfg, log = plan.cfg, print if info.is_main else (lambda *a, **k: None)
    loop.start_run_dir(plan, info)
    job = build_job(plan, info)
    start = 0
    if plan.resume:
        start, job.metrics, job.measured_ms = checkpoint.restore(plan.run_dir, net=job.net, opt=job.opt,
                                                                 rank=info.rank, device=info.device)
        log(f"resuming {plan.run_dir} after epoch {start}")
    prof = StepProfiler(plan.run_dir / rundir.TRACES if plan.profile else None, info.rank, job.net, info.device)
    if cfg.mode == "compile":
        set_bn_labels(job.net, False)  # dynamo drops record_function, and toggling labels would recompile
    timer, guard = StepTimer(info.device), DivergenceGuard(info.device, cfg.check_finite_every)
    epoch_scalars = scalars.EpochScalars(plan.run_dir / rundir.TRACES if info.is_main else None)
    outputs = StepOutputs(plan.steps_per_epoch, plan.per_rank_batch, info.device, copy=cfg.mode == "graph")
    log(f"{plan.run_name}: {plan.bn_description}; {plan.world_size} rank(s) × batch {plan.per_rank_batch} on "
        f"{info.device} ({info.backend or 'no process group'}); {plan.steps_per_epoch} steps/epoch; "
        f"mode {cfg.mode}, amp {cfg.amp}")
    status, ep = "complete", None
    for epoch in range(start, cfg.epochs):
        ep = loop.run_epoch(job, epoch, prof, timer, guard, outputs)
        if ep.bad_step is not None:
            status = "diverged"
            log(f"epoch {epoch + 1}: loss is {_bad_loss(outputs, ep)} at step {ep.bad_step} on some rank; "
                f"stopping every rank")
            break
        # a window longer than an epoch spills into the next
        first = max(0, plan.untimed_steps - (epoch - start) * plan.steps_per_epoch)
        job.metrics.append(loop.epoch_metrics(job, ep, first, outputs))
        _end_epoch(job, epoch_scalars, log)
    prof.stop()
    epoch_scalars.close()
    return _finish(job, status, start, ep, outputs, log)


def _bad_loss(outputs: StepOutputs, ep: loop.Epoch) -> float:
    return outputs.losses(ep.bad_step, ep.bad_step + 1).item()


def _end_epoch(job: loop.Job, epoch_scalars: scalars.EpochScalars, log) -> None:
    """Record the epoch just finished: metrics.csv, the checkpoint, TensorBoard scalars, one line."""
    m, info = job.metrics[-1], job.info
    if info.is_main:
        rundir.write_csv(job.plan.run_dir / rundir.METRICS, rundir.METRICS_COLUMNS, job.metrics)
    checkpoint.save(job.plan.run_dir, net=job.net, opt=job.opt, epochs_done=m["epoch"], metrics=job.metrics,
                    measured_ms=job.measured_ms, rank=info.rank, device=info.device)
    epoch_scalars.log(m)
    log(f"epoch {m['epoch']}/{job.plan.cfg.epochs}  loss {m['train_loss']:.3f}  train acc {_acc(m['train_acc'])}  "
        f"test acc {_acc(m['test_acc'])}  {m['examples_per_s']:,.1f} examples/s  {m['epoch_s']:.1f} s", flush=True)


def _acc(value: float | None) -> str:
    """An accuracy as printed: three decimals, or n/a where it is not measured (never 0)."""
    return "n/a" if value is None else f"{value:.3f}"


def _finish(job: loop.Job, status: str, start: int, ep: loop.Epoch | None, outputs: StepOutputs, log) -> dict:
    """Gather every rank's step times, write the results, print the closing lines."""
    plan, cfg = job.plan, job.plan.cfg
    by_rank = results.gather_step_ms([t for _, _, t in job.measured_ms], job.info)
    summary = results.summarise(job, by_rank, status, start)
    if status == "diverged":  # epoch 1-based as in metrics.csv, step 0-based as in step_times.csv
        bad_loss = _bad_loss(outputs, ep)
        summary.update(diverged_epoch=ep.index + 1, diverged_step=ep.bad_step, diverged_loss=repr(bad_loss),
                       failure=f"loss {bad_loss} at epoch {ep.index + 1}, step {ep.bad_step}")
    results.write(job, by_rank, summary)
    if cfg.mode != "eager":
        log("set-up outside the timing: " + ", ".join(f"{k} {v:.2f}" for k, v in job.step.setup_times().items()
                                                        if v is not None))
    s = summary  # the textbook's closing lines, exactly
    log(f"loss {s['train_loss']:.3f}, train acc {_acc(s['train_acc'])}, test acc {_acc(s['test_acc'])}")
    log(f"{s['examples_per_s']:.1f} examples/sec on {job.info.device}")
    if not s["measured_steps"]:
        log(f"note: no step was timed: the first {plan.untimed_steps} steps (profiler window and warm-up) are "
            f"left out and this attempt had {plan.steps_per_epoch * (len(job.metrics) - start)}; raise "
            f"--epochs, --steps or --limit-train, or pass --no-profile")
    log(f"run directory: {plan.run_dir}", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 complete, 1 failed (summary.json names the rank and reason), 2 usage error,
    3 diverged."""
    cfg = from_argv(argv)
    failure.install_sigterm_handler()
    try:
        summary = train(cfg)
    except UsageError as e:
        if dist.read_env()[0] == 0:
            print(f"bench.train: error: {e}", file=sys.stderr)
        else:  # torchrun stops the job when any rank exits: give rank 0 time to print its line
            time.sleep(USAGE_GRACE_S)
        return EXIT_USAGE
    except (Exception, failure.Terminated, KeyboardInterrupt) as e:
        rank = dist.read_env()[0]
        if failure.is_peer_loss(e):  # the cause is on another rank; its own log has the traceback
            print(f"bench.train: rank {rank} stopped: {failure.reason(e)}", file=sys.stderr)
        else:
            traceback.print_exc()
        return EXIT_FAILED
    return {"complete": 0, "diverged": EXIT_DIVERGED}.get(summary["status"], EXIT_FAILED)
