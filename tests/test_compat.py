"""python -m bench.compat on CPU: the matrix of the real variants, planted faults, bad input.

One run of the tool (the `matrix` fixture) covers every case that can run on a CPU for scratch,
nn, scratch-sync and sync, synchronising variants on two gloo ranks, except the two compile cases:
each compiles for 15-60 s on a 2-core machine, too long for the suite, and
docs/compatibility.md's full run covers them. The fused variants run in a reduced form in
tests/test_compat_fused.py.

Expected statuses come from what each layer is, stated case by case below, not from a run.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from bench import rundir
from bench.tools import compat
from bench.tools.compat_checks import SHAPE
from tests.compat_fakes import FAKES

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
}


def run_tool(tmp_path, *args: str, extra=()) -> tuple[int, pd.DataFrame | None]:
    out = tmp_path / "compat.csv"
    rc = compat.main(["--device", "cpu", "--out", str(out), *args], extra_variants=extra)
    return rc, (pd.read_csv(out, keep_default_na=False, na_values={"step_time_ratio": [""]})
                if out.is_file() else None)


def cell(rows: pd.DataFrame, variant: str, case: str) -> pd.Series:
    match = rows[(rows["variant"] == variant) & (rows["case"] == case)]
    assert len(match) == 1, (variant, case)
    return match.iloc[0]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> pd.DataFrame:
    rc, rows = run_tool(tmp_path_factory.mktemp("compat"), "--variants", ",".join(EXPECTED),
                        "--cases", ",".join(RUN_CASES), "--reps", "3")
    assert rc == 0
    return rows


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


PLANTED = [  # (fake, case, status, words the detail must hold)
    ("eval-syncing", "eval-no-collective", "fail", "all_reduce x1"),
    ("empty-rank-stale", "empty-rank", "fail", "rank 0: running_mean differs"),
    ("empty-rank-stale", "uneven-batches", "pass", "global statistics"),  # its one fault is the empty rank
    ("contiguous-output", "channels-last", "fail", "not channels_last"),
    ("unsynced", "uneven-batches", "fail", "differs from float64 batch norm"),
    ("unsynced", "skipped-call", "fail", "completed although rank 1 never made it"),
    ("noisy", "deterministic", "fail", "differs between two identical runs"),
    ("needs-group", "no-process-group", "fail", "process group"),
    # a rank that dies without a result: its exit code and the last line it printed
    ("exiting", "fp32", "fail", "exited with code 3 without a result: goodbye from the layer"),
]


def test_each_planted_fault_fails_its_case():
    for fake, case, status, words in PLANTED:
        [row] = compat.run_matrix([FAKES[fake]], [case], "cpu", "gloo", reps=0, scale=1.0, shape=SHAPE,
                                  out=None)
        assert row["status"] == status and words in row["detail"], (fake, case, row["detail"])


def test_a_hanging_layer_is_a_timeout_within_the_cases_limit(tmp_path):
    scale = 0.05  # fp32's own 60 s limit becomes 3 s
    rc, rows = run_tool(tmp_path, "--variants", "hanging", "--cases", "fp32",
                        "--time-limit-scale", str(scale), extra=[FAKES["hanging"]])
    row = cell(rows, "hanging", "fp32")
    limit = compat.CASES["fp32"].limit_s * scale
    assert rc == 0 and row["status"] == "timeout" and row["detail"] == f"no result within {limit:.0f} s"
    assert limit <= row["case_s"] < limit + 15  # killed, not waited for


@pytest.mark.parametrize("args, words", [
    (["--variants", "scratch,nope"], "unknown variant 'nope'; choose from scratch, nn"),
    (["--cases", "fp32,fp64"], "unknown case 'fp64'; choose from fp32, bf16-autocast"),
    (["--shape", "8,1,4,4"], "--shape '8,1,4,4': give N,C,H,W"),
    (["--backend", "nccl"], "--backend nccl needs a GPU per rank"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    rc, rows = run_tool(tmp_path, *args)
    err = capsys.readouterr().err
    assert rc == 2 and rows is None
    assert err.startswith("bench.compat: error: ") and words in err and err.count("\n") == 1
