"""Tests of the CIFAR-10 (restricted unpickler) and MNIST (idx) loaders on tiny written files."""

from __future__ import annotations

import gzip
import os
import pathlib
import pickle
import struct

import numpy as np
import pytest

import conserve_verified.data as data_pkg
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


def test_npz_with_test_split_loads_as_given(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3, 4)).astype(np.float32), np.arange(12) % 3
    xt, yt = rng.normal(size=(5, 3, 4)), np.array([0, 1, 2, 2, 1])
    path = tmp_path / "arrays.npz"
    np.savez(path, X=x, y=y, X_test=xt, y_test=yt)
    d = load(f"npz:{path}")
    assert d.input_shape == (3, 4) and d.num_classes == 3 and d.label == "npz file arrays.npz"
    np.testing.assert_array_equal(d.x_train.numpy(), x)
    np.testing.assert_allclose(d.x_test.numpy(), xt.astype(np.float32))
    assert d.y_test.tolist() == yt.tolist()


def test_npz_without_test_split_is_split_stratified_and_uint8_is_scaled(
    tmp_path: pathlib.Path,
) -> None:
    x = np.arange(40 * 6, dtype=np.uint8).reshape(40, 6)
    y = np.repeat([0, 1], 20)
    path = tmp_path / "u8.npz"
    np.savez_compressed(path, X=x, y=y)
    d = load(f"npz:{path}")
    assert d.x_train.shape == (30, 6) and d.x_test.shape == (10, 6)
    assert d.y_test.tolist().count(0) == 5
    assert float(d.x_train.max()) <= 1.0
    together = sorted((d.x_train * 255).round().flatten(1)[:, 0].tolist())
    together += (d.x_test * 255).round().flatten(1)[:, 0].tolist()
    assert sorted(together) == sorted(x[:, 0].astype(float).tolist())


