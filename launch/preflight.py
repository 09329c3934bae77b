"""A job checked before a launcher starts it: bench.train's own checks at the job's world size, so an
impossible run is one line and exit code 2 now, not one line per rank (or hours into a sweep) later."""
from __future__ import annotations

from bench.errors import UsageError


def check_train_args(train_args: list[str], world_size: int, prog: str = "bench.train", create: bool = True):
    """bench.run.plan.resolve for `train_args` (bench.train flags) at `world_size`, on the device a
    rank would pick; the RunPlan, or UsageError (a flag argparse rejects exits 2 with `prog`'s line).
    `create=False` creates nothing, not even --out."""
    from bench.run import dist
    from bench.run.config import from_argv
    from bench.run.plan import resolve

    cfg = from_argv(train_args, prog=prog)
    device = dist.resolve_device(cfg.device, 0)
    return resolve(cfg, world_size, device, restarted=dist.restart_count() > 0, create=create)


def check_devices(device_flag: str, backend: str, widest: int) -> str:
    """Where ranks of up to `widest` per job will run, in words; UsageError when a world size cannot
    get its GPUs (ranks sharing a GPU measure contention, not scaling) unless `backend` is gloo."""
    import torch

    from bench.run import dist

    device = dist.resolve_device(device_flag, 0)
    if device.type != "cuda":
        return "CPU: world sizes above 1 are gloo processes"
    gpus = torch.cuda.device_count()
    if widest > gpus and backend != "gloo":
        raise UsageError(f"world size {widest} needs {widest} GPUs, this machine has {gpus}: drop the larger "
                         f"world sizes, or pass --backend gloo to let ranks share GPUs (no scaling timings)")
    shared = " (ranks share GPUs: no scaling timings)" if widest > gpus else ""
    return f"{gpus} GPU(s), backend {backend}{shared}"
