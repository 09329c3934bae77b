"""LeNet-BN, the textbook's network, for 1×28×28 Fashion-MNIST."""
from __future__ import annotations

import torch
from torch import nn

from bench.nets.base import NormFactory, mark


class LeNetBN(nn.Module):
    """Conv(1,6,5) BN σ Pool | Conv(6,16,5) BN σ Pool | Flatten | FC 256→120 BN σ | 120→84 BN σ | 84→10.

    BN layers are named bn1..bn4 (paths inside ``layers``, its ``bn_root``).
    """

    def __init__(self, norm: NormFactory):
        super().__init__()
        norm = mark(norm)
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
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)

    @property
    def bn_root(self) -> nn.Module:
        return self.layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
