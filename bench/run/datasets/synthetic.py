"""Random images held on the device (``--data synthetic``): a fixed set of uint8 images and random
labels, normalised on the device like an image folder's (bench.run.datasets.image_folder.Normalise).
Accuracy on them is not measured: the labels are random."""
from __future__ import annotations

import torch

SYNTHETIC_SEED = 20_240_917    # one fixed data set whatever --seed says: --seed varies the run, not the data


def synthetic(n: int, classes: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n random uint8 images (n, 3, size, size) and labels, drawn on ``device`` from a fixed seed: every
    rank holds the same set and trains on its shard of it."""
    gen = torch.Generator(device=device).manual_seed(SYNTHETIC_SEED)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device, generator=gen)
    y = torch.randint(0, classes, (n,), dtype=torch.int64, device=device, generator=gen)
    return x, y
