"""Datasets for the experiments: ``load(name, data_dir=None) -> Dataset``.

=========== ============================================= ===============
name        source                                        ``input_shape``
=========== ============================================= ===============
``digits``  scikit-learn's bundled 8×8 handwritten digits ``(1, 8, 8)``
``mnist1d`` MNIST-1D, generated procedurally from a seed  ``(1, 40)``
``cifar10`` official CIFAR-10 python batches in data_dir  ``(3, 32, 32)``
``mnist``   official MNIST idx files in data_dir          ``(1, 28, 28)``
=========== ============================================= ===============

Pixel values are scaled to ``[0, 1]`` (MNIST-1D is standardised by its
generator); ``x_*`` are float32 tensors of shape ``(N, *input_shape)`` and
``y_*`` int64 class labels in ``[0, num_classes)``.  Nothing is downloaded: a
missing or malformed data directory raises
:class:`~conserve_verified.errors.InvalidArgument` naming the file and what is
wrong with it.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgument, InvalidArgumentType

__all__ = ["DATASETS", "Dataset", "load"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split: ``x_*`` float32 ``(N, *input_shape)``, ``y_*`` int64 ``(N,)``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]

    @property
    def num_features(self) -> int:
        """Number of input features per sample: ``prod(input_shape)``."""
        n = 1
        for s in self.input_shape:
            n *= s
        return n


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _digits(_data_dir: pathlib.Path | None) -> _Arrays:
    from ._digits import load_digits_arrays

    return load_digits_arrays()


def _mnist1d(_data_dir: pathlib.Path | None) -> _Arrays:
    from ._mnist1d import load_mnist1d_arrays

    return load_mnist1d_arrays()


def _cifar10(data_dir: pathlib.Path | None) -> _Arrays:
    from ._cifar import load_cifar10_arrays

    return load_cifar10_arrays(_require_dir(data_dir, "cifar10"))


def _mnist(data_dir: pathlib.Path | None) -> _Arrays:
    from ._idx import load_mnist_arrays

    return load_mnist_arrays(_require_dir(data_dir, "mnist"))


def _require_dir(data_dir: pathlib.Path | None, name: str) -> pathlib.Path:
    if data_dir is None:
        raise InvalidArgument(
            "data_dir", None, f"dataset {name!r} is read from local files: pass --data-dir"
        )
    if not data_dir.is_dir():
        raise InvalidArgument("data_dir", str(data_dir), "is not an existing directory")
    return data_dir


#: name -> (loader, num_classes, input_shape)
DATASETS: dict[str, tuple[Callable[[pathlib.Path | None], _Arrays], int, tuple[int, ...]]] = {
    "digits": (_digits, 10, (1, 8, 8)),
    "mnist1d": (_mnist1d, 10, (1, 40)),
    "cifar10": (_cifar10, 10, (3, 32, 32)),
    "mnist": (_mnist, 10, (1, 28, 28)),
}


@functools.lru_cache(maxsize=8)
def _cached(name: str, data_dir: str | None) -> _Arrays:
    loader = DATASETS[name][0]
    return loader(None if data_dir is None else pathlib.Path(data_dir))


def _check_arrays(name: str, arrays: _Arrays, num_classes: int, shape: tuple[int, ...]) -> None:
    x_tr, y_tr, x_te, y_te = arrays
    for part, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if x.shape[1:] != shape or x.shape[0] != y.shape[0] or y.ndim != 1:
            raise InvalidArgument(
                f"{name} {part} split",
                f"x{tuple(x.shape)}, y{tuple(y.shape)}",
                f"expected x of shape (N, {', '.join(map(str, shape))}) and y of shape (N,)",
            )
        if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise InvalidArgument(
                f"{name} {part} labels",
                (int(y.min()), int(y.max())),
                f"must lie in [0, {num_classes})",
            )


def load(name: str = "digits", data_dir: Any = None) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`); local formats are read from ``data_dir``.

    Identity: ``load(n).x_train.shape[1:] == load(n).input_shape`` and every label
    lies in ``[0, num_classes)``.  Results are cached per ``(name, data_dir)``;
    each call returns fresh tensors.
    """
    if not isinstance(name, str):
        raise InvalidArgumentType("name", name, "a str")
    if name not in DATASETS:
        raise InvalidArgument("name", name, f"unknown dataset; valid: {sorted(DATASETS)}")
    if data_dir is not None and not isinstance(data_dir, (str, pathlib.Path)):
        raise InvalidArgumentType("data_dir", data_dir, "a path (str or pathlib.Path) or None")
    _, num_classes, shape = DATASETS[name]
    key = None if data_dir is None else str(pathlib.Path(data_dir).expanduser().resolve())
    arrays = _cached(name, key)
    _check_arrays(name, arrays, num_classes, shape)
    x_tr, y_tr, x_te, y_te = arrays
    return Dataset(
        name=name,
        x_train=torch.tensor(x_tr, dtype=torch.float32),
        y_train=torch.tensor(y_tr, dtype=torch.int64),
        x_test=torch.tensor(x_te, dtype=torch.float32),
        y_test=torch.tensor(y_te, dtype=torch.int64),
        num_classes=num_classes,
        input_shape=shape,
    )
