"""Tests of conserve_verified.data: digits, MNIST-1D, and the local-format loaders."""

from __future__ import annotations

import pytest
import torch

from conserve_verified.data import DATASETS, load
from conserve_verified.data._mnist1d import MNIST1DParams, make_mnist1d, templates
from conserve_verified.errors import InvalidArgument, InvalidArgumentType


def test_load_digits_shapes_dtypes_and_labels() -> None:
    d = load("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and d.num_features == 64
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert float(d.x_train.min()) >= 0.0 and float(d.x_train.max()) <= 1.0
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_test.tolist())


def test_load_returns_fresh_tensors_each_call() -> None:
    a, b = load("digits"), load("digits")
    a.x_train.zero_()
    assert float(b.x_train.sum()) > 0 and float(load("digits").x_train.sum()) > 0


def test_load_unknown_name_lists_valid_names() -> None:
    with pytest.raises(
        InvalidArgument,
        match="valid: \\['breast-cancer', 'cifar10', 'digits', 'fashion-mnist', 'mnist', "
        "'mnist1d', 'n-mnist', 'wine'\\] or npz:PATH / imagefolder:PATH",
    ):
        load("imagenet")
    with pytest.raises(InvalidArgumentType):
        load(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cifar10", "mnist", "n-mnist"])
def test_local_datasets_need_an_existing_data_dir(name: str, tmp_path: object) -> None:
    with pytest.raises(InvalidArgument, match="--data-dir"):
        load(name)
    with pytest.raises(InvalidArgument, match="not an existing directory"):
        load(name, "/nonexistent/conserve-verified-data")


def test_mnist1d_is_deterministic_balanced_and_shaped() -> None:
    params = MNIST1DParams(num_samples=200)
    a = make_mnist1d(seed=3, params=params)
    b = make_mnist1d(seed=3, params=params)
    c = make_mnist1d(seed=4, params=params)
    for u, v in zip(a, b, strict=True):
        assert (u == v).all()
    assert not (a[0] == c[0]).all()
    x_tr, y_tr, x_te, y_te = a
    assert x_tr.shape == (160, 1, 40) and x_te.shape == (40, 1, 40)
    counts = torch.bincount(torch.tensor(list(y_tr) + list(y_te)), minlength=10)
    assert counts.tolist() == [20] * 10


def test_mnist1d_templates_start_at_zero_and_differ() -> None:
    t = templates()
    assert t.shape == (10, 12)
    assert (t[:, 0] == 0).all()
    assert len({tuple(row.round(6)) for row in t}) == 10


def test_mnist1d_default_load() -> None:
    d = load("mnist1d")
    assert d.x_train.shape == (4000, 1, 40) and d.x_test.shape == (1000, 1, 40)
    assert "mnist1d" in DATASETS
