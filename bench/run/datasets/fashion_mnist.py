"""Fashion-MNIST, resident on the training device.

Where the data comes from, in order: `--data-dir` (torchvision's `FashionMNIST/raw/` layout, or the
four IDX files, gzipped or not, directly in it), then Debian's `dataset-fashion-mnist` package
(/usr/share/datasets/fashion-mnist/*.gz), laid out into `--data-dir` without downloading; `--download`
lets torchvision fetch it. The whole set is ≈220 MB as float32, so it lives on the device and batches
are index gathers there: no DataLoader workers, no per-step host→device copies.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.errors import UsageError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {  # raw file name -> (IDX magic, dims after the count)
    "train-images-idx3-ubyte": (2051, (28, 28)),
    "train-labels-idx1-ubyte": (2049, ()),
    "t10k-images-idx3-ubyte": (2051, (28, 28)),
    "t10k-labels-idx1-ubyte": (2049, ()),
}


@dataclass
class FashionMNIST:
    """Images as float32 in [0, 1], shape (N, 1, 28, 28); labels int64 (N,) — on one device."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def check_idx(path: Path) -> None:
    """Raise UsageError unless `path` is a whole, uncompressed Fashion-MNIST IDX file."""
    magic_expected, dims = FILES[path.name]
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * (1 + len(dims)))
    if len(header) < 8:
        raise UsageError(f"{path} is truncated ({size} bytes): delete it and lay the data out again")
    magic, *shape = struct.unpack(f">{len(header) // 4}I", header)
    if magic != magic_expected:
        raise UsageError(f"{path} has IDX magic {magic}, expected {magic_expected}: not a Fashion-MNIST "
                         f"{'image' if magic_expected == 2051 else 'label'} file; replace it")
    expected = len(header) + shape[0] * (28 * 28 if dims else 1)
    if size != expected or tuple(shape[1:]) != dims:
        raise UsageError(f"{path} is truncated or malformed ({size} bytes, header says {expected}): "
                         f"delete it and lay the data out again")


def _find_source(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _copy_into(src: Path, dst: Path) -> None:
    """Decompress or copy `src` to `dst` atomically (ranks may lay out the same folder at once)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    opener = gzip.open if src.suffix == ".gz" else open
    try:
        with opener(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
        os.replace(tmp, dst)
    except (OSError, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot read {src} ({e}): the file is damaged; reinstall or re-download it") from None


def prepare(data_dir: str | os.PathLike, download: bool = False, debian_dir: Path | None = None) -> Path:
    """Make `data_dir/FashionMNIST/raw/` hold the four checked IDX files; return `data_dir`."""
    debian_dir = DEBIAN_DIR if debian_dir is None else debian_dir
    root = Path(data_dir)
    raw = root / "FashionMNIST" / "raw"
    if all((raw / n).is_file() for n in FILES):
        for n in FILES:
            check_idx(raw / n)
        return root
    for source_dir in (raw, root, debian_dir):
        sources = {n: _find_source(source_dir, n) for n in FILES}
        if all(sources.values()):
            try:
                raw.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"cannot create {raw} ({e.strerror}): pass a writable --data-dir") from None
            for n, src in sources.items():
                if src != raw / n:
                    _copy_into(src, raw / n)
                check_idx(raw / n)
            return root
    if download:
        import torchvision
        for train in (True, False):
            torchvision.datasets.FashionMNIST(str(root), train=train, download=True)
        return root
    raise UsageError(f"Fashion-MNIST not found in {root} or {debian_dir}: pass --data-dir DIR holding its four "
                     f".gz files, install Debian's package (apt-get install dataset-fashion-mnist), "
                     f"or pass --download")


def load(data_dir: str | os.PathLike, device: torch.device, download: bool = False,
         limit_train: int | None = None, limit_test: int | None = None) -> FashionMNIST:
    """Read Fashion-MNIST with torchvision's reader, scale to [0,1], move it to `device` once."""
    import torchvision

    root = prepare(data_dir, download)
    out = []
    for train, limit in ((True, limit_train), (False, limit_test)):
        ds = torchvision.datasets.FashionMNIST(str(root), train=train, download=False)
        x, y = ds.data, ds.targets
        if limit is not None:
            x, y = x[:limit], y[:limit]
        out += [(x.to(device).unsqueeze(1).float() / 255.0), y.to(device, torch.int64)]
    return FashionMNIST(*out)


def padded(x: torch.Tensor, side: int) -> torch.Tensor:
    """Fashion-MNIST for torchvision's 3-channel networks (``--image-size S``): N×1×H×W images
    zero-padded to S×S, each centred, and the grey channel repeated three times (a new tensor).

    >>> y = padded(torch.ones(2, 1, 28, 28), 32)
    >>> y.shape, y[0, :, 0, 0].tolist(), y[0, :, 2, 2].tolist()
    (torch.Size([2, 3, 32, 32]), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    """
    extra_h, extra_w = side - x.shape[-2], side - x.shape[-1]
    pad = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    return torch.nn.functional.pad(x, pad).expand(-1, 3, -1, -1).contiguous()
