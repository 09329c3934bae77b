"""Block sizes of the fused batch norm's kernels (bench.bn.fused.kernels_fwd, kernels_bwd).

Block sizes come from ``triton.autotune`` (key: the shape; the autotuner adds the dtypes):

* tiles of 2048 or 4096 elements at 4 or 8 warps: 16-32 elements per thread, enough bytes in
  flight per streaming multiprocessor to keep HBM busy, few enough that the tile and its
  reductions stay in registers;
* plane widths 64, 256 and 1024, pruned to those from 1/16 of the plane's size (rounded up to a
  power of two) up to that size, so that 7x7 and 14x14 planes do not leave most lanes masked
  while 56x56 planes read long contiguous runs.

A process decides once whether Triton runs compiled or interpreted: ``@triton.jit`` and Triton's
own ``tl.sum`` read ``TRITON_INTERPRET`` when they are decorated, i.e. when triton is first
imported. Under the interpreter autotuning would time CPU emulation, so the blocks follow from
the input's size instead (``interpreter_pick``): inputs of up to ``INTERPRETER_SMALL`` elements
(test-sized) get blocks small enough to span several tiles, channel blocks and partials; larger
ones get tiles that hold a channel's samples in one or two, because the interpreter spends
milliseconds on every tile whatever its size (each ``tl.sum`` is a call of a jit function, which
re-patches ``triton.language``), so a LeNet training step takes seconds instead of minutes.
Channels go in about two blocks of at least 4 (``block_c``).
"""

from __future__ import annotations

import triton
import triton.language as tl

# True when this module's kernels (and triton's own) run in the CPU interpreter
INTERPRETED = not isinstance(tl.zeros, triton.runtime.JITFunction)

INTERPRETER_SMALL = 1 << 10  # elements: the largest input the interpreter gives test-sized blocks
if INTERPRETED:  # [test-sized inputs, larger ones]: interpreter_pick keeps one
    PLANE_CONFIGS = [triton.Config({"BLOCK_N": 2, "BLOCK_S": 16}),
                     triton.Config({"BLOCK_N": 64, "BLOCK_S": 1024})]
    ROW_CONFIGS = [triton.Config({"TILE": 64}), triton.Config({"TILE": 1 << 14})]
else:
    PLANE_CONFIGS = [
        triton.Config({"BLOCK_N": 32, "BLOCK_S": 64}, num_warps=4),
        triton.Config({"BLOCK_N": 8, "BLOCK_S": 256}, num_warps=4),
        triton.Config({"BLOCK_N": 2, "BLOCK_S": 1024}, num_warps=4),
        triton.Config({"BLOCK_N": 4, "BLOCK_S": 1024}, num_warps=8),
    ]
    ROW_CONFIGS = [
        triton.Config({"TILE": 2048}, num_warps=4),
        triton.Config({"TILE": 4096}, num_warps=4),
        triton.Config({"TILE": 4096}, num_warps=8),
    ]
MAX_BLOCK_C = 256
# The least work a program of the reduction passes gets (elements of one channel block): below
# it the partials' traffic grows faster than the parallelism helps. Not in the interpreter, where
# tests need several partials from tiny inputs.
MIN_PROGRAM_ELEMENTS = 1 if INTERPRETED else 1 << 15
# Fixed blocks of the kernels over partials (combine, sum_partials): a few programs of
# (BLOCK_P, <= PARTIAL_BLOCK_C) tiles; a few hundred partials take a handful of iterations.
BLOCK_P = 1 if INTERPRETED else 128  # interpreter: loop over the partials
PARTIAL_BLOCK_C = MAX_BLOCK_C if INTERPRETED else 16


def block_c(c: int, largest: int = MAX_BLOCK_C) -> int:
    """Channels per program of the rows layout (largest=MAX_BLOCK_C) and of the kernels over
    partials (largest=PARTIAL_BLOCK_C): all of them up to `largest`; under the interpreter about
    half of them, at least 4, so that test channels span two blocks and no input many."""
    if INTERPRETED:
        return min(max(4, triton.next_power_of_2(triton.cdiv(c, 2))), largest)
    return min(triton.next_power_of_2(c), largest)


def interpreter_pick(configs: list, numel: int) -> list:
    """Under the interpreter, the one config for an input of `numel` elements (module docstring)."""
    return [configs[0] if numel <= INTERPRETER_SMALL else configs[-1]]


def prune_planes(configs: list, named_args: dict, **kwargs) -> list:
    """Plane widths from 1/16 of the plane's size (rounded up to a power of two) up to that size.

    Wider tiles would be mostly masked; much narrower ones need BLOCK_N large enough that a
    program's share of the batch, rounded to it (plane_granule), leaves too few programs.
    """
    if INTERPRETED:
        return interpreter_pick(configs, named_args["N"] * named_args["C"] * named_args["S"])
    narrowest = min(c.kwargs["BLOCK_S"] for c in configs)
    limit = max(triton.next_power_of_2(named_args["S"]), narrowest)
    kept = [c for c in configs if limit // 16 <= c.kwargs["BLOCK_S"] <= limit]
    return kept or [c for c in configs if c.kwargs["BLOCK_S"] == narrowest]


def prune_rows(configs: list, named_args: dict, **kwargs) -> list:
    """Every tile on a GPU (the autotuner times them); the interpreter's pick under it."""
    if INTERPRETED:
        return interpreter_pick(configs, named_args["M"] * named_args["C"])
    return configs


def plane_granule(N: int, C: int, S: int) -> int:
    """Largest BLOCK_N the autotuner may pick for (N, C, S) planes: the planes reductions give
    each program a multiple of it, so no tile of a program spans two programs' images."""
    kept = prune_planes(PLANE_CONFIGS, {"N": N, "C": C, "S": S})
    return max(c.kwargs["BLOCK_N"] for c in kept)


def row_granule(M: int, C: int, block: int) -> int:
    """Largest tile height (rows) the autotuner may pick for (M, C) rows in channel blocks of
    `block`: the rows reductions give each program a multiple of it."""
    return max(c.kwargs["TILE"] for c in prune_rows(ROW_CONFIGS, {"M": M, "C": C})) // block


PLANES = dict(configs=PLANE_CONFIGS, key=["N", "C", "S"],
              prune_configs_by={"early_config_prune": prune_planes})
ROWS = dict(configs=ROW_CONFIGS, key=["M", "C"], prune_configs_by={"early_config_prune": prune_rows})
