"""Checkpoints at epoch ends and between steps, and resuming from them.

`<run>/checkpoint.pt` holds everything the rest of a run depends on: the network's parameters and
buffers (BN running statistics included), the optimizer, every rank's RNG states, BN buffers, measured
step times and divergence-guard state, the epochs done and their metrics. A checkpoint taken inside
an epoch (`--checkpoint-every-steps`, or a stop request: bench.run.stepbounds) also holds the position in
that epoch and, per rank, the epoch so far (`MidEpoch`): each step's loss and predictions, for the
epoch's loss and accuracy, and the step times measured. The data order needs nothing more: each
epoch's permutation is seeded by (seed, epoch). Rank 0 writes it atomically (bench.rundir), so a
crash at any moment leaves the previous checkpoint or the new one.

Which run directory a job uses, and whether it starts fresh or resumes, is decided here
(`choose_run_dir`) before any process group exists, so a wrong `--resume` is a usage error.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as tdist

from bench import rundir
from bench.errors import UsageError

FORMAT = 2
# Options that may differ between the interrupted attempt and the resumed one: where things live,
# how long to wait, how often to check and checkpoint, and how many epochs in all (a run may be
# extended). config.json stores the resolved backend, so the flag cannot be compared.
MAY_DIFFER = frozenset({"epochs", "out", "run_name", "overwrite", "resume", "auto_resume", "data_dir",
                        "download", "pg_timeout_s", "device", "backend", "check_finite_every",
                        "checkpoint_every_steps", "diverge_above"})


@dataclass
class MidEpoch:
    """One rank's part of an epoch an earlier attempt stopped in: its first `steps_done` steps."""
    steps_done: int
    losses: torch.Tensor          # (steps_done,) float32, as bench.run.stepstash holds them
    preds: torch.Tensor           # (steps_done, per-rank batch) int64
    timed: list = field(default_factory=list)  # (step, ms) of the steps measured so far
    seconds: float = 0.0          # wall time spent in the epoch's steps so far


@dataclass
class Restored:
    """What a checkpoint gives back to this rank (the network and optimizer are loaded in place)."""
    epochs_done: int
    metrics: list[dict]
    measured_ms: list
    guard: dict
    mid: MidEpoch | None  # the next epoch was under way


def _status(run_dir: Path) -> str | None:
    try:
        return rundir.read_json(run_dir / rundir.SUMMARY).get("status")
    except (OSError, ValueError):
        return None


def _check_same_run(run_dir: Path, options: dict, world_size: int) -> None:
    try:
        before = rundir.read_json(run_dir / rundir.CONFIG)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {run_dir / rundir.CONFIG} ({e}): not a run directory to resume") from None
    changed = [k for k, v in options.items() if k not in MAY_DIFFER and k in before and before[k] != v]
    if before.get("world_size") != world_size:
        changed.append(f"world size {before.get('world_size')} -> {world_size}")
    if changed:
        raise UsageError(f"cannot resume {run_dir}: options differ from the interrupted run "
                         f"({', '.join(changed)}); rerun with the run's own flags (see its config.json)")


def choose_run_dir(options: dict, default_dir: Path, world_size: int, restarted: bool) -> tuple[Path, bool]:
    """(run directory, resume?) for this job; raise UsageError when neither is allowed.

    --resume DIR           resume DIR (it must hold a checkpoint of the same configuration)
    torchrun restart,      resume the default directory if it holds an unfinished checkpointed run,
    or --auto-resume       else start it over (the previous attempt stopped before a checkpoint)
    otherwise              a fresh run; an existing directory needs --overwrite
    """
    if options.get("resume"):
        run_dir = Path(options["resume"])
        if not (run_dir / rundir.CONFIG).is_file():
            raise UsageError(f"--resume {run_dir}: not a run directory (no {rundir.CONFIG}); pass the "
                             f"directory printed by the interrupted run")
        if not (run_dir / rundir.CHECKPOINT).is_file():
            raise UsageError(f"--resume {run_dir}: no {rundir.CHECKPOINT} (the run stopped before its first "
                             f"checkpoint); start it again with --overwrite")
        if _status(run_dir) in rundir.FINISHED:
            raise UsageError(f"--resume {run_dir}: the run already ended ({_status(run_dir)}); nothing to "
                             f"resume — use --overwrite or another --run-name to run it again")
        _check_same_run(run_dir, options, world_size)
        return run_dir, True
    run_dir = default_dir
    if (restarted or options.get("auto_resume")) and run_dir.exists() and _status(run_dir) not in rundir.FINISHED:
        if (run_dir / rundir.CHECKPOINT).is_file():
            _check_same_run(run_dir, options, world_size)
            return run_dir, True
        return run_dir, False  # our own first attempt, which left no checkpoint: start over
    if run_dir.exists() and not options.get("overwrite"):
        raise UsageError(f"run directory {run_dir} exists: pass --resume {run_dir} to continue it, "
                         f"--overwrite to replace it, or another --out / --run-name")
    return run_dir, False


