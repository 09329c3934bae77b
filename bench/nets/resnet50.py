"""torchvision's ResNet-50, unchanged, with every BN layer from the norm factory: the workload where the
choice of batch norm shows in a training step (docs/workloads.md).

Its 53 BN layers are named by their path in torchvision's network (``bn1``, ``layer1.0.bn1``, …,
``layer4.2.bn3``, the downsample branches ``layer1.0.downsample.1`` …), which is the ``bn_root``, so
profiler labels read ``bn/<path>``. ``bn_input_shapes`` lists the distinct (C, H, W) a BN layer sees
at a given image size, for the layer micro-benchmark.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from bench.nets.base import NormFactory, mark


class ResNet50BN(nn.Module):
    """torchvision's ``resnet50(num_classes=…)`` on 3-channel images; BN layers are ``norm(C, 4)``."""

    def __init__(self, norm: NormFactory, num_classes: int = 1000):
        super().__init__()
        import torchvision  # only the ResNets need it

        norm = mark(norm)
        self.net = torchvision.models.resnet50(num_classes=num_classes, norm_layer=lambda c: norm(c, 4))

    @property
    def bn_root(self) -> nn.Module:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bn_input_shapes(image_size: int = 224) -> dict[tuple[int, int, int], str]:
    """Each distinct (C, H, W) a ResNet-50 BN layer normalises at ``image_size``², with the path of the
    first layer that sees it, in network order. Runs the network on the meta device: no memory, no
    arithmetic.

    >>> shapes = bn_input_shapes(224)
    >>> len(shapes), shapes[(64, 112, 112)], shapes[(2048, 7, 7)]
    (12, 'bn1', 'layer4.0.bn3')
    """
    return dict(_bn_input_shapes(image_size))


@functools.lru_cache(maxsize=None)  # a pure function of the size; building the network takes a second
def _bn_input_shapes(image_size: int) -> tuple[tuple[tuple[int, int, int], str], ...]:
    seen: dict[tuple[int, int, int], str] = {}

    def record(name: str):
        def hook(_module, args):
            seen.setdefault(tuple(args[0].shape[1:]), name)
        return hook

    with torch.device("meta"):
        net = ResNet50BN(lambda c, _dims: nn.BatchNorm2d(c))
    for name, module in net.net.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_pre_hook(record(name))
    with torch.no_grad():
        net(torch.empty(1, 3, image_size, image_size, device="meta"))
    return tuple(seen.items())
