"""What a sweep runs: presets, a TOML file and flags merged into a list of cells (no processes here).

Precedence, lowest first: `--preset`, then the TOML file (`--config`), then flags. A cell is one
(seed, world size, batch, variant); its bench.train arguments and its run name (the one bench.train
will give it, from bench.run.plan.run_name) are fixed here, so a finished cell can be found again.

TOML keys are the matrix flags with underscores, plus a [train] table of other bench.train options
by their TrainConfig field names:

    preset = "seed"                # optional starting point
    variants = ["scratch", "nn"]
    world_sizes = [1, 2]
    per_rank_batch_sizes = [64]    # or batch_sizes = [...] (global)
    seeds = [0, 1, 2]
    bn_emulate_ranks = [1, 8]      # local variants (scratch, nn) once per K; the others once
    epochs = 2
    out = "runs/my-sweep"
    [train]
    limit_train = 1024
    profile = false
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from bench.run.config import TrainConfig, build_parser, from_argv
from bench.errors import UsageError

MATRIX_KEYS = ("variants", "world_sizes", "batch_sizes", "per_rank_batch_sizes", "seeds", "epochs", "out",
               "bn_emulate_ranks")
# bench.train options a sweep sets per cell, or that would break finding cells again
OWNED_FLAGS = {"--variant": "--variants", "--batch-size": "--batch-sizes or --per-rank-batch-sizes",
               "--seed": "--seeds", "--epochs": "--epochs (the sweep's)", "--out": "--out (the sweep's)",
               "--run-name": None, "--overwrite": None}

# The one home of presets: launch.sweep starts from a whole preset, launch.compare from its variants,
# first batch and seed, epochs and [train] options (preset_args). docs/workloads.md says what each measures.
RESNET50 = {"model": "resnet50", "amp": "bf16", "channels_last": True, "lr": 0.1}
PRESETS: dict[str, dict] = {
    # The textbook experiment: does from-scratch BN match nn.BatchNorm, and how much slower is it? 8 seeds
    # a variant: what the recorded pilot says resolves the textbook's 1.4 points (docs/statistics.md).
    "seed": {"variants": ["scratch", "nn"], "world_sizes": [1], "batch_sizes": [256],
             "seeds": list(range(8)), "epochs": 10, "train": {"model": "lenet", "lr": 1.0}},
    # Where the choice of BN shows in a step: ResNet-50 at 224², bf16, channels_last, a fixed step budget;
    # images held on the device, so the step is all the GPU does.
    "resnet50-synthetic": {"variants": ["scratch", "nn", "sync", "scratch-sync"], "world_sizes": [1],
                           "per_rank_batch_sizes": [64], "seeds": [0], "epochs": 1,
                           "train": {**RESNET50, "data": "synthetic", "steps": 100}},
    # The same with a real input pipeline: an ImageFolder (pass --data-dir) read by 8 workers per rank.
    "resnet50-imagefolder": {"variants": ["scratch", "nn", "sync", "scratch-sync"], "world_sizes": [1],
                             "per_rank_batch_sizes": [64], "seeds": [0], "epochs": 1,
                             "train": {**RESNET50, "data": "imagefolder", "workers": 8, "steps": 200}},
    # The small-batch cliff: one global batch (256) on one device, BN statistics over 256, 32, 16, 8, 4
    # and 2 examples (nn on K emulated ranks, bench.bn.emulate), against statistics over the whole
    # batch (sync) and none at all (gn); docs/workloads.md.
    "small-batch": {"variants": ["nn", "sync", "gn"], "world_sizes": [1], "batch_sizes": [256],
                    "bn_emulate_ranks": [1, 8, 16, 32, 64, 128], "seeds": [0, 1, 2, 3, 4], "epochs": 10,
                    "train": {"model": "lenet"}},
}
PRESET_HELP = {"seed": "LeNet, 10 epochs, batch 256, lr 1.0, scratch and nn, 8 seeds (what the pilot in "
                       "docs/statistics.md says resolves 1.4 accuracy points)",
               "resnet50-synthetic": "ResNet-50, synthetic 224² images, bf16, channels_last, lr 0.1, per-rank batch "
                                     "64, 100 steps, scratch, nn, sync and scratch-sync",
               "resnet50-imagefolder": "as resnet50-synthetic, images from --data-dir (train/, val/), 8 "
                                       "workers, 200 steps",
               "small-batch": "LeNet, global batch 256, BN statistics over 256..2 examples (nn on emulated "
                              "ranks) against sync and gn, 10 epochs, 5 seeds"}


def preset_args(name: str, world_size: int) -> tuple[list[str], list[str]]:
    """(variants, bench.train flags) of preset ``name`` for one run per variant on ``world_size`` ranks:
    its first batch and seed, its epochs and its [train] options.

    >>> preset_args("resnet50-synthetic", 2)[1][:4]
    ['--batch-size', '128', '--epochs', '1']
    """
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    batch = p["per_rank_batch_sizes"][0] * world_size if "per_rank_batch_sizes" in p else p["batch_sizes"][0]
    return list(p["variants"]), ["--batch-size", str(batch), "--epochs", str(p["epochs"]),
                                 "--seed", str(p["seeds"][0]), *train_flags(p["train"])]


@dataclass(frozen=True)
class Cell:
    variant: str
    world_size: int
    global_batch: int
    seed: int
    run_name: str
    train_args: tuple[str, ...]  # bench.train flags, without --overwrite

    @property
    def per_rank_batch(self) -> int:
        return self.global_batch // self.world_size


@dataclass(frozen=True)
class Sweep:
    cells: tuple[Cell, ...]
    out: Path
    config: TrainConfig  # the options shared by every cell (cell 0's, for checks and data)
    spec: dict           # the merged matrix, recorded in sweep.json


def train_flags(options: dict) -> list[str]:
    """bench.train flags for a [train] table: {"limit_train": 1024, "profile": False} ->
    ["--limit-train", "1024", "--no-profile"]. Unknown keys and impossible values are usage errors."""
    actions = {a.dest: a for a in build_parser()._actions if a.option_strings}
    flags: list[str] = []
    for key, value in options.items():
        action = actions.get(key)
        if action is None or action.option_strings[0] in OWNED_FLAGS:
            raise UsageError(f"[train] {key} is not a bench.train option a sweep passes through; "
                             f"see python -m bench.train --help")
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise UsageError(f"[train] {key} must be true or false, got {value!r}")
            if value != action.default:
                flags.append(action.option_strings[0])
        else:
            flags += [action.option_strings[0], str(value)]
    return flags


def load_toml(path: str) -> dict:
    try:
        import tomllib  # Python 3.11+; only --config needs it
    except ModuleNotFoundError:
        raise UsageError("--config needs Python 3.11 or later (tomllib): pass the matrix as flags instead") from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"cannot read --config {path} ({e.strerror}): pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path} is not valid TOML ({e}): fix the file") from None
    unknown = set(data) - set(MATRIX_KEYS) - {"preset", "train"}
    if unknown:
        raise UsageError(f"--config {path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                         f"{', '.join(MATRIX_KEYS)}, preset, [train]")
    return data


def merge(toml: dict, flags: dict, passthrough: list[str]) -> tuple[dict, list[str]]:
    """(matrix, bench.train flags) from preset, TOML and flags, later ones winning key by key."""
    preset = flags.get("preset") or toml.get("preset")
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    matrix: dict = {"variants": [TrainConfig.variant], "world_sizes": [1], "seeds": [TrainConfig.seed],
                    "epochs": TrainConfig.epochs, "out": TrainConfig.out, "preset": preset}
    train = {}
    for source in (PRESETS.get(preset, {}), toml, flags):
        given = {k: v for k, v in source.items() if k in MATRIX_KEYS and v is not None}
        if "batch_sizes" in given or "per_rank_batch_sizes" in given:  # one batch axis replaces the other
            matrix.pop("batch_sizes", None)
            matrix.pop("per_rank_batch_sizes", None)
        matrix.update(given)
        train.update(source.get("train", {}))
    if "batch_sizes" in matrix and "per_rank_batch_sizes" in matrix:
        raise UsageError("give --batch-sizes (global) or --per-rank-batch-sizes, not both")
    if "batch_sizes" not in matrix and "per_rank_batch_sizes" not in matrix:
        matrix["batch_sizes"] = [TrainConfig.batch_size]
    for flag in passthrough:
        name = flag.split("=", 1)[0]
        if name in OWNED_FLAGS:
            hint = f"use the sweep's {OWNED_FLAGS[name]}" if OWNED_FLAGS[name] else "the sweep names runs itself"
            raise UsageError(f"{name} is set by the sweep per cell: {hint}")
    return matrix, train_flags(train) + list(passthrough)


def _variant_emulations(matrix: dict) -> list[tuple[str, int | None]]:
    """(variant, emulated ranks or None) of each cell of one (seed, world size, batch): a local variant
    once per --bn-emulate-ranks value, the others once (their statistics do not depend on the split).

    >>> _variant_emulations({"variants": ["nn", "gn"], "bn_emulate_ranks": [1, 8]})
    [('nn', 1), ('nn', 8), ('gn', None)]
    """
    from bench.bn.emulate import LOCAL_VARIANTS

    ks = matrix.get("bn_emulate_ranks")
    return [(v, k) for v in matrix["variants"] for k in (ks if ks and v in LOCAL_VARIANTS else [None])]


def build(matrix: dict, train_args: list[str]) -> Sweep:
    """Every cell of the matrix, seeds outermost (a partial sweep already has every configuration)."""
    from bench.run.plan import run_name  # torch; only once there is something to build

    if any(not isinstance(w, int) or w < 1 for w in matrix["world_sizes"]):
        raise UsageError(f"world sizes {matrix['world_sizes']}: each must be a whole number of at least 1")
    for key in ("variants", "world_sizes", "seeds"):
        if not matrix[key]:
            raise UsageError(f"--{key.replace('_', '-')} is empty: give at least one value")
        if len(set(matrix[key])) != len(matrix[key]):
            raise UsageError(f"--{key.replace('_', '-')} repeats a value: each cell must be distinct")
    per_rank = "per_rank_batch_sizes" in matrix
    batches = matrix["per_rank_batch_sizes" if per_rank else "batch_sizes"]
    cells, first = [], None
    for seed in matrix["seeds"]:
        for ws in matrix["world_sizes"]:
            for b in batches:
                for variant, k in _variant_emulations(matrix):
                    global_batch = b * ws if per_rank else b
                    args = ("--variant", str(variant), "--batch-size", str(global_batch), "--seed", str(seed),
                            "--epochs", str(matrix["epochs"]), "--out", str(matrix["out"]),
                            *(("--bn-emulate-ranks", str(k)) if k else ()), *train_args)
                    cfg = from_argv(list(args))
                    first = first or cfg
                    cells.append(Cell(variant, ws, global_batch, seed, run_name(cfg, ws), args))
    names = [c.run_name for c in cells]
    if len(set(names)) != len(names):
        raise UsageError("two cells share a run name (e.g. a global batch reached twice): "
                         "remove the duplicate batch sizes")
    return Sweep(tuple(cells), Path(matrix["out"]), first, dict(matrix, train_args=list(train_args)))


def drop_unavailable(sweep: Sweep) -> tuple[Sweep, list[tuple[str, str]]]:
    """The sweep without the cells whose BN layer cannot run on this machine, and (variant, reason)
    for each variant dropped (bench.bn.unavailable_reason: the Triton variants); UsageError when
    that leaves no cell."""
    from bench.bn import unavailable_reason  # torch; only once there are cells
    from bench.run.dist import resolve_device

    device = resolve_device(sweep.config.device, 0)
    variants = dict.fromkeys(c.variant for c in sweep.cells)
    reasons = {v: why for v in variants if (why := unavailable_reason(v, device)) is not None}
    kept = tuple(c for c in sweep.cells if c.variant not in reasons)
    if not kept:
        raise UsageError("no cell of this sweep can run here: "
                         + "; ".join(f"--variants {v}: {why}" for v, why in reasons.items()))
    return replace(sweep, cells=kept), list(reasons.items())
