"""python -m bench.compat on CPU: the real variants, the fused ones, planted faults, bad input.

Every cell that starts processes runs in ONE child Python started with TRITON_INTERPRET=1
(tests/interpreted.py), so that the fused variants' Triton kernels can run in the interpreter and
one fork server serves every cell; the child hands back the rows and the tests assert on them.
It runs every case a CPU can run for scratch, nn, sync and scratch-sync, synchronising variants on
two gloo ranks, except the two compile cases: each compiles for 15-60 s on a 2-core machine, too
long for the suite (docs/compatibility.md's full run covers them). The fused variants run in a
reduced form, at a tiny input: the interpreter takes about 2.5 minutes for all their cases on 2
cores even at 4x4x4x4. Then the planted faults (tests/compat_fakes.py), each against its case.

Expected statuses come from what each layer is, stated case by case below, not from a run.
"""
from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench import rundir
from bench.bn import fused
from bench.tools.compatmatrix import build as compat
from bench.tools.compatmatrix.harness import SHAPE, VariantSpec, spec_for, unavailable
from tests.compat_fakes import FAKES
from tests.interpreted import run_interpreted

RUN_CASES = [c for c in rundir.COMPAT_CASES if c not in ("compile", "compile-fullgraph")]
CUDA_ONLY_SYNC = "synchronises CUDA tensors only"
# What each real variant must show on CPU, case by case (cases left out: pass).
EXPECTED = {
    # textbook BN: the mean of an empty batch is 0/0, and it is folded into the running statistics
    "scratch": {"cuda-graph": "n/a", "uneven-batches": "n/a", "skipped-call": "n/a", "empty-rank": "fail"},
    # converting swaps a BatchNorm2d subclass for a bare SyncBatchNorm (pytorch/pytorch#187298)
    "nn": {"cuda-graph": "n/a", "uneven-batches": "n/a", "skipped-call": "n/a", "convert-subclass": "fail"},
    "scratch-sync": {"cuda-graph": "n/a"},
    # nn.SyncBatchNorm cannot synchronise CPU tensors; eval, conversion and one process need no sync
    "sync": {**{c: "n/a" for c in RUN_CASES if c not in ("eval-no-collective", "no-process-group")},
             "convert-subclass": "fail"},
    # group norm against a float64 group norm; no running statistics, no collectives, not a batch norm
    "gn": {c: "n/a" for c in ("cuda-graph", "uneven-batches", "skipped-call", "eval-no-collective",
                              "convert-subclass")},
}
# bench/bn/fused/__init__.py's contract: float32 and bfloat16 only; an empty rank contributes count 0 and
# still joins both collectives. fp32 of the local layer, the cross-rank one with an empty rank.
FUSED = {("fused", "fp32"): "pass", ("fused", "fp16-autocast"): "fail", ("fused-sync", "empty-rank"): "pass"}
FUSED_SHAPE = (2, 3, 3, 3)
PLANTED = [  # (fake, case, status, words the detail must hold)
    ("eval-syncing", "eval-no-collective", "fail", "all_reduce x1"),
    ("empty-rank-stale", "empty-rank", "fail", "rank 0: running_mean differs"),
    ("empty-rank-stale", "uneven-batches", "pass", "global statistics"),  # its one fault is the empty rank
    ("contiguous-output", "channels-last", "fail", "not channels_last"),
    ("unsynced", "uneven-batches", "fail", "differs from float64 batch norm"),
    ("unsynced", "skipped-call", "fail", "completed although rank 1 never made it"),
    ("noisy", "deterministic", "fail", "differs between two identical runs"),
    ("needs-group", "no-process-group", "fail", "process group"),
    ("low-precision-stats", "fp32", "pass", "running_var"),  # its one fault is low-precision input
    ("low-precision-stats", "bf16-autocast", "fail", "differs from float64 batch norm"),
    ("graph-breaking", "compile-fullgraph", "fail", "Unsupported: Call to `torch._dynamo.graph_break()`"),
    # a rank that dies without a result: its exit code and the last line it printed
    ("exiting", "fp32", "fail", "exited with code 3 without a result: goodbye from the layer"),
]


