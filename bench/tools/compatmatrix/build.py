"""What each BN variant survives: a compatibility matrix of the failures users report.

    python -m bench.compat                                   # every variant, every case
    python -m bench.compat --variants scratch-sync --cases uneven-batches,empty-rank --out compat.csv

Every variant (bench.rundir.VARIANTS) goes through a fixed list of cases (bench.rundir.COMPAT_CASES:
what passing means, and the pytorch/pytorch issues behind each). A case is a small real check run
in child processes with its own time limit (bench.tools.compatmatrix.childprocs): a synchronising variant on
two ranks (gloo on CPU; NCCL when there is a GPU per rank, else gloo holding CUDA tensors), a local
one in one process. Each cell is pass, fail (the first line of the error, or the measured
difference), n/a (the reason) or timeout. Local variants: `uneven-batches` and `skipped-call` are
n/a (they share nothing across ranks); `empty-rank` checks an empty batch in one process.

For channels-last, the autocast cases and both compile cases the cell also records
`step_time_ratio`: the median forward+backward step time over that of the same variant's float32
contiguous eager layer on the same shape, timed alternately in the same processes (`--reps`), and
`step_time_noisy` when either set of times has IQR / median above bench.rundir's noise threshold.

Writes `--out` (bench.rundir.COMPAT_COLUMNS; rewritten after every cell, so an interrupted run
keeps its rows) and prints the matrix. docs/compatibility.md shows one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bench import rundir
from bench.argcheck import non_negative_int, out_file, positive_float
from bench.errors import OneLineParser, UsageError, cli
from bench.run.dist import resolve_device
from bench.tools.compatmatrix import cases_numeric as num
from bench.tools.compatmatrix import cases_ranks as ranked
from bench.tools.compatmatrix.harness import SHAPE, Ctx, VariantSpec, spec_for, unavailable
from bench.tools.compatmatrix.counting import Speed
from bench.tools.compatmatrix.childprocs import Cell, Outcome, run_cell

LOCAL_NA = "local BN shares nothing across ranks: no global statistics to compare"
NO_COLLECTIVE = "local BN issues no collective: a rank skipping a call leaves nothing waiting"


@dataclass(frozen=True)
class Case:
    """How a case runs: `ranks` is "variant" (2 when the variant synchronises, else 1), "two"
    (always, process group up) or "one" (one process, no process group)."""

    fn: Callable[[Ctx], tuple[str, Speed | None]]
    ranks: str
    limit_s: float  # the case's own time limit, before --time-limit-scale
    local_na: str | None = None  # n/a reason for a local variant
    deciding: tuple[int, ...] | None = None
    clean_death_s: float | None = None  # see childprocs.Cell
    pg_timeout_s: float | None = None  # None: the time limit (a hang then shows as timeout)
    synced: bool = True  # trains with statistics shared across ranks (nn.SyncBatchNorm: CUDA only)
    needs_cuda: str | None = None  # n/a reason on other devices


CASES: dict[str, Case] = {
    "fp32": Case(num.fp32, "variant", 60),
    "bf16-autocast": Case(num.bf16_autocast, "variant", 60),
    "fp16-autocast": Case(num.fp16_autocast, "variant", 60),
    "channels-last": Case(num.channels_last, "variant", 60),
    "compile": Case(num.compile_default, "variant", 300),
    "compile-fullgraph": Case(num.compile_fullgraph, "variant", 300),
    "cuda-graph": Case(num.cuda_graph, "variant", 120, needs_cuda=num.NEEDS_CUDA),
    "eval-no-collective": Case(ranked.eval_no_collective, "two", 60, synced=False),
    "uneven-batches": Case(ranked.uneven_batches, "variant", 60, local_na=LOCAL_NA),
    "empty-rank": Case(ranked.empty_rank, "variant", 60),
    "skipped-call": Case(ranked.skipped_call, "two", 60, local_na=NO_COLLECTIVE, deciding=(0,),
                         clean_death_s=ranked.SKIP_PG_TIMEOUT_S + ranked.SKIP_GRACE_S,
                         pg_timeout_s=ranked.SKIP_PG_TIMEOUT_S),
    "convert-subclass": Case(ranked.convert_subclass, "one", 60, synced=False),
    "no-process-group": Case(num.no_process_group, "one", 60),
    "deterministic": Case(num.deterministic, "variant", 60),
}
SPEED_CASES = ("bf16-autocast", "fp16-autocast", "channels-last", "compile", "compile-fullgraph")


def resolve_backend(requested: str, device: str) -> str:
    """The process group's backend for cells of two ranks: NCCL needs a GPU per rank."""
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if requested == "auto":
        return "nccl" if gpus >= 2 else "gloo"
    if requested == "nccl" and gpus < 2:
        raise UsageError(f"--backend nccl needs a GPU per rank (2), found {gpus}: use --backend gloo")
    return requested


def plan_cell(spec: VariantSpec, name: str, device: str, backend: str, reps: int, scale: float,
              shape: tuple[int, int, int, int] = SHAPE) -> Cell | str:
    """The cell to run, or the n/a reason when the case cannot run for this variant here (decided
    without starting processes; the ranks check the layer again)."""
    case = CASES[name]
    if case.local_na and not spec.synchronising:
        return case.local_na
    if case.needs_cuda and device != "cuda":
        return case.needs_cuda
    ranks = {"one": 1, "two": 2, "variant": 2 if spec.synchronising else 1}[case.ranks]
    reason = unavailable(spec.build(shape[1], 4), torch.device(device), ranks, case.synced)
    if reason is not None:
        return reason
    limit = case.limit_s * scale
    return Cell(spec, case.fn, ranks, device, backend, case.pg_timeout_s or limit, limit,
                reps if name in SPEED_CASES else 0, shape, case.deciding, case.clean_death_s)


