"""Train one network with one BN variant; one process or many under torchrun.

    python -m bench.train --variant scratch
    torchrun --standalone --nproc_per_node=2 -m bench.train --variant sync

The run is resolved once (bench.run.plan), then each rank trains (bench.run.loop); rank 0 writes the
run directory (bench.rundir) and prints one line per epoch, then the textbook's two closing lines.
SIGTERM or SIGUSR1 during training stops every rank at a step boundary with a checkpoint
(bench.run.preempt); docs/reliability.md has every status and exit code.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import time
import traceback

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from bench.nets import set_bn_labels
from bench.run import checkpoint, dist, failure, loop, preempt, recipe, results, results_file, scalars, sources
from bench.run import data as fmnist
from bench.run.config import TrainConfig, from_argv
from bench.run.divergence import DivergenceGuard
from bench.run.outputs import StepOutputs
from bench.run.plan import RunPlan, resolve
from bench.run.profiler import StepProfiler
from bench.run.step import make_step
from bench.run.timing import StepTimer

USAGE_GRACE_S = 5.0


def train(cfg: TrainConfig, stop: preempt.StopRequest | None = None) -> dict:
    """Run one training job (this rank's part of it); return the summary written to summary.json.

    `stop` is armed while the epochs run, so SIGTERM/SIGUSR1 end the run at a step boundary with a
    checkpoint (status interrupted). The bench.train command passes one; a tool that trains several
    times in one process passes none and keeps its own signal handling."""
    _, local_rank, world_size, _ = dist.read_env()
    device = dist.resolve_device(cfg.device, local_rank)
    plan = resolve(cfg, world_size, device, restarted=dist.restart_count() > 0)
    if cfg.data == "fashion-mnist":  # missing or damaged data fails here, before any rank waits
        fmnist.prepare(cfg.data_dir, cfg.download)
    info = dist.setup(cfg.device, cfg.backend, cfg.pg_timeout_s, cfg.deterministic, cfg.seed)
    peers = [("", -1)] * world_size
    try:
        peers = failure.peer_table()
        summary = run(plan, info, stop)
        results_file.append(cfg.results_file, plan, summary, info.is_main)
        return summary
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
    opt = recipe.make_optimizer(model, plan.recipe)
    # Built before the profiler starts, so graph capture never runs under it.
    step = make_step(model, opt, cfg.mode, cfg.amp, data.example(plan.per_rank_batch), plan.recipe.label_smoothing)
    step.run = recipe.per_step(step.run, opt, plan.recipe, plan.steps_per_epoch, cfg.epochs, cfg.print_freq,
                               print if info.is_main else (lambda *a, **k: None))
    return loop.Job(plan, info, data, net, model, opt, step)


def run(plan: RunPlan, info: dist.DistInfo, stop: preempt.StopRequest | None = None) -> dict:
    """Train every epoch left (or until a stop request is agreed), then write the results; return the summary."""
    cfg, log = plan.cfg, print if info.is_main else (lambda *a, **k: None)
    loop.start_run_dir(plan, info)
    job = build_job(plan, info)
    guard = DivergenceGuard(info.device, cfg.check_finite_every, cfg.diverge_above)
    start, mid = 0, None
    if plan.resume:
        r = checkpoint.restore(plan.run_dir, net=job.net, opt=job.opt, rank=info.rank, device=info.device)
        start, job.metrics, job.measured_ms, mid = r.epochs_done, r.metrics, r.measured_ms, r.mid
        guard.load_state(r.guard)
        log(f"resuming {plan.run_dir} after epoch {start}" + (f", step {mid.steps_done}" if mid else ""))
    prof = StepProfiler(plan.run_dir / rundir.TRACES if plan.profile else None, info.rank, job.net, info.device)
    if cfg.mode == "compile":
        set_bn_labels(job.net, False)  # dynamo drops record_function, and toggling labels would recompile
    epoch_scalars = scalars.EpochScalars(plan.run_dir / rundir.TRACES if info.is_main else None)
    outputs = StepOutputs(plan.steps_per_epoch, plan.per_rank_batch, info.device, copy=cfg.mode == "graph")
    bounds = preempt.StepBoundaries(job, guard, StepTimer(info.device), outputs, stop or preempt.StopRequest())
    log(f"{plan.run_name}: {plan.bn_description}; {plan.world_size} rank(s) × batch {plan.per_rank_batch} on "
        f"{info.device} ({info.backend or 'no process group'}); {plan.steps_per_epoch} steps/epoch; "
        f"mode {cfg.mode}, amp {cfg.amp}")
    with stop.armed() if stop else contextlib.nullcontext():  # signals stop at a step boundary
        status, ep = _epochs(job, start, mid, prof, bounds, epoch_scalars, log)
        prof.stop()
        epoch_scalars.close()
        return _finish(job, status, start, ep, guard, outputs, log)


def _epochs(job: loop.Job, start: int, mid: checkpoint.MidEpoch | None, prof: StepProfiler,
            bounds: preempt.StepBoundaries, epoch_scalars: scalars.EpochScalars, log) -> tuple[str, loop.Epoch | None]:
    """Train from epoch `start` (step `mid.steps_done` of it, when resuming mid-epoch) until the last
    epoch, a divergence or an agreed stop; (status, last epoch)."""
    plan, cfg = job.plan, job.plan.cfg
    ep = None
    for epoch in range(start, cfg.epochs):
        ep = loop.run_epoch(job, epoch, prof, bounds, mid if epoch == start else None)
        if ep.bad_step is not None:
            log(f"epoch {epoch + 1}: loss went bad (non-finite or above --diverge-above {cfg.diverge_above}) at "
                f"step {ep.bad_step} on some rank; stopping every rank")
            return rundir.DIVERGED, ep
        if ep.steps_done < plan.steps_per_epoch:
            return rundir.INTERRUPTED, ep  # the step checkpoint is written
        job.metrics.append(loop.epoch_metrics(job, ep, bounds.outputs))
        ep.stop_signal = _end_epoch(job, epoch_scalars, bounds.guard, bounds.stop.signal, log)
        if ep.stop_signal and epoch + 1 < cfg.epochs:
            return rundir.INTERRUPTED, ep
    return rundir.COMPLETE, ep


def _end_epoch(job: loop.Job, epoch_scalars: scalars.EpochScalars, guard: DivergenceGuard, stop_signal: int,
               log) -> int:
    """Record the epoch just finished: metrics.csv, the checkpoint, TensorBoard scalars, one line.
    Returns the stop request of any rank (agreed in the checkpoint's gather), 0 for none."""
    m, info = job.metrics[-1], job.info
    if info.is_main:
        rundir.write_csv(job.plan.run_dir / rundir.METRICS, rundir.METRICS_COLUMNS, job.metrics)
    agreed = checkpoint.save(job.plan.run_dir, net=job.net, opt=job.opt, epochs_done=m["epoch"],
                             metrics=job.metrics, measured_ms=job.measured_ms, rank=info.rank, device=info.device,
                             guard=guard.state(), stop_signal=stop_signal)
    epoch_scalars.log(m)
    log(f"epoch {m['epoch']}/{job.plan.cfg.epochs}  loss {m['train_loss']:.3f}  train acc {_acc(m['train_acc'])}  "
        f"test acc {_acc(m['test_acc'])}  {m['examples_per_s']:,.1f} examples/s  {m['epoch_s']:.1f} s", flush=True)
    return agreed


def _acc(value: float | None) -> str:
    """An accuracy as printed: three decimals, or n/a where it is not measured (never 0)."""
    return "n/a" if value is None else f"{value:.3f}"


def _stopped(job: loop.Job, ep: loop.Epoch, guard: DivergenceGuard, outputs: StepOutputs, status: str) -> dict:
    """summary.json's account of a run that did not complete: where, why (collective for divergence)."""
    if status == rundir.DIVERGED:  # epoch 1-based as in metrics.csv, step 0-based as in step_times.csv
        where = f"at epoch {ep.index + 1}, step {ep.bad_step}"
        d = guard.describe(outputs, ep.bad_step)
        above = f" above {d['diverged_bound']:.6g} (--diverge-above {job.plan.cfg.diverge_above})" \
            if d["diverged_loss"] not in ("nan", "inf", "-inf") else ""
        return {**d, "diverged_epoch": ep.index + 1, "diverged_step": ep.bad_step,
                "failure": f"loss {d['diverged_loss']}{above} {where}"}
    name = signal.Signals(ep.stop_signal).name
    epochs_done, steps_done = len(job.metrics), ep.steps_done % job.plan.steps_per_epoch
    where = (f"in epoch {epochs_done + 1} after {steps_done} of {job.plan.steps_per_epoch} steps" if steps_done
             else f"after epoch {epochs_done}")
    return {"resumable": True, "stop_signal": name, "steps_done": steps_done,
            "failure": f"stopped by {name} {where}, checkpoint written; continue with --resume {job.plan.run_dir}"}


def _finish(job: loop.Job, status: str, start: int, ep: loop.Epoch | None, guard: DivergenceGuard,
            outputs: StepOutputs, log) -> dict:
    """Gather every rank's step times, write the results, print the closing lines."""
    plan, cfg = job.plan, job.plan.cfg
    by_rank = results.gather_step_ms([t for _, _, t in job.measured_ms], job.info)
    summary = results.summarise(job, by_rank, status, start)
    if status != rundir.COMPLETE:
        summary.update(_stopped(job, ep, guard, outputs, status))
    results.write(job, by_rank, summary)
    if cfg.mode != "eager":
        log("set-up outside the timing: " + ", ".join(f"{k} {v:.2f}" for k, v in job.step.setup_times().items()
                                                        if v is not None))
    s = summary
    if status == rundir.INTERRUPTED:
        log(s["failure"], flush=True)
        return summary
    # the textbook's closing lines, exactly
    log(f"loss {s['train_loss']:.3f}, train acc {_acc(s['train_acc'])}, test acc {_acc(s['test_acc'])}")
    log(f"{s['examples_per_s']:.1f} examples/sec on {job.info.device}")
    if not s["measured_steps"] and status == rundir.COMPLETE:
        log(f"note: no step was timed: the first {plan.untimed_steps} steps (profiler window and warm-up) are "
            f"left out and this attempt had fewer; raise --epochs, --steps or --limit-train, or pass --no-profile")
    log(f"run directory: {plan.run_dir}", flush=True)
    return summary


def _quiet_exit(signum, frame):
    raise SystemExit(EXIT_USAGE)  # no traceback: the interpreter prints nothing for SystemExit


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 complete, 1 failed (summary.json names the rank and reason), 2 usage error,
    3 diverged, 75 interrupted (a checkpoint to resume from is written)."""
    cfg = from_argv(argv)
    failure.install_sigterm_handler()
    try:
        summary = train(cfg, preempt.StopRequest())
    except UsageError as e:
        if dist.read_env()[0] == 0:
            print(f"bench.train: error: {e}", file=sys.stderr)
        else:  # torchrun stops the job when any rank exits: give rank 0 time to print its line,
            for s in preempt.STOP_SIGNALS:  # and leave quietly when torchrun stops this one meanwhile
                signal.signal(s, _quiet_exit)
            time.sleep(USAGE_GRACE_S)
        return EXIT_USAGE
    except (Exception, failure.Terminated, KeyboardInterrupt) as e:
        rank = dist.read_env()[0]
        if isinstance(e, failure.Terminated) and rank != 0:
            pass  # stopped by the launcher or scheduler: rank 0 and summary.json speak for the job
        elif failure.is_peer_loss(e):  # the cause is on another rank; its own log has the traceback
            print(f"bench.train: rank {rank} stopped: {failure.reason(e)}", file=sys.stderr)
        else:
            traceback.print_exc()
        return EXIT_FAILED
    codes = {rundir.COMPLETE: 0, rundir.DIVERGED: EXIT_DIVERGED, rundir.INTERRUPTED: EXIT_INTERRUPTED}
    return codes.get(summary["status"], EXIT_FAILED)
