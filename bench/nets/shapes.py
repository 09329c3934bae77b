"""Every input a network's BN layers see, recorded with forward hooks during one forward pass on
the meta device (no memory, no arithmetic): what bench.micro measures for ``--shapes NAME`` and
what the scale model counts channels from.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.nets import FASHION_MNIST_SHAPE, MODELS, bn_layers, build_model, input_problem
from bench.nets.meta import on_meta


def input_shape(name: str, image_size: int | None) -> tuple[int, int, int]:
    """(C, H, W) of ``name``'s images: lenet's 1×28×28 always; others 3 × size² (224 when None)."""
    if name == "lenet":
        return FASHION_MNIST_SHAPE
    size = image_size or 224
    return (3, size, size)


def bn_inputs(name: str, image_size: int | None = None, batch: int = 2) -> list[tuple[str, tuple[int, ...]]]:
    """(path, input shape with N = ``batch``) of every BN-layer call, in the order the forward pass
    makes them. Raises ValueError naming the problem when ``name`` cannot take the images.

    >>> [(p, s) for p, s in bn_inputs("lenet", batch=8)][2:]
    [('bn3', (8, 120)), ('bn4', (8, 84))]
    """
    shape = input_shape(name, image_size)
    problem = input_problem(name, shape)
    if problem:
        raise ValueError(problem)
    with on_meta():
        net = build_model(name, lambda c, d: nn.BatchNorm1d(c) if d == 2 else nn.BatchNorm2d(c), shape,
                          10 if name in MODELS else 1000)
    net = net.to("meta").train()
    seen: list[tuple[str, tuple[int, ...]]] = []
    for path, layer in bn_layers(net):
        layer.register_forward_pre_hook(lambda _m, args, path=path: seen.append((path, tuple(args[0].shape))))
    with torch.no_grad():
        net(torch.empty(batch, *shape, device="meta"))
    return seen


def distinct_shapes(name: str, image_size: int | None = None, batch: int = 2) -> dict[tuple[int, ...], str]:
    """Each distinct BN input shape (N first), with the path of the first layer that sees it."""
    out: dict[tuple[int, ...], str] = {}
    for path, shape in bn_inputs(name, image_size, batch):
        out.setdefault(shape, path)
    return out


def bn_channels(name: str, image_size: int | None = None) -> list[tuple[str, int]]:
    """(path, channels) of every BN layer of ``name``, in module order."""
    with on_meta():
        net = build_model(name, lambda c, d: nn.BatchNorm1d(c) if d == 2 else nn.BatchNorm2d(c),
                          input_shape(name, image_size), 10)
    return [(path, m.num_features) for path, m in bn_layers(net)]
