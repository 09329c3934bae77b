"""Train LeNet-BN on Fashion-MNIST with one BN variant; one process or many under torchrun.

    python -m bench.train --variant scratch
    torchrun --standalone --nproc_per_node=2 -m bench.train --variant sync

Every rank trains on its shard of one seeded permutation per epoch; rank 0 writes the run directory
(bench.rundir) and prints one line per epoch, then the textbook's two closing lines.
"""
from __future__ import annotations

import shutil
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel as DDP

from bench import data as fmnist
from bench import checkpoint, dist, emulate, envinfo, failure, rundir, tblog
from bench.config import TrainConfig, from_argv
from bench.errors import EXIT_USAGE, UsageError
from bench.guard import DivergenceGuard
from bench.model import build_model, set_bn_labels
from bench.norms import SYNCHRONISING, make_norm
from bench.profiling import StepProfiler
from bench.stash import StepOutputs
from bench.plan import bn_group_size, describe_bn, validate
from bench.step import make_step
from bench.timing import StepTimer, gc_paused, percentile


def _reduce(t: torch.Tensor, op=tdist.ReduceOp.SUM) -> torch.Tensor:
    if tdist.is_initialized():
        tdist.all_reduce(t, op=op)
    return t


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, info: dist.DistInfo,
             batch: int) -> float:
    """Accuracy over all of (x, y) exactly once: each rank scores a contiguous slice, counts summed."""
    n = len(x)
    lo, hi = n * info.rank // info.world_size, n * (info.rank + 1) // info.world_size
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for i in range(lo, hi, batch):
        correct += (model(x[i:min(i + batch, hi)]).argmax(1) == y[i:min(i + batch, hi)]).sum()
    model.train()
    return _reduce(correct).item() / n


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


def _sync_buffers(model: torch.nn.Module) -> None:
    """Rank 0's running statistics everywhere, so every rank evaluates the same network."""
    if tdist.is_initialized():
        for b in model.buffers():
            tdist.broadcast(b, src=0)


def train(cfg: TrainConfig) -> dict:
    """Run one training job (this rank's part of it); return the summary written to summary.json."""
    rank, local_rank, world_size, _ = dist.read_env()
    device = dist.resolve_device(cfg.device, local_rank)
    run_dir, resume = validate(cfg, world_size, device, restarted=dist.restart_count() > 0)
    fmnist.prepare(cfg.data_dir, cfg.download)  # missing or damaged data fails here, before any rank waits
    info = dist.setup(cfg.device, cfg.backend, cfg.pg_timeout_s, cfg.deterministic, cfg.seed)
    peers = [("", -1)] * world_size
    try:
        peers = failure.peer_table()
        return _train(cfg, info, run_dir, resume)
    except UsageError:
        raise
    except BaseException as e:  # record who failed and why, then let the caller exit non-zero
        failure.record(run_dir, info.rank, e, peers)
        raise
    finally:
        dist.teardown()


