"""Any torchvision classification network that holds batch-norm layers, by its torchvision name
(``regnet_y_400mf``, ``efficientnet_b0``, ``mobilenet_v3_small``, ``densenet121`` …), unchanged,
every BN layer converted to the run's variant by bench.bn.convert at its own module path
(``features.0.1``, ``trunk_output.block1.block1-0.f.a.1`` …; the torchvision network is the
``bn_root``, so labels read ``bn/<path>``). Each converted layer keeps the original's eps and momentum
(EfficientNet's 1e-3, MnasNet's 3e-4).

Networks without BN (ConvNeXt, ViT, Swin, VGG without ``_bn``, …) are refused: there is nothing to
compare. bnbench's own ``lenet``, ``resnet18`` and ``resnet50`` keep their builders (bench.nets).
Checks build the network on the meta device (bench.nets.meta): no memory, no arithmetic.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from bench.bn.convert import convert_norms, is_norm_layer
from bench.nets.base import NormFactory, mark
from bench.nets.meta import on_meta

# Built without their auxiliary classifiers, so a training step returns one tensor of logits.
EXTRA_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True},
                "inception_v3": {"aux_logits": False, "init_weights": True}}


@functools.lru_cache(maxsize=1)
def classification_names() -> tuple[str, ...]:
    """Every name in torchvision's classification model list."""
    import torchvision
    return tuple(torchvision.models.list_models(module=torchvision.models))


def _torchvision(name: str, num_classes: int) -> nn.Module:
    import torchvision
    return torchvision.models.get_model(name, num_classes=num_classes, **EXTRA_KWARGS.get(name, {}))


@functools.lru_cache(maxsize=None)
def bn_count(name: str) -> int:
    """How many batch-norm layers torchvision's ``name`` holds (built on the meta device)."""
    with on_meta():
        net = _torchvision(name, 10)
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def bn_models() -> tuple[str, ...]:
    """The torchvision classification names with at least one BN layer."""
    return tuple(n for n in classification_names() if bn_count(n) > 0)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a torchvision network bnbench can train, or None when it is."""
    if name not in classification_names():
        return (f"unknown --model {name}: pass lenet, resnet18, resnet50 or a torchvision classification "
                f"model with batch norm (python -m bench.nets lists them)")
    if bn_count(name) == 0:
        return (f"--model {name} holds no batch-norm layer, so there is no BN to compare: pick a model "
                f"python -m bench.nets lists (resnet*, regnet_*, efficientnet_*, mobilenet_*, ...)")
    return None


@functools.lru_cache(maxsize=None)  # a pure function of its arguments; each check builds the network
def input_problem(name: str, input_shape: tuple[int, int, int]) -> str | None:
    """Why torchvision's ``name`` cannot take (C, H, W) inputs, or None: a forward pass on the meta device."""
    c, h, w = input_shape
    if c != 3:
        return (f"{name} is torchvision's network for 3-channel images, not {c}×{h}×{w}: use --data synthetic "
                f"or --data imagefolder with --image-size")
    with on_meta():
        net = _torchvision(name, 10)
    net = net.to("meta").train()
    try:
        with torch.no_grad():
            net(torch.empty(2, *input_shape, device="meta"))
    except (RuntimeError, ValueError, AssertionError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"{name} cannot take {c}×{h}×{w} images ({why}): use a larger --image-size"
    return None


class TorchvisionBN(nn.Module):
    """torchvision's ``name`` with every BN layer from the norm factory, at its torchvision path."""

    def __init__(self, name: str, norm: NormFactory, num_classes: int):
        super().__init__()
        self.net = convert_norms(_torchvision(name, num_classes), mark(norm))

    @property
    def bn_root(self) -> nn.Module:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def norm_paths(net: nn.Module) -> list[str]:
    """Module paths of every normalisation layer of a plain network, in module order."""
    return [path for path, m in net.named_modules() if is_norm_layer(m)]
