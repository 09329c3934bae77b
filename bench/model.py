"""Networks built from a norm factory: LeNet-BN (the textbook's) here."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.profiler import record_function

NormFactory = Callable[[int, int], nn.Module]  # (num_features, dims) -> module


class LeNetBN(nn.Module):
    """Conv(1,6,5) BN σ Pool | Conv(6,16,5) BN σ Pool | Flatten | FC 256→120 BN σ | 120→84 BN σ | 84→10.

    BN layers are named bn1..bn4. While `label_bn` is on, each BN forward runs inside
    `record_function("bn/<name>")` so trace analysis can attribute its kernels; the profiler turns
    the labels on only for its window, so unprofiled steps pay nothing for them.
    """

    def __init__(self, norm: NormFactory):
        super().__init__()
        self.layers = nn.Sequential()
        for name, layer in [
            ("conv1", nn.Conv2d(1, 6, kernel_size=5)), ("bn1", norm(6, 4)), ("act1", nn.Sigmoid()),
            ("pool1", nn.AvgPool2d(2, 2)),
            ("conv2", nn.Conv2d(6, 16, kernel_size=5)), ("bn2", norm(16, 4)), ("act2", nn.Sigmoid()),
            ("pool2", nn.AvgPool2d(2, 2)), ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(16 * 4 * 4, 120)), ("bn3", norm(120, 2)), ("act3", nn.Sigmoid()),
            ("fc2", nn.Linear(120, 84)), ("bn4", norm(84, 2)), ("act4", nn.Sigmoid()),
            ("fc3", nn.Linear(84, 10)),
        ]:
            self.layers.add_module(name, layer)
        self.label_bn = False
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, layer in self.layers.named_children():
            if self.label_bn and name.startswith("bn"):
                with record_function(f"bn/{name}"):
                    x = layer(x)
            else:
                x = layer(x)
        return x


MODELS = ("lenet", "resnet18")


def build_model(name: str, norm: NormFactory) -> nn.Module:
    if name == "lenet":
        return LeNetBN(norm)
    if name == "resnet18":
        from bench.resnet import resnet18_bn  # torchvision is imported only for this network
        return resnet18_bn(norm)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def set_bn_labels(model: nn.Module, on: bool) -> None:
    """Turn the `bn/<layer>` profiler labels on or off (through DDP and compile wrappers)."""
    for m in model.modules():
        if hasattr(m, "label_bn"):
            m.label_bn = on
