"""Every option of a training run: one frozen dataclass, its defaults commented, and its flags.

``FLAGS`` declares each flag once, with its type check and help line; ``python -m bench.train`` uses
them all, and the tools in bench/tools declare the ones they share with ``add_flags`` so a flag means
the same thing (and is checked the same way) everywhere.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Iterable

from bench.argcheck import in_path, non_negative_float, non_negative_int, out_dir, out_file, positive_float, positive_int
from bench.errors import OneLineParser
from bench.nets import model_problem
from bench.run.divergence import DEFAULT_BOUND, parse_bound
from bench.run.recipe import OPTIMIZERS, SCHEDULERS
from bench.run.step import AMPS, MODES
from bench.rundir import VARIANTS

DATA_SOURCES = ("fashion-mnist", "synthetic", "imagefolder")


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "nn"            # BN implementation: one of bench.rundir.VARIANTS
    model: str = "lenet"           # network: lenet, resnet18, resnet50 or a torchvision name (python -m bench.nets)
    epochs: int = 10               # the textbook's 10
    batch_size: int = 256          # GLOBAL batch over all ranks; per-rank batch = batch_size / world size
    lr: float | None = None        # peak learning rate; None: the model's recipe (bench.run.recipe; lenet 1.0)
    seed: int = 0                  # model init and the shared per-epoch permutation
    data_dir: str = "data"         # torchvision layout goes here (laid out from Debian's files if needed)
    download: bool = False         # let torchvision download when no local copy exists
    limit_train: int | None = None  # first N training images (quick runs)
    limit_test: int | None = None   # first N test images
    data: str = "fashion-mnist"    # fashion-mnist | synthetic (random images held on the device) | imagefolder
    image_size: int | None = None  # side of the square training images (None: 224; fashion-mnist: 28, 1 channel)
    num_classes: int | None = None  # synthetic: label classes (None: ImageNet's 1000)
    synthetic_size: int | None = None  # synthetic: images held on the device, cycled through (None: 2048)
    workers: int = 4               # imagefolder: DataLoader worker processes per rank
    channels_last: bool = False    # network and inputs in the channels_last memory format
    steps: int | None = None       # steps per epoch (None: one pass over the training set)
    device: str = "auto"           # auto | cpu | cuda
    backend: str = "auto"          # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    out: str = "runs"              # parent of run directories
    run_name: str | None = None    # default: derived from the configuration (bench.rundir.default_run_name)
    overwrite: bool = False        # replace an existing run directory of the same name
    profile: bool = True           # profiler window early in training, one trace per rank
    warmup_steps: int = 5          # steps after the profiler window left out of the timing
    eval_batch: int = 1000         # test-set batch (evaluation is not timed)
    bn_group_size: int | None = None  # sync variants: ranks per BN group (None = all ranks)
    bn_emulate_ranks: int = 1      # local variants: normalise K equal slices of each rank's batch apart (bench.bn.emulate)
    pg_timeout_s: float = 300.0    # collectives fail after this long when a peer rank is gone
    resume: str | None = None      # run directory to continue from its last checkpoint (same flags)
    deterministic: bool = False    # deterministic algorithms, cuDNN/cuBLAS settings (bench.run.dist)
    check_finite_every: int = 0    # steps between divergence checks; 0 = every step on CPU, 50 on CUDA
    diverge_above: str = DEFAULT_BOUND  # a step loss above this diverges: N, Nx (N × the first loss), off
    checkpoint_every_steps: int = 0  # step checkpoints every N steps as well as at epoch ends; 0 = none
    auto_resume: bool = False      # continue the run directory when it holds an unfinished checkpointed run
    mode: str = "eager"            # eager | compile (torch.compile) | graph (whole step in a CUDA graph)
    amp: str = "none"              # none | bf16 | fp16 (autocast forward and loss; fp16 with a gradient scaler)
    # The recipe (bench.run.recipe): None takes the model's default (lenet: the textbook's; others torchvision's)
    opt: str | None = None         # sgd | adamw
    momentum: float | None = None  # SGD momentum
    weight_decay: float | None = None
    norm_weight_decay: float = 0.0  # weight decay on norm layers' weight and bias (torchvision's --norm-weight-decay)
    lr_scheduler: str | None = None  # none | step | cosine, applied per step after the warm-up
    lr_warmup_epochs: float | None = None  # linear warm-up from 1 % of the lr
    label_smoothing: float = 0.0
    print_freq: int = 0            # a progress line every N steps (0: epoch lines only)
    results_file: str | None = None  # append one JSON line per finished run (timm-style)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def model_name(text: str) -> str:
    """An argparse type: a network bnbench can train (bench.nets.model_problem says why not)."""
    problem = model_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def loss_bound(text: str) -> str:
    """An argparse type: a --diverge-above rule, checked, as written (lower case).

    >>> loss_bound("100X"), loss_bound("1e4")
    ('100x', '1e4')
    """
    try:
        parse_bound(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip().lower()


def comma_list(kind=str, choices=None):
    """An argparse type: 'a,b' -> [kind('a'), kind('b')], each among `choices` when given.

    >>> comma_list(int)("64,256")
    [64, 256]
    >>> comma_list(positive_int)("64,0")  # an item's own type says what is wrong with it
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a positive integer, got 0
    """
    def parse(text: str) -> list:
        try:
            items = [kind(t) for t in text.split(",") if t]
        except ValueError:
            items = []
        if not items or (choices and any(i not in choices for i in items)):
            what = ", ".join(map(str, choices)) if choices else f"{kind.__name__.replace('_', ' ')} values"
            raise argparse.ArgumentTypeError(f"comma-separated {what} expected, got {text!r}")
        return items
    return parse


_D = TrainConfig()
# dest -> (option strings, argparse keywords); help lines say what the default means.
FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "variant": (("--variant",), dict(choices=VARIANTS, help="BN implementation (default %(default)s); "
                "python -m bench.variants lists which run on this machine")),
    "model": (("--model",), dict(type=model_name, metavar="NAME", help="lenet, resnet18, resnet50 or any "
              "torchvision classification network with BN (python -m bench.nets lists them; default %(default)s)")),
    "epochs": (("--epochs",), dict(type=positive_int, help="training epochs (default %(default)s)")),
    "batch_size": (("--batch-size",), dict(type=positive_int, metavar="N",
                   help="GLOBAL batch over all ranks; each rank takes N / world size (default %(default)s)")),
    "lr": (("--lr",), dict(type=positive_float, help="peak learning rate (default: the model's recipe: lenet "
           "1.0, torchvision networks 0.1 × global batch / 256; adamw 1e-3 × global batch / 256)")),
    "opt": (("--opt",), dict(choices=OPTIMIZERS, help="optimiser (default sgd)")),
    "momentum": (("--momentum",), dict(type=non_negative_float, help="SGD momentum (default: lenet 0, others 0.9)")),
    "weight_decay": (("--weight-decay",), dict(type=non_negative_float, help="weight decay (default: lenet 0, "
                     "others 1e-4)")),
    "norm_weight_decay": (("--norm-weight-decay",), dict(type=non_negative_float, help="weight decay on norm "
                          "layers' weight and bias (default %(default)s)")),
    "lr_scheduler": (("--lr-scheduler",), dict(choices=SCHEDULERS, help="per-step schedule after the warm-up "
                     "(default: lenet none, others cosine)")),
    "lr_warmup_epochs": (("--lr-warmup-epochs",), dict(type=non_negative_float, metavar="E", help="linear warm-up "
                         "over E epochs, fractions allowed (default: lenet 0, others min(5, epochs / 5))")),
    "label_smoothing": (("--label-smoothing",), dict(type=non_negative_float, help="cross-entropy label "
                        "smoothing (default %(default)s)")),
    "print_freq": (("--print-freq",), dict(type=non_negative_int, metavar="N", help="a progress line every N "
                   "steps, each one host synchronisation (default 0: epoch lines only)")),
    "results_file": (("--results-file",), dict(type=out_file, metavar="PATH", help="append one JSON line per finished run")),
    "seed": (("--seed",), dict(type=non_negative_int, help="seed of the initial weights and the data order (default %(default)s)")),
    "data_dir": (("--data-dir",), dict(type=out_dir, metavar="DIR", help="Fashion-MNIST folder, laid out there from Debian's "
                 "dataset-fashion-mnist when absent; imagefolder: the folder holding train/ and val/ "
                 "(default %(default)s)")),
    "download": (("--download",), dict(action="store_true", help="let torchvision download the data if no copy is found")),
    "limit_train": (("--limit-train",), dict(type=positive_int, metavar="N", help="train on the first N images only")),
    "limit_test": (("--limit-test",), dict(type=positive_int, metavar="N", help="evaluate on the first N test images only")),
    "data": (("--data",), dict(choices=DATA_SOURCES, help="training data: fashion-mnist (default), synthetic "
             "(random uint8 images held on the device) or imagefolder (--data-dir with train/ and val/)")),
    "image_size": (("--image-size",), dict(type=positive_int, metavar="N", help="synthetic / imagefolder: "
                   "N×N training images, at least 32 (default 224); fashion-mnist: its 28×28 images padded to "
                   "N×N over 3 channels, for torchvision's networks (default: 1×28×28 as they are)")),
    "num_classes": (("--num-classes",), dict(type=positive_int, metavar="K",
                    help="synthetic: K label classes (default 1000)")),
    "synthetic_size": (("--synthetic-size",), dict(type=positive_int, metavar="N",
                       help="synthetic: N images held on the device (default 2048)")),
    "workers": (("--workers",), dict(type=non_negative_int, metavar="N", help="imagefolder: DataLoader "
                "worker processes per rank; 0 loads in the training process (default %(default)s)")),
    "channels_last": (("--channels-last",), dict(action="store_true",
                      help="network and inputs in the channels_last memory format")),
    "steps": (("--steps",), dict(type=positive_int, metavar="N", help="N steps per epoch, cycling through "
              "the data (default: one pass over the training set)")),
    "device": (("--device",), dict(choices=("auto", "cpu", "cuda"), help="auto: CUDA when visible, else CPU")),
    "backend": (("--backend",), dict(choices=("auto", "nccl", "gloo"),
                help="process-group backend; auto: nccl on CUDA, gloo on CPU")),
    "out": (("--out",), dict(type=out_dir, metavar="DIR", help="parent folder of run directories (default %(default)s)")),
    "run_name": (("--run-name",), dict(metavar="NAME", help="run directory name (default: from the configuration, "
                 "e.g. lenet-nn-ws2-b256-s0)")),
    "overwrite": (("--overwrite",), dict(action="store_true", help="replace an existing run directory of the same name")),
    "profile": (("--no-profile",), dict(dest="profile", action="store_false",
                help="no profiler window (by default the first 7 steps are a window that records 4, one trace per rank)")),
    "warmup_steps": (("--warmup-steps",), dict(type=non_negative_int, metavar="N",
                     help="steps after the profiler window left out of the timing (default %(default)s)")),
    "eval_batch": (("--eval-batch",), dict(type=positive_int, metavar="N", help="test-set batch; evaluation is "
                   "not timed (default %(default)s)")),
    "bn_group_size": (("--bn-group-size",), dict(type=positive_int, metavar="K",
                      help="sync variants: normalise over groups of K consecutive ranks (default: all ranks)")),
    "mode": (("--mode",), dict(choices=MODES, help="eager | compile (torch.compile) | graph (whole step in a "
             "CUDA graph; CUDA only)")),
    "amp": (("--amp",), dict(choices=AMPS, help="bf16: autocast forward and loss to bfloat16; fp16: to float16, "
            "with a gradient scaler")),
    "bn_emulate_ranks": (("--bn-emulate-ranks",), dict(type=positive_int, metavar="K",
                         help="local BN as on K ranks: each 1/K slice of the batch uses its own statistics")),
    "pg_timeout_s": (("--pg-timeout-s",), dict(type=positive_float, metavar="S",
                     help="a collective fails after S seconds when a peer is gone (default %(default)s)")),
    "resume": (("--resume",), dict(type=in_path, metavar="RUN_DIR", help="continue this run from its checkpoint (same flags)")),
    "deterministic": (("--deterministic",), dict(action="store_true",
                      help="deterministic algorithms and cuDNN/cuBLAS settings (bitwise-repeatable runs)")),
    "check_finite_every": (("--check-finite-every",), dict(type=positive_int, metavar="N",
                           help="steps between divergence checks (default: every step on CPU, 50 on CUDA)")),
    "diverge_above": (("--diverge-above",), dict(type=loss_bound, metavar="X", help="a step loss above X "
                      "diverges: a number, Nx for N times the run's first loss on that rank, or off "
                      "(non-finite only); default %(default)s")),
    "checkpoint_every_steps": (("--checkpoint-every-steps",), dict(type=non_negative_int, metavar="N",
                               help="also checkpoint every N steps, mid-epoch (default 0: epoch ends only)")),
    "auto_resume": (("--auto-resume",), dict(action="store_true", help="continue the run directory if it "
                    "holds an unfinished run with a checkpoint, else start it (for requeued jobs)")),
}


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str], **defaults) -> None:
    """Declare the bench.train flags ``names`` (TrainConfig field names) on ``parser``, with their checks
    and help; ``defaults`` overrides TrainConfig's default for a tool."""
    for name in names:
        options, kwargs = FLAGS[name]
        default = defaults.get(name, getattr(_D, name))
        parser.add_argument(*options, default=default, **kwargs)


def build_parser(prog: str = "bench.train") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="Train one network with one BN variant and write a run "
                      "directory; run under torchrun for several ranks.")
    add_flags(p, FLAGS)
    return p


def from_argv(argv: list[str] | None = None, prog: str = "bench.train") -> TrainConfig:
    ns = build_parser(prog).parse_args(argv)
    return TrainConfig(**vars(ns))
