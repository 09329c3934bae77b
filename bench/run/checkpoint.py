"""Epoch-end checkpoints and resuming from them.

`<run>/checkpoint.pt` holds everything the rest of a run depends on: the network's parameters and
buffers (BN running statistics included), the optimizer, every rank's RNG states and its measured
step times, the epochs done and their metrics. The data order needs nothing more: each epoch's
permutation is seeded by (seed, epoch). Rank 0 writes it atomically (bench.rundir), so a crash at
any moment leaves the previous checkpoint or the new one.

Which run directory a job uses, and whether it starts fresh or resumes, is decided here
(`choose_run_dir`) before any process group exists, so a wrong `--resume` is a usage error.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.distributed as tdist

from bench import rundir
from bench.errors import UsageError

FORMAT = 1
# Options that may differ between the interrupted attempt and the resumed one: where things live,
# how long to wait, and how many epochs in all (a run may be extended). config.json stores the
# resolved backend, so the flag cannot be compared.
MAY_DIFFER = frozenset({"epochs", "out", "run_name", "overwrite", "resume", "data_dir", "download",
                        "pg_timeout_s", "device", "backend", "check_finite_every"})


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
    torchrun restart       resume the default directory if it holds an unfinished checkpointed run,
                           else start it over (the previous attempt died in its first epoch)
    otherwise              a fresh run; an existing directory needs --overwrite
    """
    if options.get("resume"):
        run_dir = Path(options["resume"])
        if not (run_dir / rundir.CONFIG).is_file():
            raise UsageError(f"--resume {run_dir}: not a run directory (no {rundir.CONFIG}); pass the "
                             f"directory printed by the interrupted run")
        if not (run_dir / rundir.CHECKPOINT).is_file():
            raise UsageError(f"--resume {run_dir}: no {rundir.CHECKPOINT} (the run stopped before its first "
                             f"epoch ended); start it again with --overwrite")
        if _status(run_dir) in rundir.FINISHED:
            raise UsageError(f"--resume {run_dir}: the run already ended ({_status(run_dir)}); nothing to "
                             f"resume — use --overwrite or another --run-name to run it again")
        _check_same_run(run_dir, options, world_size)
        return run_dir, True
    run_dir = default_dir
    if restarted and run_dir.exists() and _status(run_dir) not in rundir.FINISHED:
        if (run_dir / rundir.CHECKPOINT).is_file():
            _check_same_run(run_dir, options, world_size)
            return run_dir, True
        return run_dir, False  # our own first attempt, which left no checkpoint: start over
    if run_dir.exists() and not options.get("overwrite"):
        raise UsageError(f"run directory {run_dir} exists: pass --resume {run_dir} to continue it, "
                         f"--overwrite to replace it, or another --out / --run-name")
    return run_dir, False


def _rank_state(device: torch.device, measured_ms: list) -> dict:
    return {"rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "measured_ms": list(measured_ms)}


def save(run_dir: Path, *, net: torch.nn.Module, opt: torch.optim.Optimizer, epochs_done: int,
         metrics: list[dict], measured_ms: list, rank: int, device: torch.device) -> None:
    """Collective: every rank contributes its RNG states and step times; rank 0 writes the file.

    Parameters and buffers are taken from rank 0: DDP keeps parameters equal, and the training loop
    broadcasts rank 0's BN buffers at each epoch end, so every rank holds the same network here.
    """
    mine = _rank_state(device, measured_ms)
    if tdist.is_initialized():
        ranks: list = [None] * tdist.get_world_size()
        tdist.all_gather_object(ranks, mine)
    else:
        ranks = [mine]
    if rank != 0:
        return
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "epochs_done": epochs_done, "model": net.state_dict(),
                "optimizer": opt.state_dict(), "metrics": metrics, "ranks": ranks}, buf)
    rundir.atomic_write_bytes(run_dir / rundir.CHECKPOINT, buf.getvalue())


def restore(run_dir: Path, *, net: torch.nn.Module, opt: torch.optim.Optimizer, rank: int,
            device: torch.device) -> tuple[int, list[dict], list]:
    """Load the checkpoint into `net` and `opt` and this rank's RNG; return (epochs done, metrics,
    this rank's measured step times)."""
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
    torch.set_rng_state(mine["rng_cpu"])
    if device.type == "cuda" and mine["rng_cuda"] is not None:
        torch.cuda.set_rng_state(mine["rng_cuda"], device)
    return ckpt["epochs_done"], list(ckpt["metrics"]), [tuple(m) for m in mine["measured_ms"]]
