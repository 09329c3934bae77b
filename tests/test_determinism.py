"""--deterministic sets what PyTorch needs; same seed and world size give the same metrics.csv."""
from __future__ import annotations

import json
import os

import torch

from tests.reliab_util import TINY, read_rows


def test_same_seed_same_metrics(tmp_path, data_dir, monkeypatch, keep_process_state):
    from bench.run.runner import main
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    flags = TINY + ["--data-dir", str(data_dir), "--out", str(tmp_path), "--epochs", "2", "--deterministic"]
    for name, seed in (("a", "0"), ("b", "0"), ("other-seed", "1")):
        assert main(flags + ["--run-name", name, "--seed", seed]) == 0

    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert json.loads((tmp_path / "a" / "config.json").read_text())["deterministic"] is True

    a, b, c = (read_rows(tmp_path / n / "metrics.csv") for n in ("a", "b", "other-seed"))
    assert len(a) == 2 and a == b
    assert [r[1:] for r in a] != [r[1:] for r in c]  # the comparison can tell runs apart