def _rank_state(net: torch.nn.Module, device: torch.device, measured_ms: list, guard: dict,
                mid: MidEpoch | None, stop_signal: int) -> dict:
    return {"rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "measured_ms": list(measured_ms), "guard": guard, "stop_signal": stop_signal,
            # Inside an epoch a local BN's running statistics differ between ranks until the epoch-end
            # broadcast; each rank keeps its own so the continuation is exact whatever DDP broadcasts.
            "buffers": {k: b.detach().cpu().clone() for k, b in net.named_buffers()},
            "mid": None if mid is None else {**vars(mid), "timed": [list(t) for t in mid.timed]}}


def save(run_dir: Path, *, net: torch.nn.Module, opt: torch.optim.Optimizer, epochs_done: int,
         metrics: list[dict], measured_ms: list, rank: int, device: torch.device, guard: dict,
         mid: MidEpoch | None = None, stop_signal: int = 0) -> int:
    """Collective: every rank contributes its own state; rank 0 writes the file. Returns the stop
    request of any rank (a signal number, else 0): the gather every rank joins carries it for free.

    Parameters are taken from rank 0: DDP keeps them equal on every rank.
    """
    mine = _rank_state(net, device, measured_ms, guard, mid, stop_signal)
    if tdist.is_initialized():
        ranks: list = [None] * tdist.get_world_size()
        tdist.all_gather_object(ranks, mine)
    else:
        ranks = [mine]
    if rank == 0:
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "epochs_done": epochs_done, "steps_done": mid.steps_done if mid else 0,
                    "model": net.state_dict(), "optimizer": opt.state_dict(), "metrics": metrics,
                    "ranks": ranks}, buf)
        rundir.atomic_write_bytes(run_dir / rundir.CHECKPOINT, buf.getvalue())
    return max(r["stop_signal"] for r in ranks)


def restore(run_dir: Path, *, net: torch.nn.Module, opt: torch.optim.Optimizer, rank: int,
            device: torch.device) -> Restored:
    """Load the checkpoint into `net`, `opt` and this rank's RNG; return the rest of this rank's state."""
    path = run_dir / rundir.CHECKPOINT
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file: say so in one line
        raise UsageError(f"cannot read {path} ({type(e).__name__}): the checkpoint is damaged; start the "
                         f"run again with --overwrite") from None
    if ckpt.get("format") != FORMAT or len(ckpt["ranks"]) <= rank:
        raise UsageError(f"{path} was written by another version or world size; start again with --overwrite")
    net.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    mine = ckpt["ranks"][rank]
    with torch.no_grad():
        for name, b in net.named_buffers():
            b.copy_(mine["buffers"][name])
    torch.set_rng_state(mine["rng_cpu"])
    if device.type == "cuda" and mine["rng_cuda"] is not None:
        torch.cuda.set_rng_state(mine["rng_cuda"], device)
    mid = mine["mid"]
    if mid is not None:
        mid = MidEpoch(**{**mid, "timed": [tuple(t) for t in mid["timed"]]})
    return Restored(ckpt["epochs_done"], list(ckpt["metrics"]), [tuple(m) for m in mine["measured_ms"]],
                    mine["guard"], mid)
