"""Datasets for the experiments: ``load(name, data_dir=None) -> Dataset``.

===================== ================================================ ===============
name                  source                                           ``input_shape``
===================== ================================================ ===============
``digits``            scikit-learn's bundled 8×8 handwritten digits    ``(1, 8, 8)``
``mnist1d``           MNIST-1D, generated procedurally from a seed     ``(1, 40)``
``breast-cancer``     scikit-learn's bundled Wisconsin breast cancer   ``(30,)``
``wine``              scikit-learn's bundled wine recognition          ``(13,)``
``fashion-mnist``     official Fashion-MNIST idx files (Debian's       ``(1, 28, 28)``
                      ``dataset-fashion-mnist``, or ``data_dir``)
``mnist``             official MNIST idx files in ``data_dir``         ``(1, 28, 28)``
``cifar10``           official CIFAR-10 python batches in ``data_dir`` ``(3, 32, 32)``
``n-mnist``           N-MNIST event-camera recordings (``Train/``,     ``(2, 34, 34)``
                      ``Test/`` of ``.bin`` files) in ``data_dir``, as
                      event-count frames (neuromorphic)
``npz:PATH``          an ``.npz`` archive (``X``, ``y``, optionally    from the file
                      ``X_test``, ``y_test``)
``imagefolder:PATH``  class-per-subfolder PNG images                   from the files
                      (``PATH/<class>/*.png``, optionally under
                      ``train/`` and ``test/``)
===================== ================================================ ===============

Pixel values are scaled to ``[0, 1]`` (MNIST-1D is standardised by its
generator, the tabular sets per feature with the training split's statistics);
``x_*`` are float32 tensors of shape ``(N, *input_shape)`` and ``y_*`` int64
class labels in ``[0, num_classes)``.  Nothing is downloaded: a missing or
malformed data source raises :class:`~conserve_verified.errors.InvalidArgument`
naming the file and what is wrong with it.

Names for a command line: :func:`dataset_names` (the fixed names) and
:data:`PREFIXES` (``npz:`` and ``imagefolder:`` followed by a path);
:func:`check_name` validates one (and makes its path absolute),
:func:`check_available` checks that its files are present without reading them
(one :class:`DatasetUnavailable` saying how to get the data), and
:func:`dataset_label` gives the human label used in reports ("Fashion-MNIST").

Modalities that cannot be had offline here -- text and physiological
recordings -- have no named data set; bring them as ``npz:PATH`` arrays under
their own file name rather than a borrowed one.  Neuromorphic data is read in
N-MNIST's official event format (``n-mnist``) when a user has the files.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "PREFIXES",
    "Dataset",
    "DatasetInfo",
    "DatasetUnavailable",
    "check_available",
    "check_name",
    "dataset_info",
    "dataset_label",
    "dataset_names",
    "load",
]

#: Where Debian's ``dataset-fashion-mnist`` package installs the idx files.
FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

#: Name prefixes followed by a path: ``npz:PATH`` and ``imagefolder:PATH``.
PREFIXES: tuple[str, ...] = ("npz:", "imagefolder:")


class DatasetUnavailable(InvalidArgument):
    """A data set's files are not where they are looked for; the message says how to get them.

    A subclass of :class:`~conserve_verified.errors.InvalidArgument` (so a
    ``ValueError``); ``argument`` is ``"name"`` or ``"data_dir"``.
    """


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a data set before reading it.

    ``num_classes``/``input_shape`` are ``None`` for the file formats (``npz:``,
    ``imagefolder:``), whose files define them.  ``how_to_get`` is empty for
    bundled and generated sets.
    """

    name: str
    label: str
    modality: str
    num_classes: int | None
    input_shape: tuple[int, ...] | None
    source: str
    how_to_get: str = ""


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
    label: str = ""
    source: str = ""

    @property
    def num_features(self) -> int:
        """Number of input features per sample: ``prod(input_shape)``."""
        n = 1
        for s in self.input_shape:
            n *= s
        return n


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_MNIST_HOW = (
    "put the four official MNIST idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz) in a folder and pass it "
    "as --data-dir"
)
_FASHION_HOW = (
    "install Debian's package (apt-get install dataset-fashion-mnist, files in "
    f"{FASHION_MNIST_DIR}) or pass --data-dir pointing at a folder with the four official "
    "Fashion-MNIST idx files (train-images-idx3-ubyte.gz, ...)"
)
_NMNIST_HOW = (
    "obtain N-MNIST (Orchard et al. 2015: Train.zip and Test.zip), unzip both into one "
    "folder (Train/<digit>/*.bin, Test/<digit>/*.bin) and pass it as --data-dir"
)
_CIFAR_HOW = (
    "unpack the official 'CIFAR-10 python version' archive (cifar-10-python.tar.gz) and pass "
    "the folder holding cifar-10-batches-py/ (or its contents) as --data-dir"
)

