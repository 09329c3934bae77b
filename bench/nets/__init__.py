"""Networks built from a norm factory. Rule: imports torch, torchvision, bench.nets and bench.bn's
converter only; a network never names a BN variant — it calls the factory it is given
(bench.bn.make_norm, wrapped), directly or through bench.bn.convert.

    lenet     LeNet-BN, the textbook's network, on 1×28×28 Fashion-MNIST (bench.nets.lenet)
    resnet18  torchvision's ResNet-18: on 1×28×28 Fashion-MNIST with a small-input stem, on 3-channel
              images as torchvision builds it (bench.nets.resnet)
    resnet50  torchvision's ResNet-50, unchanged, on 3-channel images (bench.nets.resnet50)
    any other torchvision classification network with BN, by its torchvision name, unchanged, on
              3-channel images (bench.nets.torchvision_models; python -m bench.nets lists them)

bench.nets.base holds what they share: the factory type and the BN-layer labels for the profiler.
"""
from __future__ import annotations

from torch import nn

from bench.nets.base import NormFactory, bn_layers, set_bn_labels

__all__ = ["FASHION_MNIST_SHAPE", "MODELS", "NormFactory", "bn_layers", "build_model", "input_problem",
           "model_problem",
           "set_bn_labels"]

MODELS = ("lenet", "resnet18", "resnet50")
FASHION_MNIST_SHAPE = (1, 28, 28)  # (C, H, W)


def model_problem(name: str) -> str | None:
    """Why ``name`` is no network bnbench can train (unknown, or without BN layers), or None.

    >>> model_problem("resnet18") is None
    True
    """
    if name in MODELS:
        return None
    from bench.nets.torchvision_models import name_problem
    return name_problem(name)


def input_problem(name: str, input_shape: tuple[int, int, int]) -> str | None:
    """Why network ``name`` cannot take (C, H, W) inputs, or None when it can.

    >>> input_problem("lenet", (3, 224, 224))
    'lenet is the textbook network for 1×28×28 Fashion-MNIST images, not 3×224×224'
    >>> input_problem("resnet18", (3, 32, 32)) is None
    True
    """
    if name not in MODELS:
        from bench.nets import torchvision_models
        return torchvision_models.name_problem(name) or torchvision_models.input_problem(name, tuple(input_shape))
    c, h, w = input_shape
    if name == "lenet" and tuple(input_shape) != FASHION_MNIST_SHAPE:
        return f"lenet is the textbook network for 1×28×28 Fashion-MNIST images, not {c}×{h}×{w}"
    if name == "resnet50" and c != 3:
        return (f"resnet50 is torchvision's ImageNet network for 3-channel images, not {c}×{h}×{w} "
                f"(its stem would shrink a 28×28 image to 1×1 before the last stage)")
    if name == "resnet18" and tuple(input_shape) != FASHION_MNIST_SHAPE and c != 3:
        return f"resnet18 takes 1×28×28 Fashion-MNIST or 3-channel images, not {c}×{h}×{w}"
    return None


def build_model(name: str, norm: NormFactory, input_shape: tuple[int, int, int] = FASHION_MNIST_SHAPE,
                num_classes: int = 10) -> nn.Module:
    """The network ``name`` with every BN layer from ``norm``, for (C, H, W) inputs and ``num_classes``."""
    problem = input_problem(name, input_shape)
    if problem:
        raise ValueError(problem)
    if name not in MODELS:
        from bench.nets.torchvision_models import TorchvisionBN
        return TorchvisionBN(name, norm, num_classes)
    if name == "lenet":
        from bench.nets.lenet import LeNetBN
        return LeNetBN(norm)
    if name == "resnet18":
        from bench.nets.resnet import ResNet18BN
        return ResNet18BN(norm, num_classes, small_input=tuple(input_shape) == FASHION_MNIST_SHAPE)
    from bench.nets.resnet50 import ResNet50BN
    return ResNet50BN(norm, num_classes)
