"""Every option of a training run: one frozen dataclass, its defaults commented, and its flags."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from bench.model import MODELS
from bench.norms import VARIANTS
from bench.step import AMPS, MODES


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "nn"            # BN implementation: scratch | nn | sync | scratch-sync
    model: str = "lenet"           # network
    epochs: int = 10               # the textbook's 10
    batch_size: int = 256          # GLOBAL batch over all ranks; per-rank batch = batch_size / world size
    lr: float = 1.0                # SGD, no momentum, as the textbook
    seed: int = 0                  # model init and the shared per-epoch permutation
    data_dir: str = "data"         # torchvision layout goes here (laid out from Debian's files if needed)
    download: bool = False         # let torchvision download when no local copy exists
    limit_train: int | None = None  # first N training images (quick runs)
    limit_test: int | None = None   # first N test images
    device: str = "auto"           # auto | cpu | cuda
    backend: str = "auto"          # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    out: str = "runs"              # parent of run directories
    run_name: str | None = None    # default: derived from the configuration (bench.rundir.default_run_name)
    overwrite: bool = False        # replace an existing run directory of the same name
    profile: bool = True           # profiler window early in training, one trace per rank
    warmup_steps: int = 5          # steps after the profiler window left out of the timing
    eval_batch: int = 1000         # test-set batch (evaluation is not timed)
    bn_group_size: int | None = None  # sync variants: ranks per BN group (None = all ranks)
    bn_emulate_ranks: int = 1      # local variants: normalise K equal slices of each rank's batch apart (bench.emulate)
    pg_timeout_s: float = 300.0    # collectives fail after this long when a peer rank is gone
    resume: str | None = None      # run directory to continue from its last checkpoint (same flags)
    deterministic: bool = False    # deterministic algorithms, cuDNN/cuBLAS settings (bench.dist)
    check_finite_every: int = 0    # steps between non-finite-loss checks; 0 = every step on CPU, 50 on CUDA
    mode: str = "eager"            # eager | compile (torch.compile) | graph (whole step in a CUDA graph)
    amp: str = "none"              # none | bf16 (autocast forward and loss to bfloat16)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2 (argparse's own code) without usage spam."""

    def error(self, message: str):
        self.exit(2, f"bench.train: error: {message} (see --help)\n")


def build_parser(prog: str = "bench.train") -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _OneLineParser(prog=prog, description="Train a network (LeNet-BN by default) on Fashion-MNIST with "
                       "one BN variant; run under torchrun for several ranks.")
    p.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="BN implementation: scratch (from scratch, per rank), nn (nn.BatchNorm), sync "
                   "(nn.SyncBatchNorm, CUDA), scratch-sync (from scratch, statistics over the ranks) "
                   "(default: %(default)s)")
    p.add_argument("--model", choices=MODELS, default=d.model, help="network (default: %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs,
                   help="passes over the training set (default: %(default)s, the textbook's)")
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                   help="GLOBAL batch over all ranks; each rank takes batch-size / world size (default: %(default)s)")
    p.add_argument("--lr", type=_positive_float, default=d.lr,
                   help="SGD learning rate, no momentum, as the textbook (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the initial weights and of the per-epoch shuffle all ranks share "
                   "(default: %(default)s)")
    p.add_argument("--data-dir", default=d.data_dir,
                   help="Fashion-MNIST in torchvision's layout, laid out there from Debian's "
                   "dataset-fashion-mnist when missing (default: %(default)s)")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download Fashion-MNIST when no local copy exists")
    p.add_argument("--limit-train", type=_positive_int, default=None, metavar="N",
                   help="train on the first N training images only (default: all 60,000)")
    p.add_argument("--limit-test", type=_positive_int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all 10,000)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device,
                   help="auto: CUDA when there is one, else CPU (default: %(default)s)")
    p.add_argument("--backend", choices=("auto", "nccl", "gloo"), default=d.backend,
                   help="process-group backend under torchrun; auto: nccl on CUDA, gloo on CPU (default: %(default)s)")
    p.add_argument("--out", default=d.out, help="parent folder of the run directory (default: %(default)s)")
    p.add_argument("--run-name", default=None,
                   help="run directory name (default: from the configuration, e.g. lenet-nn-ws2-b256-s0)")
    p.add_argument("--overwrite", action="store_true", help="replace a run directory of the same name")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="no profiler window (by default a few early steps of every rank are traced into <run>/traces)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="steps after the profiler window left out of the timing (default: %(default)s)")
    p.add_argument("--eval-batch", type=_positive_int, default=d.eval_batch,
                   help="test-set batch; evaluation is not timed (default: %(default)s)")
    p.add_argument("--bn-group-size", type=_positive_int, default=None, metavar="K",
                   help="sync variants: ranks per BN group (default: all ranks)")
    p.add_argument("--mode", choices=MODES, default=d.mode,
                   help="eager, compile (torch.compile) or graph (the whole step in a CUDA graph; CUDA only) "
                   "(default: %(default)s)")
    p.add_argument("--amp", choices=AMPS, default=d.amp,
                   help="bf16: autocast the forward pass and loss to bfloat16 (default: %(default)s)")
    p.add_argument("--bn-emulate-ranks", type=_positive_int, default=d.bn_emulate_ranks, metavar="K",
                   help="local BN as on K ranks: each 1/K slice of the batch uses its own statistics "
                   "(default: %(default)s)")
    p.add_argument("--pg-timeout-s", type=_positive_float, default=d.pg_timeout_s,
                   help="seconds after which a collective fails when a peer rank is gone (default: %(default)s)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue this run from its last checkpoint (same flags)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms and cuDNN/cuBLAS settings (bench.dist); slower")
    p.add_argument("--check-finite-every", type=_positive_int, default=d.check_finite_every, metavar="N",
                   help="steps between checks for a non-finite loss (default: every step on CPU, 50 on CUDA)")
    return p


def from_argv(argv: list[str] | None = None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    return TrainConfig(**vars(ns))
