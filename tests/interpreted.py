"""Run a test function in a fresh Python whose Triton runs in its CPU interpreter.

Triton decides between compiling and interpreting when it decorates a kernel, and it decorates
its own ``tl.sum`` and friends when triton is first imported, reading ``TRITON_INTERPRET`` then.
In a pytest process triton may already be imported (torch._dynamo imports it, and the fork server
of tests.dist_helpers preloads torch._dynamo), so setting the variable from a test is too late,
and setting it for the whole session would also switch every other test's Triton kernels to the
interpreter. A child process with the variable in its environment from the start has neither
problem::

    records = run_interpreted("tests.test_fused:train_local", cases)

The function (``module:name``) runs in the child with the given arguments; what it returns
travels back through ``torch.save``. A failure in the child fails the caller with its stderr.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def run_interpreted(target: str, *args: Any, timeout_s: float = 240) -> Any:
    """`target`(*args) evaluated in a child Python started with TRITON_INTERPRET=1."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, output = Path(tmp) / "args.pt", Path(tmp) / "result.pt"
        torch.save(args, inputs)
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
        proc = subprocess.run(
            [sys.executable, "-m", "tests.interpreted", target, str(inputs), str(output)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{target} failed under TRITON_INTERPRET=1:\n{proc.stderr[-4000:]}")
        return torch.load(output, weights_only=False)


def main(argv: list[str]) -> int:
    target, inputs, output = argv
    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    torch.save(fn(*torch.load(inputs, weights_only=False)), output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
