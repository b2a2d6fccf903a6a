"""Tests of the named datasets (tabular, Fashion-MNIST), name checks, labels and availability.

Fashion-MNIST is tested on tiny idx files the tests write (CI has no Debian package).
"""

from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np
import pytest

import conserve_verified.data as data
from conserve_verified.data import (
    DATASETS,
    PREFIXES,
    DatasetUnavailable,
    check_available,
    check_name,
    dataset_info,
    dataset_label,
    dataset_names,
    load,
)
from conserve_verified.data._idx import IMAGES_MAGIC, LABELS_MAGIC
from conserve_verified.data._tabular import standardise
from conserve_verified.errors import InvalidArgument, InvalidArgumentType

_DEBIAN = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape) + payload


def _write_idx_set(folder: pathlib.Path, seed: int, n_train: int = 6, n_test: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(IMAGES_MAGIC, (n, 28, 28), img.tobytes()))
        )
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx(LABELS_MAGIC, (n,), lab.tobytes()))
        )


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """Every test sees an empty cache and no system Fashion-MNIST folder (unless it adds one)."""
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "no-system-fashion-mnist")
    data._cached.cache_clear()


@pytest.mark.parametrize(
    ("name", "n", "features", "classes"),
    [("breast-cancer", 569, 30, 2), ("wine", 178, 13, 3)],
)
def test_tabular_sets_split_is_stratified_and_standardised_on_train(
    name: str, n: int, features: int, classes: int
) -> None:
    d = load(name)
    assert d.input_shape == (features,) and d.num_classes == classes
    assert d.x_train.shape[0] + d.x_test.shape[0] == n
    assert d.x_test.shape[0] == int(np.ceil(0.25 * n))
    mu = d.x_train.mean(0)
    sd = d.x_train.std(0, unbiased=False)
    assert float(mu.abs().max()) < 1e-5 and float((sd - 1).abs().max()) < 1e-4
    assert float(d.x_test.mean(0).abs().max()) > 1e-3  # test split not re-standardised
    share_train = np.bincount(d.y_train.numpy()) / d.y_train.shape[0]
    share_test = np.bincount(d.y_test.numpy()) / d.y_test.shape[0]
    assert np.abs(share_train - share_test).max() < 0.03
    assert d.label == DATASETS[name].label


