"""The tiny sweep both sweep test modules build: its matrix flags and the run names it must give."""
from __future__ import annotations

from pathlib import Path

VARIANTS, WORLD_SIZES, SEEDS, PER_RANK = ("scratch", "nn"), (1, 2), (0, 1), 64


def tiny_args(out: Path, data_dir: Path) -> list[str]:
    return ["--variants", *VARIANTS, "--world-sizes", *map(str, WORLD_SIZES), "--per-rank-batch-sizes",
            str(PER_RANK), "--seeds", *map(str, SEEDS), "--epochs", "1", "--out", str(out),
            "--limit-train", "1024", "--limit-test", "500", "--no-profile", "--warmup-steps", "2",
            "--data-dir", str(data_dir)]


def expected_names() -> list[str]:
    """Cell order: seeds outermost, then world size, then variant; names by bench's scheme."""
    return [f"lenet-{v}-ws{w}-b{PER_RANK * w}-s{s}" for s in SEEDS for w in WORLD_SIZES for v in VARIANTS]