#: The fixed names (see the module table).  Keys are what ``--data`` accepts besides
#: the :data:`PREFIXES` forms.
DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits", "scikit-learn digits (8×8)", "image", 10, (1, 8, 8), "scikit-learn (bundled)"
    ),
    "mnist1d": DatasetInfo(
        "mnist1d", "MNIST-1D", "1-D signal", 10, (1, 40), "generated procedurally (seed 42)"
    ),
    "breast-cancer": DatasetInfo(
        "breast-cancer",
        "Breast Cancer Wisconsin (diagnostic)",
        "tabular (medical)",
        2,
        (30,),
        "scikit-learn (bundled)",
    ),
    "wine": DatasetInfo("wine", "Wine recognition", "tabular", 3, (13,), "scikit-learn (bundled)"),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST",
        "image",
        10,
        (1, 28, 28),
        f"official idx files ({FASHION_MNIST_DIR} or data_dir)",
        _FASHION_HOW,
    ),
    "mnist": DatasetInfo(
        "mnist", "MNIST", "image", 10, (1, 28, 28), "official idx files in data_dir", _MNIST_HOW
    ),
    "n-mnist": DatasetInfo(
        "n-mnist",
        "N-MNIST (event camera)",
        "neuromorphic",
        10,
        (2, 34, 34),
        "official N-MNIST .bin event files in data_dir",
        _NMNIST_HOW,
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "CIFAR-10",
        "image",
        10,
        (3, 32, 32),
        "official python batches in data_dir",
        _CIFAR_HOW,
    ),
}

