"""Facts analysis.scale states about the training code, checked against that code (torch side).

analysis/ imports no torch, so the model restates a few facts of bench/ and torch: which collectives
a synchronised BN layer issues and how big they are, the guard's defaults, ResNet-50's BN layers.
These tests hold the restatements to the real thing.
"""
from __future__ import annotations

from analysis.load.scale_files import tomllib  # the stdlib parser, or tomli on Python 3.10
from collections import Counter

import torch
import torch.distributed as dist

from analysis.atscale.step_model import (BN_BWD_FLOATS_PER_CHANNEL, COUNTER_VARIANTS, GUARD_BYTES, GUARD_EVERY,
                                  bn_collectives)
from bench.run.divergence import DivergenceGuard
from bench.rundir import DIVERGENCE_CHECK_EVERY
from bench.tools.collective_bench import bn_channels
from tests.dist_helpers import run_workers
from tests.procs import REPO


def issued_collectives(rank: int, world_size: int, channels: int) -> list[tuple[str, int]]:
    """(collective, bytes) of every collective one training step of a ScratchSyncBatchNorm issues."""
    from bench.bn.scratch_sync import ScratchSyncBatchNorm

    seen = []
    for name in ("all_gather_single", "all_gather_into_tensor", "all_reduce"):
        if (original := getattr(dist, name, None)) is not None:
            def spy(out, *args, _name=name, _original=original, **kwargs):
                seen.append(("all_reduce" if _name == "all_reduce" else "all_gather", out.numel() * out.element_size()))
                return _original(out, *args, **kwargs)
            setattr(dist, name, spy)
    bn = ScratchSyncBatchNorm(channels, dims=4)
    x = torch.randn(3, channels, 5, 5, requires_grad=True)
    bn(x).sum().backward()
    return seen


def test_scratch_sync_issues_what_the_model_charges():
    # the spy records each call's output: the gathered (W, 3, C) tensor, the reduced (2, C) one
    for seen in run_workers(issued_collectives, 2, 7):
        assert sorted(seen) == sorted(bn_collectives("scratch-sync", 7, 2))
    assert BN_BWD_FLOATS_PER_CHANNEL == 2


def test_variants_with_an_int64_buffer():
    from bench.bn import make_norm

    layers = {v: make_norm(v, 4, 4) for v in ("scratch", "nn", "scratch-sync")} | {"sync": torch.nn.SyncBatchNorm(4)}
    with_counter = {v for v, m in layers.items() if any(b.dtype == torch.int64 for b in m.buffers())}
    assert with_counter == set(COUNTER_VARIANTS)


def test_guard_defaults_match_bench():
    assert GUARD_EVERY == DIVERGENCE_CHECK_EVERY and DivergenceGuard(torch.device("cpu")).every == GUARD_EVERY["cpu"]
    assert GUARD_BYTES == DivergenceGuard(torch.device("cpu")).payload_bytes


def test_bn_channels_from_the_networks():
    assert bn_channels("lenet") == [6, 16, 120, 84]
    r18 = Counter(bn_channels("resnet18"))  # stem, 4 stages × 2 blocks × 2, 3 downsamples
    assert r18 == {64: 5, 128: 5, 256: 5, 512: 5}
    with open(REPO / "docs" / "scale" / "resnet50-b32.toml", "rb") as f:
        stated = tomllib.load(f)["channels"]
    assert bn_channels("resnet50") == stated and len(stated) == 53
