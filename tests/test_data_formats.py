"""Tests of the CIFAR-10 (restricted unpickler) and MNIST (idx) loaders on tiny written files."""

from __future__ import annotations

import gzip
import os
import pathlib
import pickle
import struct

import numpy as np
import pytest

from conserve_verified.data import load
from conserve_verified.data._cifar import read_batch
from conserve_verified.data._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from conserve_verified.errors import InvalidArgument


def _write_batch(path: pathlib.Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obj = {
        b"batch_label": b"tiny batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    path.write_bytes(pickle.dumps(obj, protocol=3))


@pytest.fixture
def cifar_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        _write_batch(d / f"data_batch_{i}", 4, i)
    _write_batch(d / "test_batch", 3, 0)
    return tmp_path


def test_cifar10_loads_official_layout(cifar_dir: pathlib.Path) -> None:
    d = load("cifar10", cifar_dir)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    assert float(d.x_train.min()) >= 0.0 and float(d.x_train.max()) <= 1.0
    raw = pickle.loads((cifar_dir / "cifar-10-batches-py" / "test_batch").read_bytes())
    expect = raw[b"data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    np.testing.assert_allclose(d.x_test.numpy(), expect, rtol=1e-6)
    assert d.y_test.tolist() == raw[b"labels"]


class _Exploit:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_crafted_pickle_cannot_run_code(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "test_batch"
    bad.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=3))
    with pytest.raises(InvalidArgument, match=r"global (posix|nt)\.system"):
        read_batch(bad)
    assert not marker.exists()


def test_cifar10_rejects_wrong_shapes_and_garbage(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "b"
    p.write_bytes(
        pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=3)
    )
    with pytest.raises(InvalidArgument, match="expected \\(N, 3072\\)"):
        read_batch(p)
    p.write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=3)
    )
    with pytest.raises(InvalidArgument, match="list of 2 ints"):
        read_batch(p)
    p.write_bytes(b"not a pickle at all")
    with pytest.raises(InvalidArgument, match="not a readable pickle"):
        read_batch(p)
    with pytest.raises(InvalidArgument, match="no CIFAR-10 python batches"):
        load("cifar10", tmp_path / "..")


def _idx(magic: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape) + data


@pytest.fixture
def mnist_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            _idx(IMAGES_MAGIC, (n, 28, 28), img.tobytes())
        )
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx(LABELS_MAGIC, (n,), lab.tobytes()))
        )
    return tmp_path


def test_mnist_loads_idx_and_gz(mnist_dir: pathlib.Path) -> None:
    d = load("mnist", mnist_dir)
    assert d.x_train.shape == (5, 1, 28, 28) and d.y_test.shape == (3,)
    raw = (mnist_dir / "t10k-images-idx3-ubyte").read_bytes()[16:]
    expect = np.frombuffer(raw, np.uint8).reshape(3, 1, 28, 28) / 255.0
    np.testing.assert_allclose(d.x_test.numpy(), expect, rtol=1e-6)


def test_mnist_idx_wrong_magic_truncated_and_overlong(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(_idx(LABELS_MAGIC, (4,), bytes(4)))
    with pytest.raises(InvalidArgument, match="wrong magic number 0x00000801, expected 0x00000803"):
        read_idx(p, IMAGES_MAGIC)
    p.write_bytes(_idx(IMAGES_MAGIC, (2, 28, 28), bytes(100)))
    with pytest.raises(InvalidArgument, match="truncated"):
        read_idx(p, IMAGES_MAGIC)
    p.write_bytes(_idx(LABELS_MAGIC, (2,), bytes(3)))
    with pytest.raises(InvalidArgument, match="longer than its header"):
        read_idx(p, LABELS_MAGIC)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(InvalidArgument, match="no header"):
        read_idx(p, LABELS_MAGIC)


def test_mnist_mismatched_counts_and_missing_files(
    mnist_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx(LABELS_MAGIC, (2,), bytes(2)))
    )
    with pytest.raises(InvalidArgument, match="2 labels for 3 images"):
        load("mnist", mnist_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidArgument, match="has no MNIST file"):
        load("mnist", empty)
