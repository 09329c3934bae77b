"""The networks ``--model`` takes, with their BN layer counts: the logic of ``python -m bench.nets``.

    python -m bench.nets            # name, BN layers, where it comes from
"""
from __future__ import annotations

import sys

from bench.errors import OneLineParser, cli


def rows() -> list[tuple[str, int, str]]:
    """(name, BN layers, source) of every network bnbench trains, its own first."""
    from torch import nn

    from bench.nets import MODELS, bn_layers, build_model
    from bench.nets.meta import on_meta
    from bench.nets.shapes import input_shape
    from bench.nets.torchvision_models import bn_count, bn_models

    out = []
    for name in MODELS:
        with on_meta():
            net = build_model(name, lambda c, d: nn.BatchNorm2d(c), input_shape(name, None), 10)
        out.append((name, len(bn_layers(net)), "bnbench (bench.nets)"))
    out += [(name, bn_count(name), "torchvision") for name in bn_models() if name not in MODELS]
    return out


def main(argv: list[str] | None = None) -> int:
    OneLineParser(prog="bench.nets", description="List the networks --model takes and their BN layers.").parse_args(argv)

    def run() -> int:
        print("checking torchvision's classification networks for BN layers (on the meta device) ...",
              file=sys.stderr, flush=True)
        table = rows()
        print(f"{'model':<22} {'BN layers':>9}  source")
        for name, count, source in table:
            print(f"{name:<22} {count:>9}  {source}")
        print(f"{len(table)} networks; torchvision's networks without BN (ConvNeXt, ViT, Swin, ...) are refused")
        return 0
    return cli("bench.nets", run)

