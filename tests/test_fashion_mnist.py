"""Fashion-MNIST from Debian's files into torchvision's layout, and the checks on damaged files."""
from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from bench.run.datasets import fashion_mnist as data
from bench.errors import UsageError


def test_layout_from_debian_files_reads_the_real_dataset(data_dir):
    raw = data_dir / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir() if not p.name.startswith(".")) == sorted(data.FILES)
    d = data.load(data_dir, torch.device("cpu"), limit_test=2000)
    assert d.train_x.shape == (60_000, 1, 28, 28) and d.train_x.dtype == torch.float32
    assert d.test_x.shape == (2000, 1, 28, 28) and d.test_y.shape == (2000,)
    assert float(d.train_x.min()) == 0.0 and float(d.train_x.max()) == 1.0
    assert torch.bincount(d.train_y).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    with gzip.open(data.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        first_labels = list(f.read()[8:18])
    assert d.test_y[:10].tolist() == first_labels


def test_missing_data_names_both_remedies(tmp_path):
    with pytest.raises(UsageError) as e:
        data.prepare(tmp_path / "nothing", debian_dir=tmp_path / "no-debian")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg and "\n" not in msg


def _copy_raw(src_root, dst_root):
    shutil.copytree(src_root / "FashionMNIST", dst_root / "FashionMNIST")
    return dst_root / "FashionMNIST" / "raw"


def test_truncated_idx_file_is_refused(data_dir, tmp_path):
    raw = _copy_raw(data_dir, tmp_path)
    f = raw / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(UsageError, match="truncated"):
        data.prepare(tmp_path, debian_dir=tmp_path / "no-debian")


def test_wrong_magic_is_refused(data_dir, tmp_path):
    raw = _copy_raw(data_dir, tmp_path)
    f = raw / "train-labels-idx1-ubyte"
    b = bytearray(f.read_bytes())
    b[3] = 0x03  # a label file claiming to hold images
    f.write_bytes(bytes(b))
    with pytest.raises(UsageError, match="magic"):
        data.prepare(tmp_path, debian_dir=tmp_path / "no-debian")


def test_gz_files_directly_in_data_dir_are_laid_out(tmp_path):
    for name in data.FILES:
        shutil.copy(data.DEBIAN_DIR / f"{name}.gz", tmp_path / f"{name}.gz")
    root = data.prepare(tmp_path, debian_dir=tmp_path / "no-debian")
    for name in data.FILES:
        data.check_idx(root / "FashionMNIST" / "raw" / name)