#: SHA-256 of the uncompressed official Fashion-MNIST label files.  A full-size set
#: (60,000 / 10,000 labels) must match, so MNIST's files (same format and sizes) can
#: never be read and labelled as Fashion-MNIST.
FASHION_MNIST_LABEL_SHA256 = {
    60000: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    10000: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def dataset_names() -> list[str]:
    """The fixed dataset names, sorted (the :data:`PREFIXES` forms come on top)."""
    return sorted(DATASETS)


def _split_prefix(name: str) -> tuple[str, str] | None:
    for p in PREFIXES:
        if name.startswith(p):
            return p, name[len(p) :]
    return None


def check_name(name: Any) -> str:
    """``name`` if it is a fixed name, or ``PREFIX + absolute path`` for a prefixed one.

    Identity: ``check_name(check_name(n)) == check_name(n)``; a relative path is
    made absolute against the current directory (so worker processes agree).
    Raises :class:`InvalidArgument` for anything else, listing the valid forms.
    """
    if not isinstance(name, str):
        raise InvalidArgumentType("name", name, "a str")
    if name in DATASETS:
        return name
    parts = _split_prefix(name)
    if parts is None or not parts[1]:
        raise InvalidArgument(
            "name",
            name,
            f"unknown dataset; valid: {dataset_names()} or "
            f"{' / '.join(p + 'PATH' for p in PREFIXES)}",
        )
    prefix, path = parts
    return prefix + str(pathlib.Path(path).expanduser().resolve())


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (validated by :func:`check_name`)."""
    name = check_name(name)
    if name in DATASETS:
        return DATASETS[name]
    prefix, path = _split_prefix(name) or ("", "")
    if prefix == "npz:":
        return DatasetInfo(
            name,
            f"npz file {pathlib.Path(path).name}",
            "from file",
            None,
            None,
            path,
            "pass npz:PATH to an existing .npz archive with arrays X and y",
        )
    return DatasetInfo(
        name,
        f"image folder {pathlib.Path(path).name}",
        "image",
        None,
        None,
        path,
        "pass imagefolder:PATH to a folder with one subfolder of .png images per class",
    )


def dataset_label(name: str) -> str:
    """Human label of ``name`` for reports, e.g. ``"Fashion-MNIST"`` for ``fashion-mnist``."""
    return dataset_info(name).label


def _fashion_folders(data_dir: pathlib.Path | None) -> list[pathlib.Path]:
    own = (
        []
        if data_dir is None
        else [data_dir / "FashionMNIST" / "raw", data_dir / "fashion-mnist", data_dir]
    )
    return [*own, FASHION_MNIST_DIR]


def _unavailable(info: DatasetInfo, argument: str, value: Any, what: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        argument, value, f"{info.label} ({info.name!r}): {what}; to get it: {info.how_to_get}"
    )


def check_available(name: Any, data_dir: Any = None) -> DatasetInfo:
    """Check that ``name`` can be loaded from ``data_dir`` without reading its data.

    Identity: when it returns, :func:`load` finds every file it needs (the
    files' contents are validated only by :func:`load`).  Raises one
    :class:`DatasetUnavailable` naming the argument, its value and how to get
    the data, or :class:`InvalidArgument` for an unknown name.
    """
    info = dataset_info(name)
    d = _data_dir(data_dir)
    if info.name in ("digits", "mnist1d", "breast-cancer", "wine"):
        return info
    prefix = (_split_prefix(info.name) or ("", ""))[0]
    if prefix == "npz:":
        if not pathlib.Path(info.source).is_file():
            raise _unavailable(info, "name", info.name, "file not found")
        return info
    if prefix == "imagefolder:":
        if not pathlib.Path(info.source).is_dir():
            raise _unavailable(info, "name", info.name, "is not an existing directory")
        return info
    if info.name == "fashion-mnist":
        from ._idx import find_idx_files

        folders = _fashion_folders(d)
        if find_idx_files(folders) is None:
            raise _unavailable(
                info,
                "data_dir",
                None if d is None else str(d),
                f"no folder of {[str(f) for f in folders]} holds the four idx files",
            )
        return info
    if d is None:
        raise _unavailable(info, "data_dir", None, "is read from local files: pass --data-dir")
    if not d.is_dir():
        raise _unavailable(info, "data_dir", str(d), "is not an existing directory")
    if info.name == "mnist":
        from ._idx import find_idx_files, mnist_folders

        if find_idx_files(mnist_folders(d)) is None:
            raise _unavailable(info, "data_dir", str(d), "has no complete set of MNIST idx files")
        return info
    if info.name == "n-mnist":
        for split in ("Train", "Test"):
            if not any((d / split).glob("[0-9]/*.bin")):
                raise _unavailable(
                    info, "data_dir", str(d), f"has no recordings {split}/<digit>/*.bin"
                )
        return info
    from ._cifar import TEST_BATCH, TRAIN_BATCHES

    for sub in (d, d / "cifar-10-batches-py"):
        if all((sub / b).is_file() for b in (*TRAIN_BATCHES, TEST_BATCH)):
            return info
    raise _unavailable(info, "data_dir", str(d), "holds no complete set of CIFAR-10 python batches")


def _require_dir(data_dir: pathlib.Path | None, name: str) -> pathlib.Path:
    if data_dir is None:
        raise InvalidArgument(
            "data_dir", None, f"dataset {name!r} is read from local files: pass --data-dir"
        )
    if not data_dir.is_dir():
        raise InvalidArgument("data_dir", str(data_dir), "is not an existing directory")
    return data_dir


def _check_fashion_labels(arrays: _Arrays, folders: list[pathlib.Path]) -> None:
    from ._idx import LABELS_MAGIC

    for part, y in (("train", arrays[1]), ("test", arrays[3])):
        want = FASHION_MNIST_LABEL_SHA256.get(int(y.shape[0]))
        if want is None:
            continue
        header = np.array([LABELS_MAGIC, y.shape[0]], dtype=">u4").tobytes()
        got = hashlib.sha256(header + y.astype(np.uint8).tobytes()).hexdigest()
        if got != want:
            raise InvalidArgument(
                "data_dir",
                [str(f) for f in folders],
                f"the full-size {part} labels found are not the official Fashion-MNIST "
                f"labels (SHA-256 {got[:12]}…, expected {want[:12]}…): MNIST files, "
                "perhaps? Point --data-dir at the Fashion-MNIST files",
            )


def _load_fashion(data_dir: pathlib.Path | None) -> _Arrays:
    from ._idx import load_idx_arrays

    if data_dir is not None and not data_dir.is_dir():
        raise InvalidArgument("data_dir", str(data_dir), "is not an existing directory")
    folders = _fashion_folders(data_dir)
    arrays = load_idx_arrays(folders, "Fashion-MNIST")
    _check_fashion_labels(arrays, folders)
    return arrays


def _bundled(name: str) -> _Arrays:
    if name == "digits":
        from ._digits import load_digits_arrays

        return load_digits_arrays()
    if name == "mnist1d":
        from ._mnist1d import load_mnist1d_arrays

        return load_mnist1d_arrays()
    from ._tabular import load_tabular_arrays

    return load_tabular_arrays(name)


def _read(name: str, data_dir: pathlib.Path | None) -> _Arrays:
    if name in ("digits", "mnist1d", "breast-cancer", "wine"):
        return _bundled(name)
    if name == "fashion-mnist":
        return _load_fashion(data_dir)
    if name == "mnist":
        from ._idx import load_mnist_arrays

        return load_mnist_arrays(_require_dir(data_dir, "mnist"))
    if name == "n-mnist":
        from ._nmnist import load_nmnist_arrays

        return load_nmnist_arrays(_require_dir(data_dir, "n-mnist"))
    if name == "cifar10":
        from ._cifar import load_cifar10_arrays

        return load_cifar10_arrays(_require_dir(data_dir, "cifar10"))
    from ._files import load_imagefolder_arrays, load_npz_arrays

    prefix, path = _split_prefix(name) or ("", "")
    reader: Callable[[pathlib.Path], _Arrays] = (
        load_npz_arrays if prefix == "npz:" else load_imagefolder_arrays
    )
    return reader(pathlib.Path(path))


@functools.lru_cache(maxsize=8)
def _cached(name: str, data_dir: str | None, _stamp: tuple[int, int]) -> _Arrays:
    return _read(name, None if data_dir is None else pathlib.Path(data_dir))


def _stamp(name: str) -> tuple[int, int]:
    """``(entries, newest mtime_ns)`` of a prefixed name's file or folder tree, so that a
    rewritten file, or an image added to a class folder, is read afresh (``(0, 0)`` else)."""
    parts = _split_prefix(name)
    if parts is None:
        return (0, 0)
    root = pathlib.Path(parts[1])
    try:
        if not root.is_dir():
            return (1, root.stat().st_mtime_ns)
        paths = [root, *root.rglob("*")]
        return (len(paths), max(q.stat().st_mtime_ns for q in paths))
    except OSError:
        return (-1, -1)


def _data_dir(data_dir: Any) -> pathlib.Path | None:
    if data_dir is None:
        return None
    if not isinstance(data_dir, (str, pathlib.Path)):
        raise InvalidArgumentType("data_dir", data_dir, "a path (str or pathlib.Path) or None")
    return pathlib.Path(data_dir).expanduser().resolve()


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
    """Load dataset ``name`` (a :data:`DATASETS` key or a :data:`PREFIXES` form).

    Identity: ``load(n).x_train.shape[1:] == load(n).input_shape`` and every label
    lies in ``[0, num_classes)``.  Results are cached per ``(name, data_dir)``
    (and file modification time for the prefixed forms); each call returns
    fresh tensors.  ``data_dir`` is where ``mnist``/``cifar10`` are read and
    overrides Debian's folder for ``fashion-mnist``; the other names ignore it.
    """
    info = dataset_info(name)
    d = _data_dir(data_dir)
    arrays = _cached(info.name, None if d is None else str(d), _stamp(info.name))
    num_classes = info.num_classes
    shape = info.input_shape
    if num_classes is None or shape is None:
        labels = np.concatenate([arrays[1], arrays[3]])
        num_classes = int(labels.max()) + 1 if labels.size else 0
        if num_classes < 2:
            raise InvalidArgument(
                "name", info.name, f"needs labels of at least 2 classes, found {num_classes}"
            )
        shape = tuple(int(s) for s in arrays[0].shape[1:])
    _check_arrays(info.name, arrays, num_classes, shape)
    x_tr, y_tr, x_te, y_te = arrays
    return Dataset(
        name=info.name,
        x_train=torch.tensor(x_tr, dtype=torch.float32),
        y_train=torch.tensor(y_tr, dtype=torch.int64),
        x_test=torch.tensor(x_te, dtype=torch.float32),
        y_test=torch.tensor(y_te, dtype=torch.int64),
        num_classes=num_classes,
        input_shape=shape,
        label=info.label,
        source=info.source,
    )
