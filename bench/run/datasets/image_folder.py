"""A folder of images for the ImageNet-resolution workloads (``--data imagefolder``), and the
ImageNet normalisation it shares with random images held on the device (bench.run.datasets.synthetic).

Both give the network uint8 images normalised on the device, with ImageNet's per-channel mean and
standard deviation, so the host never handles float pixels: a DataLoader worker decodes, crops and
flips a file into a 3×S×S uint8 tensor (a quarter of the float bytes to pin and copy), and the
training process turns the batch into float32 on the device.

Image folder layout, as torchvision's ``ImageFolder`` reads it: ``<data-dir>/train/<class>/<image>``
and, optionally, ``<data-dir>/val/<class>/<image>`` with the same class folders (without ``val/`` the
test accuracy is not measured). Classes are the sorted sub-folder names; images are the files with
one of torchvision's image extensions. Training transforms: ``RandomResizedCrop(S)`` and a horizontal
flip; evaluation: ``Resize(S / 0.875)`` and ``CenterCrop(S)`` (256 and 224 for S = 224).
"""
from __future__ import annotations

from pathlib import Path

import torch

from bench.errors import UsageError

MEAN = (0.485, 0.456, 0.406)  # ImageNet's, as torchvision's pretrained models use them
STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875     # resize to S / 0.875, centre-crop S

Files = tuple[tuple[str, int], ...]  # (path, class index), in ImageFolder's order


def scan(folder: Path, what: str) -> tuple[tuple[str, ...], Files]:
    """(classes, files) of one ImageFolder split, as torchvision finds them; UsageError when it holds no
    class folder or a class folder holds no image."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not folder.is_dir():
        raise UsageError(f"{what} folder {folder} does not exist: --data imagefolder needs --data-dir holding "
                         f"train/<class>/<image> (and optionally val/<class>/<image>)")
    try:
        classes, class_to_idx = find_classes(folder)
        files = make_dataset(folder, class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as e:  # torchvision's message names the folder or the empty classes
        raise UsageError(f"{what} folder {folder}: {str(e).rstrip('.')}; lay it out as {what}/<class>/<image>") from None
    return tuple(classes), tuple((str(p), int(c)) for p, c in files)


def check_readable(files: Files) -> None:
    """Open every image far enough to read its header; UsageError naming the first file that is not an
    image. A file damaged past its header is found only when it is decoded (the run fails, naming it)."""
    from PIL import Image, UnidentifiedImageError

    for path, _ in files:
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 -- the header is parsed
        except (UnidentifiedImageError, OSError, ValueError) as e:
            reason = "not an image PIL can identify" if isinstance(e, UnidentifiedImageError) else str(e)
            raise UsageError(f"cannot read image {path} ({reason}): replace or remove the file") from None


class Normalise:
    """uint8 (N, 3, H, W) on the device -> float32, ImageNet-normalised, in ``memory_format``.

    The per-channel constants are put on the device once: made per batch, each would be a blocking
    host-to-device copy inside a timed step.
    """

    def __init__(self, device: torch.device, memory_format: torch.memory_format):
        self.shift = torch.tensor([255.0 * m for m in MEAN], device=device).view(1, 3, 1, 1)
        self.scale = torch.tensor([255.0 * s for s in STD], device=device).view(1, 3, 1, 1)
        self.memory_format = memory_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return ((images.float() - self.shift) / self.scale).contiguous(memory_format=self.memory_format)


class ImageFiles(torch.utils.data.Dataset):
    """(uint8 image tensor, class) for each (path, class) of a file list, through ``transform``."""

    def __init__(self, files: Files, transform):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, target = self.files[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as e:  # damaged past the header that resolve checked
            raise RuntimeError(f"cannot decode image {path}: {e}") from None
        return self.transform(img), target


def transforms(size: int, train: bool):
    """The standard ImageNet transforms, ending in a uint8 tensor (normalised later, on the device)."""
    import torchvision.transforms as T

    if train:
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.PILToTensor()])
    return T.Compose([T.Resize(round(size / EVAL_CROP_FRACTION)), T.CenterCrop(size), T.PILToTensor()])


class StepBatches(torch.utils.data.Sampler):
    """The batch sampler of a rank: one list of example indices per step, set anew each epoch
    (``rows``), so persistent workers serve every epoch from the same order the other sources use."""

    def __init__(self):
        self.rows: list[list[int]] = []

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def loader(dataset, batch_sampler=None, batch_size: int | None = None, workers: int = 0,
           pin: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader with ``workers`` processes (kept across epochs) and pinned batches for a GPU."""
    # Workers are kept across epochs: restarting them would put their start-up into a timed step.
    extra = dict(persistent_workers=True, prefetch_factor=2) if workers else {}
    batching = dict(batch_sampler=batch_sampler) if batch_sampler is not None else dict(batch_size=batch_size)
    return torch.utils.data.DataLoader(dataset, num_workers=workers, pin_memory=pin, **batching, **extra)