def run_matrix(specs: list[VariantSpec], cases: list[str], device: str, backend: str, reps: int,
               scale: float, shape: tuple[int, int, int, int], out: str | None) -> list[dict]:
    """Every (variant, case) cell in turn; one CSV row each, printed as it comes."""
    rows = []
    for spec in specs:
        for name in cases:
            cell = plan_cell(spec, name, device, backend, reps, scale, shape)
            outcome = Outcome("n/a", cell, None, 0.0) if isinstance(cell, str) else run_cell(cell)
            ranks = 0 if isinstance(cell, str) else cell.ranks
            speed = outcome.speed
            rows.append({"variant": spec.name, "case": name, "status": outcome.status,
                         "detail": outcome.detail, "step_time_ratio": speed and speed.ratio,
                         "step_time_noisy": speed and speed.noisy, "case_s": round(outcome.case_s, 2),
                         "ranks": ranks, "device": device, "backend": backend if ranks > 1 else "none",
                         "torch": torch.__version__})
            ratio = "" if speed is None else f" x{speed.ratio:.2f}{' (noisy)' if speed.noisy else ''}"
            print(f"{spec.name:<14} {name:<19} {outcome.status:<8}{outcome.case_s:6.1f} s{ratio}  "
                  f"{outcome.detail}", flush=True)
            if out:
                rundir.write_csv(out, rundir.COMPAT_COLUMNS, rows)
    return rows


def matrix_text(rows: list[dict]) -> str:
    """Cases down, variants across, statuses in the cells."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    status = {(r["case"], r["variant"]): r["status"] for r in rows}
    width = max(9, *(len(v) + 2 for v in variants))
    lines = [f"{'case':<20}" + "".join(f"{v:<{width}}" for v in variants)]
    for case in dict.fromkeys(r["case"] for r in rows):
        lines.append(f"{case:<20}" + "".join(f"{status.get((case, v), ''):<{width}}" for v in variants))
    return "\n".join(lines)


def _names(text: str | None, known: list[str], what: str) -> list[str]:
    if text is None:
        return known
    names = [t for t in text.split(",") if t]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"choose from {', '.join(known)}")
    return names


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """'8,8,12,12' -> (8, 8, 12, 12); C >= 2 and H·W >= 2, so channels_last differs from contiguous."""
    try:
        shape = tuple(int(t) for t in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1 or shape[1] < 2 or shape[2] * shape[3] < 2:
        raise UsageError(f"--shape {text!r}: give N,C,H,W, positive, with C >= 2 and H*W >= 2")
    return shape


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="bench.compat", description=__doc__.splitlines()[0])
    p.add_argument("--variants", help="comma-separated BN variants (default all: "
                                      f"{','.join(rundir.VARIANTS)})")
    p.add_argument("--cases", help=f"comma-separated cases (default all: {','.join(CASES)})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the layers run; auto: CUDA when visible, else CPU")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="process-group backend of two-rank cells; auto: NCCL with a GPU per rank, "
                        "else gloo")
    p.add_argument("--out", default=rundir.COMPAT_CSV, type=out_file,
                   help=f"CSV written (default {rundir.COMPAT_CSV}); '' writes none")
    p.add_argument("--shape", default=",".join(map(str, SHAPE)),
                   help=f"each rank's input N,C,H,W (default {','.join(map(str, SHAPE))}); "
                        "also the timed shape")
    p.add_argument("--reps", type=non_negative_int, default=20,
                   help="timed steps for the step-time ratios (default 20; 0: no timing)")
    p.add_argument("--time-limit-scale", type=positive_float, default=1.0,
                   help="multiply every case's own time limit (default 1; more on a slow machine)")
    return p


def main(argv: list[str] | None = None, extra_variants: list[VariantSpec] = ()) -> int:
    """The command; `extra_variants` adds layers known only to the caller (tests plant faulty ones)."""
    args = build_parser().parse_args(argv)
    return cli("bench.compat", lambda: _run(args, {s.name: s for s in extra_variants}))


def _run(args, extra: dict[str, VariantSpec]) -> int:
    specs = {**{v: spec_for(v) for v in rundir.VARIANTS}, **extra}
    variants = _names(args.variants, list(specs), "variant")
    cases = _names(args.cases, list(CASES), "case")
    if args.reps < 0 or args.time_limit_scale <= 0:
        raise UsageError("--reps must be >= 0 and --time-limit-scale > 0")
    shape = parse_shape(args.shape)
    device = resolve_device(args.device, 0).type
    backend = resolve_backend(args.backend, device)
    print(f"compatibility matrix: torch {torch.__version__}, device {device}, backend {backend} "
          f"(two-rank cells)", flush=True)
    rows = run_matrix([specs[v] for v in variants], cases, device, backend, args.reps,
                      args.time_limit_scale, shape, args.out)
    print(matrix_text(rows))
    if args.out:
        print(f"wrote {args.out}")
    return 0

