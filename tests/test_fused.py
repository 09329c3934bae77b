"""FusedBatchNorm (``fused``) against float64 batch norm, its kernels run by Triton's interpreter.

The kernels run on CPU tensors under ``TRITON_INTERPRET=1``, which only takes effect in a process
that has it in its environment before triton is first imported; tests/interpreted.py explains
why that means a child process. All the interpreted cases of this module run in ONE child (the
``interpreted`` fixture): starting Python and torch is the costly part. Each test then asserts on
its own case. The tests at the end need no interpreter and run in the pytest process.

Expected values come from ``reference_batch_norm`` (tests/syncnorm_ref.py): batch norm written out
in float64 and differentiated by autograd; nothing in bench.bn computes them. Input sizes are tiny
but chosen so that, with the interpreter's blocks for test-sized inputs (bench.bn.fused.tuning),
every channel spans several tiles and two partial results, and 5 channels span two channel blocks: a mistake
in the masking or in either level of Chan's merge changes the numbers.
"""

from __future__ import annotations

import importlib
import sys

import pytest
import torch
from torch import nn

from bench.bn.fused import CPU_HINT, FusedBatchNorm, unavailable_reason
from tests.dist_helpers import CountCollectives
from tests.interpreted import run_interpreted
from tests.syncnorm_ref import (
    EPS, MOMENTUM, Case, assert_matches_reference, reference_batch_norm, run_steps,
)  # fmt: skip

CASES = {
    "planes": Case(4, (6,), channels=3, spatial=5, steps=3, seed=1),
    "planes-offset-1000": Case(4, (4,), channels=3, spatial=5, steps=1, offset=1e3, seed=2),
    "channels-last": Case(4, (4,), channels=5, spatial=3, steps=2, channels_last=True, seed=3),
    "2d": Case(2, (40,), channels=5, steps=2, seed=4),
    "2d-offset-1000": Case(2, (40,), channels=5, steps=1, offset=1e3, seed=5),
}
# sync=True without a process group must be plain local batch norm without collectives
SYNC_WITHOUT_GROUP = {"2d", "channels-last"}
AUTOCAST = Case(4, (4,), channels=3, spatial=5, offset=8.0, seed=6)
EVAL = Case(4, (3,), channels=3, spatial=5, steps=1, seed=7)


def make_fused(case: Case, sync: bool = False, process_group=None) -> FusedBatchNorm:
    module = FusedBatchNorm(case.channels, case.dims, EPS, MOMENTUM, process_group, sync=sync)
    weight, bias = case.affine()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return module


def autocast_step(case: Case) -> dict:
    """One bfloat16 step under CPU autocast, and the dtype a float32 input gets there."""
    x, grad_y = case.global_batch(0)
    x_bf16 = x.bfloat16().requires_grad_()
    module = FusedBatchNorm(case.channels, case.dims)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x_bf16)
        y_from_float32 = FusedBatchNorm(case.channels, case.dims)(x)
    (y * grad_y.bfloat16()).sum().backward()
    return {"y": y.detach(), "dx": x_bf16.grad, "dweight": module.weight.grad,
            "dbias": module.bias.grad, "running_mean": module.running_mean,
            "float32_out_dtype": y_from_float32.dtype}  # fmt: skip


def eval_step(case: Case) -> dict:
    """One training step, then forward and backward in eval mode on the next batch."""
    module = make_fused(case)
    with CountCollectives() as counter:
        run_steps(module, case, slice(None), counter)
    module.eval()
    x, grad_y = case.global_batch(1)
    x.requires_grad_()
    (module(x) * grad_y).sum().backward()
    y = module(x.detach())
    return {"y": y, "dx": x.grad, "dweight": module.weight.grad, "dbias": module.bias.grad,
            "running_mean": module.running_mean, "running_var": module.running_var}


def interpreted_cases(cases: dict[str, Case]) -> dict:
    """Runs in the child: every case of this module."""
    train = {}
    for name, case in cases.items():
        with CountCollectives() as counter:
            module = make_fused(case, sync=name in SYNC_WITHOUT_GROUP)
            train[name] = run_steps(module, case, slice(None), counter)
    return {"train": train, "autocast": autocast_step(AUTOCAST), "eval": eval_step(EVAL)}


@pytest.fixture(scope="module")
def interpreted() -> dict:
    pytest.importorskip("triton", reason="the fused kernels need triton")
    return run_interpreted("tests.test_fused:interpreted_cases", CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_training_steps_match_float64_batch_norm(interpreted, name):
    case = CASES[name]
    records = interpreted["train"][name]
    # y, dx, dweight, dbias each step; running statistics after every step
    assert_matches_reference(case, [records], atol=1e-3 if case.offset else 1e-5)
    assert all(step["forward_calls"] == step["backward_calls"] == {} for step in records)
    assert all(step["channels_last"] == case.channels_last for step in records)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.offset])