def test_standardise_uses_training_statistics_only() -> None:
    x_tr = np.array([[0.0, 5.0], [2.0, 5.0]])
    x_te = np.array([[4.0, 6.0]])
    a, b = standardise(x_tr, x_te)
    np.testing.assert_allclose(a, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(b, [[3.0, 1.0]])


def test_fashion_mnist_loads_from_data_dir_and_is_labelled_fashion_mnist(
    tmp_path: pathlib.Path,
) -> None:
    _write_idx_set(tmp_path / "fm", 1)
    d = load("fashion-mnist", tmp_path / "fm")
    assert d.name == "fashion-mnist" and d.label == "Fashion-MNIST"
    assert dataset_label("fashion-mnist") == "Fashion-MNIST"
    assert d.x_train.shape == (6, 1, 28, 28) and d.x_test.shape == (4, 1, 28, 28)
    raw = gzip.decompress((tmp_path / "fm" / "t10k-images-idx3-ubyte.gz").read_bytes())[16:]
    expect = np.frombuffer(raw, np.uint8).reshape(4, 1, 28, 28) / 255.0
    np.testing.assert_allclose(d.x_test.numpy(), expect, rtol=1e-6)


def test_fashion_mnist_torchvision_layout_and_system_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_idx_set(tmp_path / "root" / "FashionMNIST" / "raw", 2, n_train=5)
    assert load("fashion-mnist", tmp_path / "root").x_train.shape[0] == 5
    system = tmp_path / "system"
    _write_idx_set(system, 3, n_train=7)
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", system)
    data._cached.cache_clear()
    assert check_available("fashion-mnist").name == "fashion-mnist"
    assert load("fashion-mnist").x_train.shape[0] == 7
    # data_dir takes precedence over the system folder
    assert load("fashion-mnist", tmp_path / "root").x_train.shape[0] == 5


def test_fashion_mnist_missing_raises_one_error_saying_how_to_get_it(
    tmp_path: pathlib.Path,
) -> None:
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        check_available("fashion-mnist")
    with pytest.raises(DatasetUnavailable, match=r"data_dir=.*Fashion-MNIST"):
        check_available("fashion-mnist", tmp_path)
    with pytest.raises(InvalidArgument, match="four Fashion-MNIST idx files"):
        load("fashion-mnist", tmp_path)


def test_fashion_mnist_full_size_labels_must_be_the_official_ones() -> None:
    # MNIST and Fashion-MNIST share format and sizes; a full-size set is identified by hash
    y_fake = np.zeros(10000, dtype=np.int64)
    arrays = (np.zeros((1, 1, 28, 28)), np.zeros(1, np.int64), np.zeros((1, 1, 28, 28)), y_fake)
    with pytest.raises(InvalidArgument, match="not the official Fashion-MNIST"):
        data._check_fashion_labels(arrays, [pathlib.Path("/x")])
    data._check_fashion_labels((*arrays[:3], np.zeros(9, np.int64)), [pathlib.Path("/x")])


@pytest.mark.skipif(
    not (_DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_debian_package_matches_official_label_hashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        data, "FASHION_MNIST_DIR", pathlib.Path("/usr/share/datasets/fashion-mnist")
    )
    d = load("fashion-mnist")
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_check_name_accepts_fixed_names_and_prefixes_and_is_idempotent(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        set(dataset_names())
        == set(DATASETS)
        >= {"digits", "mnist1d", "mnist", "cifar10", "fashion-mnist", "breast-cancer", "wine"}
    )
    assert PREFIXES == ("npz:", "imagefolder:")
    for n in dataset_names():
        assert check_name(n) == n
    monkeypatch.chdir(tmp_path)
    full = check_name("npz:sub/a.npz")
    assert full == f"npz:{tmp_path.resolve() / 'sub' / 'a.npz'}"
    assert check_name(full) == full
    assert dataset_info(full).label == "npz file a.npz"
    assert check_name("imagefolder:imgs").startswith("imagefolder:/")
    for bad in ("imagenet", "npz:", "mnist ", "NPZ:x"):
        with pytest.raises(InvalidArgument, match=r"name=.*unknown dataset"):
            check_name(bad)
    with pytest.raises(InvalidArgumentType):
        check_name(None)


def test_no_named_dataset_is_labelled_mnist_except_mnist() -> None:
    labels = {n: dataset_label(n) for n in dataset_names()}
    assert labels["fashion-mnist"] == "Fashion-MNIST"
    assert [n for n, lab in labels.items() if lab == "MNIST"] == ["mnist"]
    assert len(set(labels.values())) == len(labels)


def test_check_available_bundled_and_local_sets(tmp_path: pathlib.Path) -> None:
    for n in ("digits", "mnist1d", "breast-cancer", "wine"):
        assert check_available(n).name == n
    with pytest.raises(DatasetUnavailable, match=r"data_dir=None: MNIST .*pass --data-dir"):
        check_available("mnist")
    with pytest.raises(DatasetUnavailable, match="not an existing directory"):
        check_available("cifar10", tmp_path / "nope")
    with pytest.raises(DatasetUnavailable, match=r"CIFAR-10 .*cifar-10-python.tar.gz"):
        check_available("cifar10", tmp_path)
    _write_idx_set(tmp_path / "m" / "MNIST" / "raw", 4)
    assert check_available("mnist", tmp_path / "m").label == "MNIST"
    with pytest.raises(DatasetUnavailable, match=r"N-MNIST .*Train/<digit>/\*\.bin"):
        check_available("n-mnist", tmp_path)
    with pytest.raises(DatasetUnavailable, match=r"npz file a.npz.*file not found"):
        check_available(f"npz:{tmp_path / 'a.npz'}")
    with pytest.raises(DatasetUnavailable, match="not an existing directory"):
        check_available(f"imagefolder:{tmp_path / 'none'}")
    with pytest.raises(InvalidArgument, match="unknown dataset"):
        check_available("imagenet")
    with pytest.raises(InvalidArgumentType, match="data_dir"):
        check_available("digits", 3)