def test_npz_rejects_missing_arrays_pickles_bad_labels_and_shapes(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, X=np.zeros((4, 2)))
    with pytest.raises(InvalidArgument, match=r"lacks array\(s\) \['y'\]"):
        load(f"npz:{p}")
    np.savez(p, X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]), X_test=np.zeros((2, 2)))
    with pytest.raises(InvalidArgument, match="both X_test and y_test"):
        load(f"npz:{p}")
    np.savez(p, X=np.zeros((4, 2)), y=np.array([0.5, 1, 0, 1]))
    with pytest.raises(InvalidArgument, match="integer labels of shape"):
        load(f"npz:{p}")
    np.savez(p, X=np.zeros((4, 2)), y=np.array([0, -1, 0, 1]))
    with pytest.raises(InvalidArgument, match="label -1 is negative"):
        load(f"npz:{p}")
    np.savez(p, X=np.array([[np.nan, 0]] * 4), y=np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidArgument, match="NaN or Inf"):
        load(f"npz:{p}")
    np.savez(
        p, X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]), X_test=np.zeros((2, 3)), y_test=[0, 1]
    )
    with pytest.raises(InvalidArgument, match=r"X_test.*sample shape \(3,\)"):
        load(f"npz:{p}")
    np.savez(p, X=np.zeros((4, 2)), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(InvalidArgument, match="at least 2 classes"):
        load(f"npz:{p}")
    np.savez(p, X=np.array([object()] * 4, dtype=object), y=np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidArgument, match="object"):
        load(f"npz:{p}")
    p.write_bytes(b"not an archive")
    with pytest.raises(InvalidArgument, match=r"not a readable .npz"):
        load(f"npz:{p}")
    with pytest.raises(InvalidArgument, match="file not found"):
        load(f"npz:{tmp_path / 'missing.npz'}")


def test_npz_rewritten_file_is_read_afresh(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "a.npz"
    np.savez(p, X=np.zeros((8, 2)), y=np.arange(8) % 2)
    assert float(load(f"npz:{p}").x_train.sum()) == 0.0
    np.savez(p, X=np.ones((8, 2)), y=np.arange(8) % 2)
    os.utime(p, (1e9, 1e9))
    assert float(load(f"npz:{p}").x_train.sum()) == 12.0


def _png(path: pathlib.Path, array: np.ndarray, mode: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_imagefolder_greyscale_with_train_test_split(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    pix = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "ant"):
            for i in range(n):
                a = rng.integers(0, 256, (5, 7), dtype=np.uint8)
                pix[(split, cls, i)] = a
                _png(tmp_path / split / cls / f"{i}.png", a, "L")
    (tmp_path / "train" / "ant" / "notes.txt").write_text("ignored")
    d = load(f"imagefolder:{tmp_path}")
    assert d.input_shape == (1, 5, 7) and d.num_classes == 2
    assert d.x_train.shape[0] == 6 and d.x_test.shape[0] == 4
    # classes are the sorted folder names: ant -> 0, cat -> 1; files in name order
    assert d.y_test.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(d.x_test[2, 0].numpy(), pix[("test", "cat", 0)] / 255.0, rtol=1e-6)


def test_imagefolder_rgb_without_split_and_errors(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(4):
            _png(root / cls / f"{i}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8), "L")
    _png(root / "b" / "9.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB")
    d = load(f"imagefolder:{root}")
    assert d.input_shape == (3, 4, 4) and d.x_train.shape[0] + d.x_test.shape[0] == 9
    _png(root / "b" / "big.png", np.zeros((5, 4), np.uint8), "L")
    with pytest.raises(InvalidArgument, match=r"big.png.*all images must have the same size"):
        load(f"imagefolder:{root}")
    (root / "b" / "big.png").write_bytes(b"not a png")
    with pytest.raises(InvalidArgument, match="cannot be read by Pillow"):
        load(f"imagefolder:{root}")
    (root / "c").mkdir()
    with pytest.raises(InvalidArgument, match=r"holds no .png images"):
        load(f"imagefolder:{root}")
    single = tmp_path / "single"
    _png(single / "only" / "0.png", np.zeros((2, 2), np.uint8), "L")
    with pytest.raises(InvalidArgument, match="at least 2 class subfolders"):
        load(f"imagefolder:{single}")
    with pytest.raises(InvalidArgument, match="not an existing directory"):
        load(f"imagefolder:{tmp_path / 'none'}")


def _events(x: list[int], y: list[int], p: list[int], t: list[int]) -> bytes:
    out = bytearray()
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        out += bytes([xi, yi, (pi << 7) | (ti >> 16), (ti >> 8) & 0xFF, ti & 0xFF])
    return bytes(out)


def test_nmnist_events_decode_to_address_polarity_and_timestamp(tmp_path: pathlib.Path) -> None:
    from conserve_verified.data._nmnist import event_frame, read_events

    f = tmp_path / "00001.bin"
    f.write_bytes(_events([0, 33, 5, 5], [1, 2, 3, 3], [0, 1, 1, 1], [7, 0x7FFFFF, 300, 70000]))
    ev = read_events(f)
    assert ev.tolist() == [[0, 1, 0, 7], [33, 2, 1, 0x7FFFFF], [5, 3, 1, 300], [5, 3, 1, 70000]]
    frame = event_frame(ev)
    assert frame.shape == (2, 34, 34) and frame.max() == 1.0
    assert frame[1, 3, 5] == 1.0 and frame[0, 1, 0] == 0.5 and frame[1, 2, 33] == 0.5
    assert float(frame.sum()) * 2 == 4  # counts / max count (2) sum to the 4 events / 2
    assert event_frame(read_events(_empty(tmp_path))).sum() == 0.0


def _empty(tmp_path: pathlib.Path) -> pathlib.Path:
    f = tmp_path / "empty.bin"
    f.write_bytes(b"")
    return f


def test_nmnist_loads_train_and_test_folders_and_rejects_bad_files(
    tmp_path: pathlib.Path,
) -> None:
    for split, n in (("Train", 2), ("Test", 1)):
        for digit in (0, 7):
            d = tmp_path / split / str(digit)
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i:05d}.bin").write_bytes(_events([digit, 1], [i, 2], [0, 1], [1, 2]))
    d = load("n-mnist", tmp_path)
    assert d.input_shape == (2, 34, 34) and d.label == "N-MNIST (event camera)"
    assert d.y_train.tolist() == [0, 0, 7, 7] and d.y_test.tolist() == [0, 7]
    assert float(d.x_test[1, 0, 0, 7]) == 1.0
    (tmp_path / "Test" / "7" / "bad.bin").write_bytes(b"\x00" * 7)
    data_pkg._cached.cache_clear()  # named sets are cached per (name, data_dir)
    with pytest.raises(InvalidArgument, match="not a multiple of 5"):
        load("n-mnist", tmp_path)
    (tmp_path / "Test" / "7" / "bad.bin").write_bytes(_events([40], [0], [0], [0]))
    data_pkg._cached.cache_clear()
    with pytest.raises(InvalidArgument, match="outside the 34x34 sensor"):
        load("n-mnist", tmp_path)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(InvalidArgument, match="no N-MNIST recordings"):
        load("n-mnist", empty)
