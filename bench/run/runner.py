"""Train one network with one BN variant; one process or many under torchrun.

    python -m bench.train --variant scratch
    torchrun --standalone --nproc_per_node=2 -m bench.train --variant sync

The run is resolved once (bench.run.plan); each rank lays out the run directory (bench.run.results),
builds its job (bench.run.job) and trains it (bench.run.loop); rank 0 writes the run directory
(bench.rundir) and prints one line per epoch, then the textbook's two closing lines.
SIGTERM or SIGUSR1 during training stops every rank at a step boundary with a checkpoint
(bench.run.stepbounds); docs/reliability.md has every status and exit code.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import time
import traceback


from bench import rundir
from bench.errors import EXIT_DIVERGED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from bench.nets import set_bn_labels
from bench.run import checkpoint, dist, failure, loop, results, results_file, scalars, stepbounds
from bench.run.config import TrainConfig, from_argv
from bench.run.datasets import feeds
from bench.run.divergence import DivergenceGuard
from bench.run.job import Job, build_job
from bench.run.plan import RunPlan, resolve
from bench.run.profiler import StepProfiler
from bench.run.stepstash import StepOutputs
from bench.run.steptimer import StepTimer

USAGE_GRACE_S = 5.0


def train(cfg: TrainConfig, stop: stepbounds.StopRequest | None = None) -> dict:
    """Run one training job (this rank's part of it); return the summary written to summary.json.

    `stop` is armed while the epochs run, so SIGTERM/SIGUSR1 end the run at a step boundary with a
    checkpoint (status interrupted). The bench.train command passes one; a tool that trains several
    times in one process passes none and keeps its own signal handling."""
    _, local_rank, world_size, _ = dist.read_env()
    device = dist.resolve_device(cfg.device, local_rank)
    plan = resolve(cfg, world_size, device, restarted=dist.restart_count() > 0)
    feeds.prepare(cfg)  # missing or damaged data fails here, before any rank waits
    info = dist.setup(cfg.device, cfg.backend, cfg.pg_timeout_s, cfg.deterministic, cfg.seed)
    peers = [("", -1)] * world_size
    try:
        peers = failure.peer_table()
        summary = run(plan, info, stop)
        results_file.append(cfg.results_file, plan, summary, info.is_main)
        dist.end_together(info)
        return summary
    except UsageError:
        raise
    except BaseException as e:  # record who failed and why, then let the caller exit non-zero
        failure.record(plan.run_dir, info.rank, e, peers)
        raise
    finally:
        dist.teardown()


def run(plan: RunPlan, info: dist.DistInfo, stop: stepbounds.StopRequest | None = None) -> dict:
    """Train every epoch left (or until a stop request is agreed), then write the results; return the summary."""
    cfg, log = plan.cfg, print if info.is_main else (lambda *a, **k: None)
    results.start_run_dir(plan, info)
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
    bounds = stepbounds.StepBoundaries(job, guard, StepTimer(info.device), outputs, stop or stepbounds.StopRequest())
    log(f"{plan.run_name}: {plan.bn_description}; {plan.world_size} rank(s) × batch {plan.per_rank_batch} on "
        f"{info.device} ({info.backend or 'no process group'}); {plan.steps_per_epoch} steps/epoch; "
        f"mode {cfg.mode}, amp {cfg.amp}")
    with stop.armed() if stop else contextlib.nullcontext():  # signals stop at a step boundary
        status, ep = loop.train_epochs(job, start, mid, prof, bounds, epoch_scalars, log)
        prof.stop()
        epoch_scalars.close()
        return _finish(job, status, start, ep, guard, outputs, log)


def _stopped(job: Job, ep: loop.Epoch, guard: DivergenceGuard, outputs: StepOutputs, status: str) -> dict:
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


def _finish(job: Job, status: str, start: int, ep: loop.Epoch | None, guard: DivergenceGuard,
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
    acc = loop.format_acc
    log(f"loss {s['train_loss']:.3f}, train acc {acc(s['train_acc'])}, test acc {acc(s['test_acc'])}")
    log(f"{s['examples_per_s']:.1f} examples/sec on {job.info.device}")
    if not s["measured_steps"] and status == rundir.COMPLETE:
        log(_untimed_note(plan.untimed_steps, cfg.profile))
    log(f"run directory: {plan.run_dir}", flush=True)
    return summary


def _untimed_note(untimed_steps: int, profiled: bool) -> str:
    """Why a finished run timed no step, and the fix; the profiler is named only when it ran.

    >>> [("profiler" in _untimed_note(12, p), "--no-profile" in _untimed_note(12, p)) for p in (True, False)]
    [(True, True), (False, False)]
    """
    if profiled:
        return (f"note: no step was timed: the first {untimed_steps} steps (profiler window and warm-up) are "
                f"left out and this attempt had fewer; raise --epochs, --steps or --limit-train, or pass --no-profile")
    return (f"note: no step was timed: the first {untimed_steps} steps (warm-up) are left out and this attempt "
            f"had fewer; raise --epochs, --steps or --limit-train, or lower --warmup-steps")


def _quiet_exit(signum, frame):
    raise SystemExit(EXIT_USAGE)  # no traceback: the interpreter prints nothing for SystemExit


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 complete, 1 failed (summary.json names the rank and reason), 2 usage error,
    3 diverged, 75 interrupted (a checkpoint to resume from is written)."""
    cfg = from_argv(argv)
    failure.install_sigterm_handler()
    try:
        summary = train(cfg, stepbounds.StopRequest())
    except UsageError as e:
        if dist.read_env()[0] == 0:
            print(f"bench.train: error: {e}", file=sys.stderr)
        else:  # torchrun stops the job when any rank exits: give rank 0 time to print its line,
            for s in stepbounds.STOP_SIGNALS:  # and leave quietly when torchrun stops this one meanwhile
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
