"""What a run trains on, resolved once before it starts: the data source's checks (bad input exits 2
with one line) and its derived facts — image shape, classes, training and test set sizes, and for an
image folder the files themselves — in one frozen ``DataSpec`` that the plan carries.

    fashion-mnist  1×28×28, 10 classes, 60,000 / 10,000 images (or --limit-train / --limit-test)
    synthetic      3×S×S random images, --num-classes classes (1000), --synthetic-size images (2048),
                   no test set; accuracy is not measured (the labels are random)
    imagefolder    3×S×S crops of <data-dir>/train (and val/ when present), classes from its folders
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UsageError
from bench.nets import FASHION_MNIST_SHAPE, input_problem
from bench.run.datasets import image_folder as images
from bench.run.config import TrainConfig

FASHION_MNIST = {"n_train": 60_000, "n_test": 10_000, "classes": 10}
DEFAULT_IMAGE_SIZE, MIN_IMAGE_SIZE = 224, 32
DEFAULT_SYNTHETIC_SIZE, DEFAULT_SYNTHETIC_CLASSES = 2048, 1000


@dataclass(frozen=True)
class DataSpec:
    """One data source as every rank resolves it alike."""
    source: str                          # TrainConfig.data
    input_shape: tuple[int, int, int]    # (C, H, W) of one image as the network sees it
    num_classes: int
    n_train: int
    n_test: int                          # 0: no test set, test accuracy not measured
    accuracy: bool                       # labels mean something (not synthetic): accuracy is measured
    train_files: images.Files = field(default=(), repr=False)  # imagefolder: (path, class) each
    test_files: images.Files = field(default=(), repr=False)

    def record(self) -> dict:
        """The spec's part of config.json: resolved facts, under names no TrainConfig flag uses (a flag's
        own value must stay as given, or --resume would see the options differ)."""
        return {"image_shape": list(self.input_shape), "n_classes": self.num_classes,
                "n_train": self.n_train, "n_test": self.n_test}


def _only_for(cfg: TrainConfig) -> None:
    """Flags that mean nothing for the chosen source are refused rather than ignored."""
    given = {"--image-size": cfg.image_size is not None, "--num-classes": cfg.num_classes is not None,
             "--synthetic-size": cfg.synthetic_size is not None, "--limit-train": cfg.limit_train is not None,
             "--limit-test": cfg.limit_test is not None, "--download": cfg.download}
    applies = {"fashion-mnist": ("--limit-train", "--limit-test", "--download", "--image-size"),
               "synthetic": ("--image-size", "--num-classes", "--synthetic-size"),
               "imagefolder": ("--image-size",)}[cfg.data]
    wrong = [flag for flag, on in given.items() if on and flag not in applies]
    if wrong:
        hint = " (use --steps to shorten a run)" if {"--limit-train", "--limit-test"} & set(wrong) else ""
        raise UsageError(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to --data {cfg.data}: "
                         f"drop {'it' if len(wrong) == 1 else 'them'}{hint}")


def image_size(cfg: TrainConfig) -> int | None:
    """The side of the square training images: --image-size or 224 for image sources; for
    Fashion-MNIST --image-size (its images padded to that side) or None (its own 28×28)."""
    return cfg.image_size if cfg.data == "fashion-mnist" else cfg.image_size or DEFAULT_IMAGE_SIZE


def _image_size(cfg: TrainConfig) -> int:
    size = image_size(cfg)
    if size < MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size {size} is under {MIN_IMAGE_SIZE}: ResNet's five stride-2 stages need "
                         f"at least {MIN_IMAGE_SIZE}×{MIN_IMAGE_SIZE} pixels")
    return size


def _image_folder(cfg: TrainConfig, size: int) -> DataSpec:
    root = Path(cfg.data_dir)
    classes, train = images.scan(root / "train", "train")
    test: images.Files = ()
    if (root / "val").exists():
        val_classes, test = images.scan(root / "val", "val")
        if val_classes != classes:
            extra = sorted(set(val_classes) ^ set(classes))
            raise UsageError(f"{root / 'val'} and {root / 'train'} hold different class folders "
                             f"({', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}): make them the same")
    images.check_readable(train + test)
    return DataSpec("imagefolder", (3, size, size), len(classes), len(train), len(test), True, train, test)


def resolve_data(cfg: TrainConfig) -> DataSpec:
    """The run's DataSpec; UsageError for a source that cannot serve this configuration."""
    _only_for(cfg)
    if cfg.data == "fashion-mnist":  # --image-size S: padded to S×S, grey repeated over 3 channels
        side = None if cfg.image_size is None else _image_size(cfg)
        shape = FASHION_MNIST_SHAPE if side is None else (3, side, side)
        spec = DataSpec("fashion-mnist", shape, FASHION_MNIST["classes"],
                        min(cfg.limit_train or FASHION_MNIST["n_train"], FASHION_MNIST["n_train"]),
                        min(cfg.limit_test or FASHION_MNIST["n_test"], FASHION_MNIST["n_test"]), True)
    elif cfg.data == "synthetic":
        size = _image_size(cfg)
        spec = DataSpec("synthetic", (3, size, size), cfg.num_classes or DEFAULT_SYNTHETIC_CLASSES,
                        cfg.synthetic_size or DEFAULT_SYNTHETIC_SIZE, 0, False)
    elif cfg.data == "imagefolder":
        spec = _image_folder(cfg, _image_size(cfg))
    else:
        raise UsageError(f"unknown --data {cfg.data!r}: choose fashion-mnist, synthetic or imagefolder")
    problem = input_problem(cfg.model, spec.input_shape)
    if problem:
        fix = "use --model resnet18 or resnet50" if cfg.model == "lenet" else "use --data synthetic or imagefolder"
        if cfg.data == "fashion-mnist":  # only --image-size makes it 3-channel
            fix = ("drop --image-size: lenet takes Fashion-MNIST's 1×28×28 as it is" if cfg.model == "lenet" else
                   f"pass --image-size 32 (Fashion-MNIST padded to 3×32×32), or {fix}")
        raise UsageError(f"--model {cfg.model} with --data {cfg.data}: {problem}; {fix}")
    if spec.n_train < cfg.batch_size:
        if cfg.data == "imagefolder":
            raise UsageError(f"{Path(cfg.data_dir) / 'train'} holds {spec.n_train} images, fewer than one global "
                             f"batch ({cfg.batch_size}): add images or lower --batch-size")
        flag = "--limit-train" if cfg.data == "fashion-mnist" else "--synthetic-size"
        raise UsageError(f"{flag} {spec.n_train} is smaller than one global batch ({cfg.batch_size}): "
                         f"raise {flag} or lower --batch-size")
    return spec
