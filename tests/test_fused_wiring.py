"""`fused` and `fused-sync` in the suite: refused with the reason where their kernels cannot run
(a usage error, exit 2), listed by bench.variants, skipped with the reason by sweeps and micro,
and measured by bench.micro under the interpreter.

The pytest process imports triton without TRITON_INTERPRET, so here the fused variants cannot run
on CPU; the reason they give is the one bench.bn.fused.CPU_HINT says. A test that needs the
kernels to run does so in a child started with the variable (tests/interpreted.py).
"""
from __future__ import annotations

import importlib
import sys

import pytest
import torch

from bench import rundir
from bench.errors import UsageError
from bench.run.config import from_argv
from bench.run.plan import resolve
from bench.tools import bn_microbench as micro, variant_list as variants
from launch import sweep_runner as sweep
from tests.interpreted import run_interpreted

triton = pytest.importorskip("triton", reason="the fused kernels need triton")
CPU = torch.device("cpu")


@pytest.fixture
def no_interpreter():
    """The CPU reason this process gives (the interpreter's hint), or a skip where it runs them."""
    from bench.bn.fused import CPU_HINT, unavailable_reason

    if unavailable_reason(CPU) is None:
        pytest.skip("this pytest process runs Triton's interpreter: the fused variants run on CPU")
    assert unavailable_reason(CPU) == CPU_HINT
    return CPU_HINT


@pytest.fixture
def without_triton(monkeypatch):
    """`import triton` raises ImportError from here on (torch._dynamo stays loaded as it was)."""
    import torch._dynamo  # noqa: F401 - imported with triton present, as it stays cached

    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)


@pytest.mark.parametrize("variant, world", [("fused", 1), ("fused-sync", 2)])
def test_train_refuses_fused_on_cpu_without_the_interpreter(no_interpreter, tmp_path, variant, world):
    cfg = from_argv(["--variant", variant, "--out", str(tmp_path / "runs"), "--batch-size", "64"])
    with pytest.raises(UsageError) as err:
        resolve(cfg, world, CPU)
    assert str(err.value) == f"--variant {variant} cannot run on cpu: {no_interpreter}"
    assert not list(tmp_path.glob("runs/*"))  # refused before a run directory exists


def test_train_cli_says_it_in_one_line_with_exit_2(no_interpreter, tmp_path, capsys):
    from bench.run.runner import main

    assert main(["--variant", "fused", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"bench.train: error: --variant fused cannot run on cpu: {no_interpreter}\n"


def test_without_triton_the_variants_are_listed_unavailable_not_a_crash(without_triton, tmp_path, capsys):
    fused = importlib.import_module("bench.bn.fused")  # importing it never needs triton
    assert fused.unavailable_reason(CPU).startswith("triton is not importable")
    assert variants.main(["--device", "cpu"]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert list(table) == list(rundir.VARIANTS)
    for v in rundir.VARIANTS:
        unavailable = "no: triton is not importable" in table[v]
        assert unavailable == (v in rundir.TRITON_VARIANTS), table[v]
    with pytest.raises(UsageError, match="triton is not importable"):
        resolve(from_argv(["--variant", "fused", "--out", str(tmp_path)]), 1, CPU)


def test_variants_lists_the_cpu_hint_for_the_triton_variants(no_interpreter):
    rows = {r["variant"]: r for r in variants.availability(CPU)}
    assert rows["fused"]["runs"] == rows["fused-sync"]["runs"] == f"no: {no_interpreter}"
    assert (rows["fused"]["statistics"], rows["fused-sync"]["statistics"]) == ("local", "ranks")
    assert rows["nn"]["runs"] == rows["scratch-sync"]["runs"] == "yes"


def test_micro_skips_fused_with_the_reason(no_interpreter, tmp_path, capsys):
    out = tmp_path / "micro.csv"
    assert micro.main(["--device", "cpu", "--batch", "4", "--shapes", "lenet.bn4", "--dtypes", "float32",
                       "--variants", "nn,fused", "--no-compile", "--reps", "20", "--out", str(out)]) == 0
    assert f"skipped fused: {no_interpreter}" in capsys.readouterr().out
    assert "fused" not in out.read_text()
    assert micro.main(["--device", "cpu", "--variants", "fused", "--reps", "20", "--out", ""]) == 2
    assert "none of --variants fused can run here" in capsys.readouterr().err


def micro_rows() -> list[dict]:
    """In a child under the interpreter: bench.micro's rows for nn and fused on one tiny shape."""
    return micro.run(micro.cases(["lenet.bn4"], [4], ["contiguous"]), ["bfloat16"], ("nn", "fused"), CPU,
                     compiled_modes=(False,), reps=2, warmup=1, out=None)


def test_micro_measures_fused_under_the_interpreter():
    rows = run_interpreted("tests.test_fused_wiring:micro_rows", timeout_s=300)
    keys = [(r["dtype"], r["variant"], r["op"]) for r in rows]
    assert keys == [("bfloat16", "copy", "copy"), ("bfloat16", "nn", "forward"),
                    ("bfloat16", "nn", "forward_backward"), ("bfloat16", "fused", "forward"),
                    ("bfloat16", "fused", "forward_backward")]
    for r in rows:
        copy = next(c for c in rows if c["dtype"] == r["dtype"] and c["variant"] == "copy")
        assert r["reps"] == 2 and r["time_us_median"] > 0
        assert r["ratio_to_copy"] == pytest.approx(r["time_us_median"] / copy["time_us_median"])


def test_sweep_skips_cells_of_a_variant_that_cannot_run(no_interpreter, tmp_path, capsys):
    args = ["--world-sizes", "1", "2", "--per-rank-batch-sizes", "32", "--out", str(tmp_path / "runs"), "--dry-run"]
    assert sweep.main(["--variants", "nn", "fused", "fused-sync", *args]) == 0
    out = capsys.readouterr().out
    for v in rundir.TRITON_VARIANTS:
        assert f"launch.sweep: skipping every {v} cell: {no_interpreter}" in out
    cells = [line.split()[1] for line in out.splitlines() if line.startswith("[")]
    assert cells == ["lenet-nn-ws1-b32-s0", "lenet-nn-ws2-b64-s0"]
    assert sweep.main(["--variants", "fused", *args]) == 2
    assert f"no cell of this sweep can run here: --variants fused: {no_interpreter}" in capsys.readouterr().err