def _train(cfg: TrainConfig, info: dist.DistInfo, run_dir: Path, resume: bool = False) -> dict:
    W, P, G = info.world_size, cfg.batch_size // info.world_size, cfg.batch_size
    log = print if info.is_main else (lambda *a, **k: None)
    if info.distributed:
        tdist.barrier()  # every rank has validated before rank 0 touches the file system
    if info.is_main and not resume:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        (run_dir / rundir.TRACES).mkdir(parents=True)
    config = {**cfg.as_dict(), "world_size": W, "per_rank_batch": P, "global_batch": G,
              "launcher": info.launcher, "backend": info.backend, "device_type": info.device.type,
              "bn_group_size": bn_group_size(cfg, W), "bn_description": describe_bn(cfg, W),
              "run_name": run_dir.name, "mode": cfg.mode, "amp": cfg.amp, "restart_count": info.restart_count}
    if info.is_main:
        rundir.write_json(run_dir / rundir.CONFIG, config)
        rundir.write_json(run_dir / rundir.ENV, envinfo.collect(info.device))
        rundir.write_json(run_dir / rundir.SUMMARY, {"status": "running", "run_name": run_dir.name,
                                                     "resumed": resume, "restart_count": info.restart_count})
    if info.distributed:
        tdist.barrier()

    data = fmnist.load(cfg.data_dir, info.device, False, cfg.limit_train, cfg.limit_test)
    group = dist.consecutive_groups(bn_group_size(cfg, W), info) if cfg.variant in SYNCHRONISING and W > 1 else None
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.model, lambda c, d: emulate.wrap(make_norm(cfg.variant, c, d, process_group=group),
                                                           cfg.bn_emulate_ranks)).to(info.device)
    model = DDP(net, device_ids=[info.device.index] if info.device.type == "cuda" else None) if W > 1 else net
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    steps = len(data.train_x) // G  # the last incomplete global batch is dropped, as DistributedSampler can
    # Built before the profiler starts, so graph capture never runs under it.
    step = make_step(model, opt, cfg.mode, cfg.amp, (data.train_x[:P], data.train_y[:P]))
    metrics, measured_ms, status, start, bad = [], [], "complete", 0, None
    if resume:
        start, metrics, measured_ms = checkpoint.restore(run_dir, net=net, opt=opt, rank=info.rank,
                                                         device=info.device)
        log(f"resuming {run_dir} after epoch {start}")
    # A resumed attempt keeps the first attempt's trace; it leaves out its own cold first steps.
    prof = StepProfiler(run_dir / rundir.TRACES if cfg.profile and not start else None, info.rank, net,
                        info.device)
    if cfg.mode == "compile":
        set_bn_labels(net, False)  # dynamo drops record_function, and toggling labels would recompile
    skip = prof.window_steps + cfg.warmup_steps  # first steps of this attempt left out of the timing
    timer = StepTimer(info.device)
    guard = DivergenceGuard(info.device, cfg.check_finite_every)
    scalars = tblog.EpochScalars(run_dir / rundir.TRACES if info.is_main else None)
    outputs = StepOutputs(steps, P, info.device, copy=cfg.mode == "graph")
    log(f"{run_dir.name}: {describe_bn(cfg, W)}; {W} rank(s) × batch {P} on {info.device} "
        f"({info.backend or 'no process group'}); {steps} steps/epoch; mode {cfg.mode}, amp {cfg.amp}")

    for epoch in range(start, cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(data.train_x), generator=gen)[: steps * G].view(steps, W, P)[:, info.rank]
        order = order.to(info.device)
        rows = order.unbind(0)
        t0 = time.perf_counter()
        guard.new_epoch()
        outputs.new_epoch()
        with gc_paused():  # a full collection would land in one timed step (bench.timing)
            timer.mark()
            for i in range(steps):
                idx = rows[i]
                x, y = data.train_x[idx], data.train_y[idx]
                outputs.put(i, *step(x, y))
                prof.step()  # before the mark: the window's trace export lands in an untimed step
                timer.mark()
                if (bad := guard.first_bad_step(outputs, i, steps)) is not None:
                    break
        step_ms = timer.read_ms()
        if bad is not None:
            status, bad_loss = "diverged", outputs.losses(bad, bad + 1).item()
            log(f"epoch {epoch + 1}: loss is {bad_loss} at step {bad} on some rank; stopping every rank")
            break
        if info.device.type == "cuda":
            torch.cuda.synchronize(info.device)
        epoch_s = time.perf_counter() - t0
        first = max(0, skip - (epoch - start) * steps)  # a window longer than an epoch spills into the next
        timed = step_ms[first:]
        timed_s = _reduce(torch.tensor(sum(timed) / 1e3, dtype=torch.float64, device=info.device),
                          tdist.ReduceOp.MAX).item()  # the slowest rank sets the pace
        measured_ms += [(epoch, i + first, t) for i, t in enumerate(timed)]
        labels = data.train_y[order]
        sums = _reduce(torch.stack([outputs.losses(0, steps).sum().double(),
                                    (outputs.preds(steps) == labels).sum().double(),
                                    torch.tensor(float(steps * P), dtype=torch.float64, device=info.device)]))
        train_loss, train_acc = (sums[0] / (sums[2] / P)).item(), (sums[1] / sums[2]).item()
        _sync_buffers(net)
        test_acc = evaluate(net, data.test_x, data.test_y, info, cfg.eval_batch)
        eps = G * len(timed) / timed_s if timed else float("nan")
        metrics.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                        "test_acc": test_acc, "examples_per_s": eps, "epoch_s": epoch_s})
        if info.is_main:
            rundir.write_csv(run_dir / rundir.METRICS, rundir.METRICS_COLUMNS, metrics)
        checkpoint.save(run_dir, net=net, opt=opt, epochs_done=epoch + 1, metrics=metrics,
                        measured_ms=measured_ms, rank=info.rank, device=info.device)
        scalars.log(metrics[-1])
        log(f"epoch {epoch + 1}/{cfg.epochs}  loss {train_loss:.3f}  train acc {train_acc:.3f}  "
            f"test acc {test_acc:.3f}  {eps:,.1f} examples/s  {epoch_s:.1f} s", flush=True)
    prof.stop()
    scalars.close()

    by_rank = gather_step_ms([t for _, _, t in measured_ms], info)
    slowest = max(range(W), key=lambda r: sum(by_rank[r]))  # the slowest rank sets the pace
    times = by_rank[slowest]
    eps = G * len(times) / (sum(times) / 1e3) if times else float("nan")
    peak = None
    if info.device.type == "cuda":
        peak = int(_reduce(torch.tensor(torch.cuda.max_memory_allocated(info.device), device=info.device),
                           tdist.ReduceOp.MAX).item())
    nan = float("nan")
    last = metrics[-1] if metrics else {"train_loss": nan, "train_acc": nan, "test_acc": nan}
    summary = {
        "status": status, "run_name": run_dir.name, "variant": cfg.variant, "model": cfg.model,
        "world_size": W, "per_rank_batch": P, "global_batch": G, "epochs": cfg.epochs,
        "epochs_done": len(metrics), "seed": cfg.seed,
        "train_loss": last["train_loss"], "train_acc": last["train_acc"], "test_acc": last["test_acc"],
        "examples_per_s": eps, "examples_per_s_per_rank": eps / W, "measured_steps": len(times),
        "step_ms_p50": percentile(times, 50), "step_ms_p90": percentile(times, 90),
        "step_ms_rank": slowest,
        "peak_mem_bytes": peak, "device": str(info.device),
        # what DDP all-reduces each step: analysis.scale models that all-reduce at other world sizes
        "grad_bytes": sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad),
        "bn_group_size": bn_group_size(cfg, W), "bn_description": describe_bn(cfg, W),
        "mode": cfg.mode, "amp": cfg.amp, **step.setup_times(),
        "bn_emulate_ranks": cfg.bn_emulate_ranks,
        "resumed_from_epoch": start if resume else None, "restart_count": info.restart_count,
    }
    if status == "diverged":  # epoch 1-based as in metrics.csv, step 0-based as in step_times.csv
        summary.update(diverged_epoch=epoch + 1, diverged_step=bad, diverged_loss=repr(bad_loss),
                       failure=f"loss {bad_loss} at epoch {epoch + 1}, step {bad}")
    if info.is_main:
        rundir.write_csv(run_dir / rundir.STEP_TIMES, rundir.STEP_TIMES_COLUMNS,
                         [{"rank": r, "epoch": e + 1, "step": s, "step_ms": t}
                          for r, ms in enumerate(by_rank) for (e, s, _), t in zip(measured_ms, ms)])
        rundir.write_csv(run_dir / rundir.BN_PARAMS, rundir.BN_PARAMS_COLUMNS, bn_param_rows(net))
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    if cfg.mode != "eager":
        log(f"set-up outside the timing: " + ", ".join(f"{k} {v:.2f}" for k, v in step.setup_times().items()
                                                         if v is not None))
    # The textbook's closing lines, exactly.
    log(f"loss {last['train_loss']:.3f}, train acc {last['train_acc']:.3f}, test acc {last['test_acc']:.3f}")
    log(f"{eps:.1f} examples/sec on {info.device}")
    if not times:
        log(f"note: no step was timed: the first {skip} steps (profiler window and warm-up) are left out "
            f"and this attempt had {steps * (len(metrics) - start)}; raise --epochs or --limit-train, or pass --no-profile")
    log(f"run directory: {run_dir}", flush=True)
    return summary


def bn_param_rows(net: torch.nn.Module) -> list[dict]:
    """Final scale, shift and running statistics of every BN layer, one row per channel."""
    rows = []
    for name, m in net.named_modules():
        bufs = dict(m.named_buffers(recurse=False))
        if "running_mean" in bufs and isinstance(getattr(m, "weight", None), torch.nn.Parameter):
            cols = [m.weight, m.bias, bufs["running_mean"], bufs["running_var"]]
            for c, vals in enumerate(zip(*(t.detach().float().cpu().tolist() for t in cols))):
                rows.append(dict(zip(rundir.BN_PARAMS_COLUMNS, (name.removeprefix("layers."), c, *vals))))
    return rows


EXIT_FAILED, EXIT_DIVERGED = 1, 3
USAGE_GRACE_S = 5.0


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


if __name__ == "__main__":
    sys.exit(main())
