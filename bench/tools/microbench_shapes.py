"""The BN input shapes bench.micro measures: named shapes, and groups that stand for every distinct
shape of a network, each at one or more batches and memory formats.

    lenet.bn1 … lenet.bn4, resnet50.layer1   one shape each (LeNet's four, ResNet-50's first stage)
    resnet50                                 every distinct (C, H, W) a ResNet-50 BN layer sees at 224²
                                             (12, named by the first layer that sees it, e.g.
                                             resnet50.layer1.0.bn3), at per-GPU batch 64 and 256
    any network --model takes (regnet_y_400mf, …)  every distinct BN input of that network at
                                             --image-size (default 224), found with forward hooks
                                             (bench.nets.shapes), at batch 256 unless --batch is given
"""
from __future__ import annotations

from dataclasses import dataclass

SHAPES = {  # name -> (N, C[, H, W]) at batch 256
    "lenet.bn1": (256, 6, 24, 24), "lenet.bn2": (256, 16, 8, 8), "lenet.bn3": (256, 120),
    "lenet.bn4": (256, 84), "resnet50.layer1": (256, 64, 56, 56),
}
GROUP_BATCHES = {"resnet50": (64, 256)}  # a group's batches when --batch is not given
DEFAULT_BATCH = 256
MEMORY_FORMATS = ("contiguous", "channels_last")


@dataclass(frozen=True)
class Case:
    """One input to measure: its name, full shape (N first) and memory format."""
    shape_name: str
    shape: tuple[int, ...]
    memory_format: str


def is_group(name: str) -> bool:
    """A group of shapes (a network's), not one named shape."""
    return name not in SHAPES


def group_shapes(group: str, image_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Name -> (C[, H, W]) of every shape in a group, in network order."""
    if group == "resnet50" and image_size in (None, 224):
        from bench.nets.resnet50 import bn_input_shapes
        return {f"resnet50.{layer}": chw for chw, layer in bn_input_shapes(224).items()}
    from bench.nets.shapes import distinct_shapes
    return {f"{group}.{path}": shape[1:] for shape, path in distinct_shapes(group, image_size, batch=2).items()}


def cases(names: list[str], batches: list[int] | None, memory_formats: list[str] | None = None,
          image_size: int | None = None) -> list[Case]:
    """Every (shape, batch, memory format) to measure. Without ``batches`` a named shape runs at 256 and
    a group at its own batches; without ``memory_formats`` a named shape runs contiguous and a group in
    both formats. channels_last applies to 4-d shapes only (2-d ones run contiguous).

    >>> sorted({c.memory_format for c in cases(["resnet50"], [2])})
    ['channels_last', 'contiguous']

    >>> [(c.shape, c.memory_format) for c in cases(["lenet.bn3", "lenet.bn2"], [8], list(MEMORY_FORMATS))]
    [((8, 120), 'contiguous'), ((8, 16, 8, 8), 'contiguous'), ((8, 16, 8, 8), 'channels_last')]
    """
    out: list[Case] = []
    for name in names:
        chws = group_shapes(name, image_size) if is_group(name) else {name: SHAPES[name][1:]}
        for n in batches or GROUP_BATCHES.get(name, (DEFAULT_BATCH,)):
            for shape_name, chw in chws.items():
                for fmt in memory_formats or (MEMORY_FORMATS if is_group(name) else ("contiguous",)):
                    if fmt == "contiguous" or len(chw) == 3:
                        out.append(Case(shape_name, (n, *chw), fmt))
    return out


def shape_or_model(text: str) -> str:
    """An argparse type: a named shape, or a network --model takes (bench.nets.model_problem)."""
    import argparse

    from bench.nets import model_problem

    if text in SHAPES:
        return text
    problem = model_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text} is neither a named shape ({', '.join(SHAPES)}) nor a network: "
                                         f"{problem}")
    return text
