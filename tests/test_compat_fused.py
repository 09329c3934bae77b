"""The fused variants in the compatibility matrix, in a reduced form.

On CPU their Triton kernels run only in Triton's interpreter, which must be switched on before
triton is first imported (tests/interpreted.py): one child Python started with TRITON_INTERPRET=1
runs the cells below and hands their rows back. The interpreter is slow (the full list of cases
for both variants takes about 2.5 minutes on 2 cores even at a 4x4x4x4 input), so the suite runs a
few cases at a tiny input: float32 training of the local one, the cross-rank one on two ranks one
of which holds no samples (its statistics gathered, combined and moved on both ranks), and float16,
which the kernels do not take. docs/compatibility.md has the full run.

Expected statuses follow bench/bn/fused.py's own contract: float32 and bfloat16 inputs only, an
empty rank contributes count 0 and still joins both collectives.
"""
from __future__ import annotations

import functools

import pytest

from bench import rundir
from bench.bn import fused
from bench.tools import compat
from bench.tools.compat_checks import VariantSpec, spec_for
from tests.interpreted import run_interpreted

CASES = {"fused": ["fp32", "fp16-autocast"], "fused-sync": ["empty-rank"]}
SHAPE = (2, 3, 3, 3)


def fused_spec(name: str) -> VariantSpec:
    """bench.rundir's fused variants where they are registered, the layer itself until then."""
    if name in rundir.VARIANTS:
        return spec_for(name)
    sync = name == "fused-sync"
    return VariantSpec(name, functools.partial(fused.FusedBatchNorm, sync=sync), sync)


def interpreted_rows(cases: dict[str, list[str]], shape: tuple[int, ...]) -> list[dict]:
    """Runs in the child: the matrix rows of `cases` (time limits tripled for the interpreter)."""
    return [row for name, names in cases.items()
            for row in compat.run_matrix([fused_spec(name)], names, "cpu", "gloo", reps=0, scale=3.0,
                                         shape=shape, out=None)]


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], dict]:
    found = run_interpreted("tests.test_compat_fused:interpreted_rows", CASES, SHAPE, timeout_s=400)
    return {(r["variant"], r["case"]): r for r in found}


@pytest.mark.parametrize("variant, case, ranks", [("fused", "fp32", 1), ("fused-sync", "empty-rank", 2)])
def test_fused_cells_pass_under_the_interpreter(rows, variant, case, ranks):
    row = rows[(variant, case)]
    assert (row["status"], row["ranks"]) == ("pass", ranks), row["detail"]


def test_float16_is_a_failure_naming_the_dtypes_the_kernels_take(rows):
    row = rows[("fused", "fp16-autocast")]
    assert row["status"] == "fail" and "float32 or bfloat16" in row["detail"]


def test_without_the_interpreter_a_fused_cell_is_not_applicable_with_the_reason():
    """This pytest process did not start with TRITON_INTERPRET=1: no process is started, and the
    cell carries fused.unavailable_reason's line."""
    for name in CASES:
        planned = compat.plan_cell(fused_spec(name), "fp32", "cpu", "gloo", 0, 1.0)
        assert planned == fused.unavailable_reason("cpu") and planned
