"""torchvision's ResNet-18 for 1×28×28 Fashion-MNIST, every BN layer from the norm factory.

Two changes to torchvision's network, both for small inputs: the 7×7 stride-2 stem convolution on
3 channels becomes a 3×3 stride-1 convolution on 1 channel, and the stem's max-pool is removed
(as in the usual CIFAR adaptation), so the four stages see 28², 14², 7² and 4² feature maps
instead of collapsing a 28×28 image to 1×1 before the last stage.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.profiler import record_function

from bench.model import NormFactory


class ResNet18BN(nn.Module):
    """ResNet-18 whose BN layers are `norm(C, 4)`; `label_bn` works as in LeNetBN.

    While `label_bn` is on, forward hooks wrap each BN layer in `record_function("bn/<path>")`
    (e.g. `bn/layer1.0.bn2`); while it is off no hook is installed, so steps pay nothing.
    """

    def __init__(self, norm: NormFactory, num_classes: int = 10):
        super().__init__()
        import torchvision

        self.net = torchvision.models.resnet18(num_classes=num_classes, norm_layer=lambda c: norm(c, 4))
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.net.maxpool = nn.Identity()
        self._hooks: list = []
        self._open: dict[str, record_function] = {}

    def bn_layers(self) -> dict[str, nn.Module]:
        """Every module the factory built, by its path inside torchvision's network."""
        return dict(self._norms)

    @property
    def label_bn(self) -> bool:
        return bool(self._hooks)

    @label_bn.setter
    def label_bn(self, on: bool) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if not on:
            return
        for name, m in self._norms:
            self._hooks.append(m.register_forward_pre_hook(self._enter_hook(f"bn/{name}")))
            self._hooks.append(m.register_forward_hook(self._exit_hook(f"bn/{name}")))

    @property
    def _norms(self) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in self.net.named_modules() if getattr(m, "_from_norm_factory", False)]

    def _enter_hook(self, label: str):
        def hook(_module, _args):
            rf = record_function(label)
            rf.__enter__()
            self._open[label] = rf
        return hook

    def _exit_hook(self, label: str):
        def hook(_module, _args, _out):
            self._open.pop(label).__exit__(None, None, None)
        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resnet18_bn(norm: NormFactory) -> ResNet18BN:
    """ResNet-18 with every BN layer from `norm`; the layers are marked so labels can find them."""
    def marked(c: int, dims: int) -> nn.Module:
        m = norm(c, dims)
        m._from_norm_factory = True
        return m
    return ResNet18BN(marked)
