"""Where a rank's batches come from, one interface for every data source (bench.run.datasets.spec):

    batches(order)      the batches of an epoch, one per row of ``order`` (steps, per-rank batch) of
                        example indices: the loop's sharding of one seeded permutation, whatever the
                        source. Its set-up (index rows, worker prefetch) runs when called, before the
                        first step; each batch is made when the loop asks for it
    example(n)          n training examples, for a step that captures or compiles on a fixed shape
    train_y             every training label on the device, for training accuracy
    evaluate(...)       test accuracy over the whole test set, each rank a contiguous slice (no padding);
                        None where there is no test set

Fashion-MNIST and synthetic images live on the device and a batch is a gather there (synthetic uint8
images are normalised on the fly); an image folder is read by DataLoader workers, pinned, and
copied without blocking. In channels_last runs every batch is made channels_last here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.distributed as tdist

from bench.run.config import TrainConfig
from bench.run.datasets import fashion_mnist as fmnist
from bench.run.datasets import image_folder as images
from bench.run.datasets import synthetic
from bench.run.datasets.spec import DataSpec

Batch = tuple[torch.Tensor, torch.Tensor]


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def _count_correct(counts: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
    """Add a batch's top-1 (argmax, as always) and top-5 hits to ``counts`` (int64, 2)."""
    counts[0] += (logits.argmax(1) == y).sum()
    if logits.size(1) > 5:
        counts[1] += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()


def _sum_correct(counts: torch.Tensor, n: int, classes: int) -> tuple[float, float | None]:
    """(top-1, top-5 or None with 5 classes or fewer) accuracy over all ranks' ``counts``."""
    if tdist.is_initialized():
        tdist.all_reduce(counts)
    top1, top5 = counts.tolist()
    return top1 / n, (top5 / n if classes > 5 else None)


def _slice(n: int, rank: int, world_size: int) -> range:
    """Rank's contiguous share of n test examples: every example scored exactly once, none padded."""
    return range(n * rank // world_size, n * (rank + 1) // world_size)


@dataclass
class DeviceSource:
    """Images resident on the device; ``prepare`` turns gathered images into the network's input."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    prepare: Callable[[torch.Tensor], torch.Tensor]

    def batches(self, order: torch.Tensor) -> Iterator[Batch]:
        rows = order.to(self.train_x.device).unbind(0)
        return ((self.prepare(self.train_x[idx]), self.train_y[idx]) for idx in rows)

    def example(self, n: int) -> Batch:
        return self.prepare(self.train_x[:n]), self.train_y[:n]

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, rank: int, world_size: int,
                 batch: int) -> tuple[float, float | None] | None:
        if self.test_x is None:
            return None
        part = _slice(len(self.test_x), rank, world_size)
        model.eval()
        counts, classes = torch.zeros(2, dtype=torch.int64, device=self.test_x.device), 0
        for i in range(part.start, part.stop, batch):
            j = min(i + batch, part.stop)
            logits = model(self.prepare(self.test_x[i:j]))
            _count_correct(counts, logits, self.test_y[i:j])
            classes = logits.size(1)
        model.train()
        return _sum_correct(counts, len(self.test_x), classes)


@dataclass
class FolderSource:
    """An image folder read by DataLoader workers; batches are normalised on the device."""
    spec: DataSpec
    cfg: TrainConfig
    device: torch.device
    train_y: torch.Tensor
    normalise: images.Normalise
    _sampler: images.StepBatches = field(default_factory=images.StepBatches)
    _train: torch.utils.data.DataLoader | None = None

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        x = x.to(self.device, non_blocking=True)
        return self.normalise(x), y.to(self.device, non_blocking=True)

    def batches(self, order: torch.Tensor) -> Iterator[Batch]:
        if self._train is None:
            data = images.ImageFiles(self.spec.train_files, images.transforms(self.spec.input_shape[1], True))
            self._train = images.loader(data, self._sampler, workers=self.cfg.workers,
                                        pin=self.device.type == "cuda")
        self._sampler.rows = order.tolist()
        loaded = iter(self._train)  # workers start on the epoch's first batches now
        return (self._to_device(x, y) for x, y in loaded)

    def example(self, n: int) -> Batch:
        data = images.ImageFiles(self.spec.train_files[:n], images.transforms(self.spec.input_shape[1], True))
        return self._to_device(*next(iter(images.loader(data, batch_size=n))))

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, rank: int, world_size: int,
                 batch: int) -> tuple[float, float | None] | None:
        if not self.spec.test_files:
            return None
        files = self.spec.test_files
        part = _slice(len(files), rank, world_size)
        data = images.ImageFiles(files[part.start:part.stop], images.transforms(self.spec.input_shape[1], False))
        model.eval()
        counts = torch.zeros(2, dtype=torch.int64, device=self.device)
        for x, y in images.loader(data, batch_size=batch, workers=self.cfg.workers, pin=self.device.type == "cuda"):
            x, y = self._to_device(x, y)
            _count_correct(counts, model(x), y)
        model.train()
        return _sum_correct(counts, len(files), self.spec.num_classes)


Source = DeviceSource | FolderSource


def prepare(cfg: TrainConfig) -> None:
    """Make the data ready before any rank waits on another: Fashion-MNIST's files laid out (or
    downloaded with --download), so missing or damaged data fails here; other sources need nothing."""
    if cfg.data == "fashion-mnist":
        fmnist.prepare(cfg.data_dir, cfg.download)


def load(cfg: TrainConfig, spec: DataSpec, device: torch.device) -> Source:
    """The source of ``spec`` for this rank, its data on ``device`` where it lives there."""
    fmt = memory_format(cfg)
    if spec.source == "fashion-mnist":
        d = fmnist.load(cfg.data_dir, device, False, cfg.limit_train, cfg.limit_test)
        train_x, test_x = d.train_x, d.test_x
        if tuple(spec.input_shape) != tuple(train_x.shape[1:]):  # --image-size: padded once, not per step
            train_x, test_x = (fmnist.padded(x, spec.input_shape[-1]) for x in (train_x, test_x))
        prepare = (lambda x: x.contiguous(memory_format=fmt)) if cfg.channels_last else (lambda x: x)
        return DeviceSource(train_x, d.train_y, test_x, d.test_y, prepare)
    if spec.source == "synthetic":
        x, y = synthetic.synthetic(spec.n_train, spec.num_classes, spec.input_shape[1], device)
        return DeviceSource(x, y, None, None, images.Normalise(device, fmt))
    targets = torch.tensor([c for _, c in spec.train_files], dtype=torch.int64, device=device)
    return FolderSource(spec, cfg, device, targets, images.Normalise(device, fmt))
