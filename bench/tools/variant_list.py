"""The BN variants and whether each can run here: ``python -m bench.variants [--device cpu]``.

One line per variant of bench.rundir.VARIANTS: its name, whose samples its statistics span, what
it is, and ``yes`` where it runs on the device, ``no:`` and the reason where it cannot (``sync``
on CPU runs in one process only). The Triton variants
(``fused``, ``fused-sync``) depend on the machine: triton must be importable, and on CPU the
kernels run only under ``TRITON_INTERPRET=1`` set before Python starts (bench.bn.fused). A
variant listed as unavailable exits 2 with the same reason when a run asks for it.
"""
from __future__ import annotations

import torch

from bench import rundir
from bench.bn import unavailable_reason
from bench.errors import OneLineParser, cli
from bench.run.dist import resolve_device

SYNC_ON_CPU = "one process only: nn.SyncBatchNorm synchronises CUDA tensors only"


def availability(device: torch.device) -> list[dict[str, str]]:
    """Per variant: name, statistics ('local', 'ranks', or 'example': gn's, each example's own),
    description, and whether it runs.

    >>> rows = availability(torch.device("cpu"))
    >>> [r["variant"] for r in rows] == list(rundir.VARIANTS), rows[1]["runs"]
    (True, 'yes')
    """
    rows = []
    for variant in rundir.VARIANTS:
        why = unavailable_reason(variant, device)
        runs = "yes" if why is None else f"no: {why}"
        if runs == "yes" and variant == "sync" and device.type != "cuda":
            runs = SYNC_ON_CPU
        rows.append({"variant": variant,
                     "statistics": "ranks" if variant in rundir.SYNCHRONISING
                     else "example" if variant in rundir.BATCH_FREE else "local",
                     "implementation": rundir.VARIANT_NAMES[variant], "runs": runs})
    return rows


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="bench.variants", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="the device to check (auto: CUDA when visible, else CPU)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli("bench.variants", lambda: _run(args.device))


def _run(requested: str) -> int:
    device = resolve_device(requested, 0)
    rows = availability(device)
    width = max(len(r["variant"]) for r in rows) + 2
    impl = max(len(r["implementation"]) for r in rows) + 2
    print(f"{'variant':<{width}}{'statistics':<12}{'implementation':<{impl}}runs on {device.type}")
    for r in rows:
        print(f"{r['variant']:<{width}}{r['statistics']:<12}{r['implementation']:<{impl}}{r['runs']}")
    return 0