HANG_SCALE = 0.05  # fp32's own 60 s limit becomes 3 s


def run_tool(folder: Path, *args: str, extra=()) -> tuple[int, pd.DataFrame | None]:
    out = folder / "compat.csv"
    rc = compat.main(["--device", "cpu", "--out", str(out), *args], extra_variants=extra)
    return rc, (pd.read_csv(out, keep_default_na=False, na_values={"step_time_ratio": [""]})
                if out.is_file() else None)


def fused_spec(name: str) -> VariantSpec:
    """bench.rundir's fused variants where they are registered, the layer itself until then."""
    if name in rundir.VARIANTS:
        return spec_for(name)
    sync = name == "fused-sync"
    return VariantSpec(name, functools.partial(fused.FusedBatchNorm, sync=sync), sync)


def child_cells() -> dict:
    """Runs in the child (TRITON_INTERPRET=1): every cell the tests below look at."""
    with tempfile.TemporaryDirectory() as tmp:
        matrix = run_tool(Path(tmp), "--variants", ",".join(EXPECTED), "--cases", ",".join(RUN_CASES),
                          "--reps", "3")
        hang = run_tool(Path(tmp), "--variants", "hanging", "--cases", "fp32", "--time-limit-scale",
                        str(HANG_SCALE), extra=[FAKES["hanging"]])
    run = functools.partial(compat.run_matrix, device="cpu", backend="gloo", reps=0, out=None)
    fused_rows = [r for (v, c) in FUSED for r in run([fused_spec(v)], [c], scale=3.0, shape=FUSED_SHAPE)]
    planted = [r for f, c, *_ in PLANTED for r in run([FAKES[f]], [c], scale=1.0, shape=SHAPE)]
    return {"matrix": matrix, "hang": hang, "fused": pd.DataFrame(fused_rows), "planted": pd.DataFrame(planted)}


@pytest.fixture(scope="module")
def cells() -> dict:
    return run_interpreted("tests.test_compatmatrix:child_cells", timeout_s=900)


@pytest.fixture(scope="module")
def matrix(cells) -> pd.DataFrame:
    rc, rows = cells["matrix"]
    assert rc == 0
    return rows


def cell(rows: pd.DataFrame, variant: str, case: str) -> pd.Series:
    match = rows[(rows["variant"] == variant) & (rows["case"] == case)]
    assert len(match) == 1, (variant, case)
    return match.iloc[0]


def test_the_case_list_is_the_one_in_rundir():
    assert list(compat.CASES) == list(rundir.COMPAT_CASES)
    assert set(compat.SPEED_CASES) < set(compat.CASES)


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_each_real_variant_survives_what_it_should_on_cpu(matrix, variant):
    for case in RUN_CASES:
        row = cell(matrix, variant, case)
        assert row["status"] == EXPECTED[variant].get(case, "pass"), (variant, case, row["detail"])


def test_cells_say_why_they_are_not_applicable_or_failed(matrix):
    assert CUDA_ONLY_SYNC in cell(matrix, "sync", "fp32")["detail"]
    assert cell(matrix, "nn", "cuda-graph")["detail"] == "CUDA graphs need a CUDA device"
    assert "non-finite" in cell(matrix, "scratch", "empty-rank")["detail"]
    assert "became SyncBatchNorm" in cell(matrix, "nn", "convert-subclass")["detail"]
    # the scratch BN keeps the biased variance, nn the unbiased one: the check tells them apart
    assert "biased running_var" in cell(matrix, "scratch", "fp32")["detail"]
    assert "unbiased running_var" in cell(matrix, "nn", "fp32")["detail"]
    # rank 0 waits for a call rank 1 never makes and gets gloo's timeout within the group's 5 s
    skipped = cell(matrix, "scratch-sync", "skipped-call")
    assert "rank 0 raised after" in skipped["detail"] and "Timed out" in skipped["detail"]
    assert skipped["case_s"] < 40


