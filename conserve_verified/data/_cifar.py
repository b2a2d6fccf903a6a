"""CIFAR-10 from its official python batches, read with a restricted unpickler.

Layout: ``data_dir`` holds ``data_batch_1`` … ``data_batch_5`` and
``test_batch`` directly or inside ``cifar-10-batches-py/``.  Each batch is a
pickled dict ``{b"batch_label", b"labels", b"data", b"filenames"}`` whose
``data`` is a ``uint8`` array of shape ``(N, 3072)`` (row-major RGB planes).

The pickles are read by :class:`RestrictedUnpickler`, which admits only the
globals such files contain (NumPy's array reconstructor, ``ndarray`` and
``dtype``); any other global -- the way a crafted pickle runs code -- raises
:class:`~conserve_verified.errors.InvalidArgument` before it is resolved.
"""

from __future__ import annotations

import io
import pathlib
import pickle
from typing import Any

import numpy as np

from ..errors import InvalidArgument

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "load_cifar10_arrays", "read_batch"]

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


def _allowed() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray

    reconstruct = multiarray._reconstruct
    out: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = reconstruct
    out[("numpy", "ndarray")] = np.ndarray
    out[("numpy", "dtype")] = np.dtype
    return out


#: ``(module, name)`` -> object: the only globals a CIFAR-10 batch may reference.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`; everything else is refused."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise InvalidArgument(
                "CIFAR-10 batch",
                self.source,
                f"references the global {module}.{name}, which CIFAR-10 batches never contain "
                f"(allowed: {sorted('.'.join(k) for k in ALLOWED_GLOBALS)}); refusing to load",
            ) from None


def read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of one batch file, validated."""
    if not path.is_file():
        raise InvalidArgument("CIFAR-10 batch", str(path), "file not found")
    try:
        with path.open("rb") as fh:
            obj = RestrictedUnpickler(fh, str(path)).load()
    except InvalidArgument:
        raise
    except Exception as exc:
        raise InvalidArgument(
            "CIFAR-10 batch", str(path), f"is not a readable pickle ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise InvalidArgument(
            "CIFAR-10 batch", str(path), "is not a dict with b'data' and b'labels'"
        )
    data, labels = obj[b"data"], obj[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise InvalidArgument(
            "CIFAR-10 batch",
            str(path),
            f"b'data' must be a uint8 (N, 3072) array, got {type(data)}",
        )
    if data.shape[1] != 3072:
        raise InvalidArgument(
            "CIFAR-10 batch", str(path), f"b'data' has shape {data.shape}, expected (N, 3072)"
        )
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise InvalidArgument(
            "CIFAR-10 batch", str(path), f"b'labels' must be a list of {data.shape[0]} ints"
        )
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        raise InvalidArgument("CIFAR-10 batch", str(path), "b'labels' must be ints in [0, 9]")
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _batch_dir(data_dir: pathlib.Path) -> pathlib.Path:
    for d in (data_dir, data_dir / "cifar-10-batches-py"):
        if (d / TEST_BATCH).is_file():
            return d
    raise InvalidArgument(
        "data_dir",
        str(data_dir),
        "holds no CIFAR-10 python batches (expected test_batch and data_batch_1..5, "
        "directly or in cifar-10-batches-py/)",
    )


def load_cifar10_arrays(
    data_dir: pathlib.Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; ``x`` float32 in ``[0, 1]``, ``(N, 3, 32, 32)``."""
    d = _batch_dir(data_dir)
    parts = [read_batch(d / name) for name in TRAIN_BATCHES]
    x_te, y_te = read_batch(d / TEST_BATCH)
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    scale = np.float32(1.0 / 255.0)
    return x_tr.astype(np.float32) * scale, y_tr, x_te.astype(np.float32) * scale, y_te
