"""The compatibility matrix's CUDA cells: graph capture and replay, and the synchronising variants on
CUDA tensors. Skipped where no CUDA device is visible (tests/test_compatmatrix.py covers the CPU cells).

On one GPU the two ranks of a synchronising variant share it over gloo, which cannot be captured
in a graph (its collectives run on the host): those cuda-graph cells must then say so; with two GPUs
or more they run over NCCL and must pass.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from bench.tools.compatmatrix import build as compat

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA cells need a CUDA device")
VARIANTS = ["scratch", "nn", "scratch-sync", "sync"]
CASES = ["fp32", "channels-last", "cuda-graph", "eval-no-collective", "empty-rank"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("compat") / "compat.csv"
    assert compat.main(["--device", "cuda", "--variants", ",".join(VARIANTS), "--cases", ",".join(CASES),
                        "--reps", "3", "--out", str(out)]) == 0
    return pd.read_csv(out, keep_default_na=False).set_index(["variant", "case"])


def test_graph_capture_replays_local_bn_with_its_running_statistics(rows):
    for variant in ("scratch", "nn"):
        assert rows.loc[(variant, "cuda-graph"), "status"] == "pass", rows.loc[(variant, "cuda-graph"), "detail"]


def test_synchronising_graphs_pass_over_nccl_or_say_why_not(rows):
    nccl = torch.cuda.device_count() >= 2
    for variant in ("scratch-sync", "sync"):
        status, detail = rows.loc[(variant, "cuda-graph"), ["status", "detail"]]
        assert (status == "pass") if nccl else (status == "n/a" and "needs NCCL" in detail), detail


def test_every_cell_ends_and_scratch_sync_matches_float64_on_cuda(rows):
    assert "timeout" not in set(rows["status"])
    for case in ("fp32", "channels-last", "eval-no-collective", "empty-rank"):
        assert rows.loc[("scratch-sync", case), "status"] == "pass", rows.loc[("scratch-sync", case), "detail"]
    assert set(rows["device"]) == {"cuda"}
