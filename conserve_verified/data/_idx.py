"""MNIST from its official idx files (optionally gzip-compressed).

Files in ``data_dir`` (or ``data_dir/MNIST/raw``, torchvision's layout):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each possibly with a
``.gz`` suffix.  An idx file is a big-endian header -- magic ``0x0000 TT DD``
(``TT = 0x08``: unsigned byte; ``DD``: number of dimensions), then ``DD``
uint32 sizes -- followed by exactly ``prod(sizes)`` bytes.  Wrong magic, a
truncated or over-long file, wrong image size or mismatched counts raise
:class:`~conserve_verified.errors.InvalidArgument` naming the file.
"""

from __future__ import annotations

import gzip
import math
import pathlib
import struct

import numpy as np

from ..errors import InvalidArgument

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "load_mnist_arrays", "read_idx"]

#: Magic numbers: unsigned byte data with 3 (images) or 1 (labels) dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: pathlib.Path, magic: int) -> np.ndarray:
    """The uint8 array stored in idx file ``path``, whose magic number must be ``magic``."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidArgument("MNIST file", str(path), f"cannot be read: {exc}") from None
    if len(raw) < 4:
        raise InvalidArgument("MNIST file", str(path), f"truncated: {len(raw)} bytes, no header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise InvalidArgument(
            "MNIST file", str(path), f"wrong magic number 0x{found:08x}, expected 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidArgument("MNIST file", str(path), f"truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "longer than its header says"
        raise InvalidArgument(
            "MNIST file",
            str(path),
            f"{kind}: {len(raw)} bytes, header {shape} implies {expected}",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(data_dir: pathlib.Path, stem: str) -> pathlib.Path:
    for d in (data_dir, data_dir / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    raise InvalidArgument(
        "data_dir",
        str(data_dir),
        f"has no MNIST file {stem}[.gz] (needs {sorted(_FILES.values())})",
    )


def load_mnist_arrays(
    data_dir: pathlib.Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; ``x`` float32 in ``[0, 1]``, ``(N, 1, 28, 28)``."""
    out = []
    for split in ("train", "test"):
        ipath = _find(data_dir, _FILES[f"{split}_images"])
        lpath = _find(data_dir, _FILES[f"{split}_labels"])
        images = read_idx(ipath, IMAGES_MAGIC)
        labels = read_idx(lpath, LABELS_MAGIC)
        if images.shape[1:] != (28, 28):
            raise InvalidArgument(
                "MNIST file", str(ipath), f"images are {images.shape[1:]}, expected (28, 28)"
            )
        if images.shape[0] != labels.shape[0]:
            raise InvalidArgument(
                "MNIST file", str(lpath), f"{labels.shape[0]} labels for {images.shape[0]} images"
            )
        if labels.size and labels.max() > 9:
            raise InvalidArgument(
                "MNIST file", str(lpath), f"label {int(labels.max())} is not in [0, 9]"
            )
        out += [images.astype(np.float32)[:, None] / np.float32(255.0), labels.astype(np.int64)]
    return out[0], out[1], out[2], out[3]
