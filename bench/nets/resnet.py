"""torchvision's ResNet-18, every BN layer from the norm factory.

On 1×28×28 Fashion-MNIST (``small_input``) two changes to torchvision's network, both for small
inputs: the 7×7 stride-2 stem convolution on 3 channels becomes a 3×3 stride-1 convolution on 1
channel, and the stem's max-pool is removed (as in the usual CIFAR adaptation), so the four stages
see 28², 14², 7² and 4² feature maps instead of collapsing a 28×28 image to 1×1 before the last
stage. On 3-channel images (``--data synthetic`` or ``imagefolder``) it is torchvision's network
unchanged, as ResNet-50 is.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.nets.base import NormFactory, mark


class ResNet18BN(nn.Module):
    """ResNet-18 whose BN layers are ``norm(C, 4)``, named by their path in torchvision's network
    (``bn1``, ``layer1.0.bn2``, …; the network is the ``bn_root``)."""

    def __init__(self, norm: NormFactory, num_classes: int = 10, small_input: bool = True):
        super().__init__()
        import torchvision  # only this network needs it

        norm = mark(norm)
        self.net = torchvision.models.resnet18(num_classes=num_classes, norm_layer=lambda c: norm(c, 4))
        if small_input:
            self.net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.net.maxpool = nn.Identity()

    @property
    def bn_root(self) -> nn.Module:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