def test_rows_record_torch_device_backend_and_ranks(matrix):
    assert set(matrix["torch"]) == {torch.__version__} and set(matrix["device"]) == {"cpu"}
    assert list(matrix.columns) == list(rundir.COMPAT_COLUMNS)
    ran = matrix[matrix["ranks"] > 0]
    assert set(ran[ran["ranks"] == 2]["backend"]) == {"gloo"}
    assert set(ran[ran["ranks"] == 1]["backend"]) == {"none"}
    # two ranks for a synchronising variant, one for a local one, two for eval whatever the variant
    assert cell(matrix, "scratch-sync", "fp32")["ranks"] == 2 and cell(matrix, "nn", "fp32")["ranks"] == 1
    assert cell(matrix, "nn", "eval-no-collective")["ranks"] == 2


def test_speed_cases_record_a_step_time_ratio_and_the_others_none(matrix):
    passed = matrix[matrix["status"] == "pass"]
    speed = passed["case"].isin(compat.SPEED_CASES)
    assert speed.sum() >= 9  # autocast x2 and channels_last for scratch, nn, scratch-sync
    assert all(0 < r < 100 for r in passed[speed]["step_time_ratio"])
    assert set(passed[speed]["step_time_noisy"]) <= {"True", "False"}  # read as text: keep_default_na=False
    untimed = matrix[~matrix["case"].isin(compat.SPEED_CASES)]
    assert all(math.isnan(r) for r in untimed["step_time_ratio"]) and set(untimed["step_time_noisy"]) == {""}


def test_each_planted_fault_fails_its_case(cells):
    for fake, case, status, words in PLANTED:
        row = cell(cells["planted"], fake, case)
        assert row["status"] == status and words in row["detail"], (fake, case, row["detail"])


def test_a_hanging_layer_is_a_timeout_within_the_cases_limit(cells):
    rc, rows = cells["hang"]
    row = cell(rows, "hanging", "fp32")
    limit = compat.CASES["fp32"].limit_s * HANG_SCALE
    assert rc == 0 and row["status"] == "timeout" and row["detail"] == f"no result within {limit:.0f} s"
    assert limit <= row["case_s"] < limit + 15  # killed, not waited for


@pytest.mark.parametrize("variant, case", list(FUSED))
def test_fused_cells_under_the_interpreter(cells, variant, case):
    row = cell(cells["fused"], variant, case)
    assert row["status"] == FUSED[(variant, case)], row["detail"]
    assert row["ranks"] == (2 if variant == "fused-sync" else 1)
    if row["status"] == "fail":
        assert "float32 or bfloat16" in row["detail"]  # names the dtypes the kernels take


def test_without_the_interpreter_fused_is_not_applicable_with_its_reason():
    """This pytest process did not start with TRITON_INTERPRET=1. An instance made without
    __init__ (which would import torch._dynamo) is enough for the type check."""
    layer = fused.FusedBatchNorm.__new__(fused.FusedBatchNorm)
    reason = unavailable(layer, torch.device("cpu"), 1, synced_training=True)
    assert reason == fused.unavailable_reason("cpu") and "TRITON_INTERPRET" in reason


@pytest.mark.parametrize("args, words", [
    (["--variants", "scratch,nope"], "unknown variant 'nope'; choose from scratch, nn"),
    (["--cases", "fp32,fp64"], "unknown case 'fp64'; choose from fp32, bf16-autocast"),
    (["--shape", "8,1,4,4"], "--shape '8,1,4,4': give N,C,H,W"),
    (["--backend", "nccl"], "--backend nccl needs a GPU per rank"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    rc, rows = run_tool(tmp_path, *args)  # refused before any process starts
    err = capsys.readouterr().err
    assert rc == 2 and rows is None
    assert err.startswith("bench.compat: error: ") and words in err and err.count("\n") == 1