def test_offset_inputs_defeat_the_naive_variance(name):
    """The offset cases are hard: E[x^2] - E[x]^2 in float32 misses their variance by > 1e-3."""
    case = CASES[name]
    x, _ = case.global_batch(0)
    dims = [0, *range(2, case.dims)]
    naive_var = (x * x).mean(dims) - x.mean(dims) ** 2
    assert (naive_var.double() - x.double().var(dims, correction=0)).abs().max() > 1e-3


def test_bf16_autocast_keeps_statistics_in_float32(interpreted):
    got = interpreted["autocast"]
    x, grad_y = AUTOCAST.global_batch(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected_dtype = nn.BatchNorm2d(AUTOCAST.channels)(x.bfloat16()).dtype
        expected_float32_dtype = nn.BatchNorm2d(AUTOCAST.channels)(x).dtype
    assert got["y"].dtype == got["dx"].dtype == expected_dtype == torch.bfloat16
    assert got["float32_out_dtype"] == expected_float32_dtype == torch.float32
    assert got["dweight"].dtype == got["running_mean"].dtype == torch.float32
    ones, zeros = torch.ones(AUTOCAST.channels), torch.zeros(AUTOCAST.channels)
    ref = reference_batch_norm(x.bfloat16(), ones, zeros, grad_y.bfloat16())
    # bfloat16 statistics would be off by ~0.03 at an offset of 8; float32 ones by ~1e-6
    torch.testing.assert_close(got["running_mean"].double(), MOMENTUM * ref["mean"],
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(got["dweight"].double(), ref["dweight"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(got["dbias"].double(), ref["dbias"], atol=1e-4, rtol=1e-5)
    # outputs are rounded to bfloat16 (8 significant bits) once
    torch.testing.assert_close(got["y"].double(), ref["y"], atol=0.02, rtol=0.01)
    torch.testing.assert_close(got["dx"].double(), ref["dx"], atol=0.02, rtol=0.01)


def test_eval_normalises_with_running_statistics(interpreted):
    got = interpreted["eval"]
    x0, _ = EVAL.global_batch(0)
    ref = reference_batch_norm(x0, *EVAL.affine(), torch.zeros_like(x0))
    running_mean = MOMENTUM * ref["mean"]
    running_var = (1 - MOMENTUM) + MOMENTUM * ref["var_unbiased"]
    # eval leaves the running statistics where the training step put them
    torch.testing.assert_close(got["running_mean"].double(), running_mean)
    torch.testing.assert_close(got["running_var"].double(), running_var)
    x1, grad_y = (t.double() for t in EVAL.global_batch(1))
    view = (1, -1, 1, 1)
    weight, bias = (t.double().view(view) for t in EVAL.affine())
    invstd = 1 / torch.sqrt(running_var.view(view) + EPS)
    xhat = (x1 - running_mean.view(view)) * invstd
    close = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["y"].double(), xhat * weight + bias, **close)
    # statistics are constants in eval: dx has no mean terms
    torch.testing.assert_close(got["dx"].double(), grad_y * weight * invstd, **close)
    torch.testing.assert_close(got["dweight"].double(), (grad_y * xhat).sum((0, 2, 3)), **close)
    torch.testing.assert_close(got["dbias"].double(), grad_y.sum((0, 2, 3)), **close)


# ---- no interpreter needed: these run in the pytest process ----

def _triton_compiled_here() -> bool:
    triton = pytest.importorskip("triton", reason="the fused kernels need triton")
    import triton.language as tl

    return isinstance(tl.zeros, triton.runtime.JITFunction)


def test_rejects_dtypes_its_kernels_do_not_take():  # dims and channels: test_scratch_sync_module.py
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        FusedBatchNorm(3, 2)(torch.randn(2, 3, dtype=torch.float64))


def test_state_is_the_four_tensors_of_every_variant():
    module = FusedBatchNorm(3, 4, sync=True)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "weight": (3,), "bias": (3,), "running_mean": (3,), "running_var": (3,)}


def test_cpu_without_interpreter_says_what_to_set(monkeypatch):
    if not _triton_compiled_here():
        pytest.skip("this pytest process imported triton under TRITON_INTERPRET=1")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert unavailable_reason(torch.device("cpu")) == CPU_HINT
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        FusedBatchNorm(3, 2)(torch.randn(4, 3))
    # too late: triton's own kernels were decorated for compiling when it was imported
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "before Python starts" in unavailable_reason(torch.device("cpu"))


def test_missing_triton_is_a_reason_not_a_crash(monkeypatch):
    import torch._dynamo  # noqa: F401 - imported with triton present, as it will stay cached

    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    monkeypatch.delitem(sys.modules, "bench.bn.fused")
    fused = importlib.import_module("bench.bn.fused")  # importing must not need triton
    reason = fused.unavailable_reason(torch.device("cuda"))
    assert reason is not None and reason.startswith("triton is not importable")
    with pytest.raises(RuntimeError, match="triton is not importable"):
        fused.FusedBatchNorm(3, 2)(torch.randn(4, 3))
