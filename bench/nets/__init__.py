"""Networks built from a norm factory. Rule: imports torch, torchvision and bench.nets.base only; a
network never names a BN variant — it calls the factory it is given (bench.bn.make_norm, wrapped).

    lenet     LeNet-BN, the textbook's network (bench.nets.lenet)
    resnet18  torchvision's ResNet-18 adapted to 28×28 inputs (bench.nets.resnet)

bench.nets.base holds what they share: the factory type and the BN-layer labels for the profiler.
"""
from __future__ import annotations

from torch import nn

from bench.nets.base import NormFactory, bn_layers, set_bn_labels

__all__ = ["MODELS", "NormFactory", "bn_layers", "build_model", "set_bn_labels"]

MODELS = ("lenet", "resnet18")


def build_model(name: str, norm: NormFactory) -> nn.Module:
    """The network ``name`` with every BN layer from ``norm``."""
    if name == "lenet":
        from bench.nets.lenet import LeNetBN
        return LeNetBN(norm)
    if name == "resnet18":
        from bench.nets.resnet import ResNet18BN
        return ResNet18BN(norm)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
