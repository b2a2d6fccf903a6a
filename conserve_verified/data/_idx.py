"""MNIST and Fashion-MNIST from their official idx files (optionally gzip-compressed).

Both data sets ship the same four files: ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each possibly with a ``.gz`` suffix.  They are
looked for in a list of folders (for MNIST: ``data_dir`` and
``data_dir/MNIST/raw``, torchvision's layout; for Fashion-MNIST see
:data:`conserve_verified.data.FASHION_MNIST_DIR`).  An idx file is a big-endian
header -- magic ``0x0000 TT DD`` (``TT = 0x08``: unsigned byte; ``DD``: number
of dimensions), then ``DD`` uint32 sizes -- followed by exactly
``prod(sizes)`` bytes.  Wrong magic, a truncated or over-long file, wrong image
size or mismatched counts raise :class:`~conserve_verified.errors.InvalidArgument`
naming the file (``"MNIST file"`` or ``"Fashion-MNIST file"``).
"""

from __future__ import annotations

import gzip
import math
import pathlib
import struct
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidArgument

__all__ = [
    "FILES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "find_idx_files",
    "load_idx_arrays",
    "load_mnist_arrays",
    "read_idx",
]

#: Magic numbers: unsigned byte data with 3 (images) or 1 (labels) dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

#: The four idx files of MNIST and Fashion-MNIST (without the optional ``.gz``).
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: pathlib.Path, magic: int, kind: str = "MNIST") -> np.ndarray:
    """The uint8 array stored in idx file ``path``, whose magic number must be ``magic``.

    Identity: for a file holding header ``(magic, *shape)`` and ``prod(shape)`` bytes
    ``b``, the result is ``np.frombuffer(b, uint8).reshape(shape)``.
    """
    what = f"{kind} file"
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidArgument(what, str(path), f"cannot be read: {exc}") from None
    if len(raw) < 4:
        raise InvalidArgument(what, str(path), f"truncated: {len(raw)} bytes, no header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise InvalidArgument(
            what, str(path), f"wrong magic number 0x{found:08x}, expected 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidArgument(what, str(path), f"truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)
    if len(raw) != expected:
        kind_ = "truncated" if len(raw) < expected else "longer than its header says"
        raise InvalidArgument(
            what,
            str(path),
            f"{kind_}: {len(raw)} bytes, header {shape} implies {expected}",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(folders: Sequence[pathlib.Path], stem: str) -> pathlib.Path | None:
    for d in folders:
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def find_idx_files(folders: Sequence[pathlib.Path]) -> dict[str, pathlib.Path] | None:
    """The four idx files, all from the first folder of ``folders`` holding all four.

    Identity: every returned path has the same parent; ``None`` when no folder has
    the complete set (a partial set is never mixed with another folder's files).
    """
    for d in folders:
        found = {key: _find([d], stem) for key, stem in FILES.items()}
        if all(p is not None for p in found.values()):
            return {k: p for k, p in found.items() if p is not None}
    return None


def load_idx_arrays(
    folders: Sequence[pathlib.Path], kind: str, argument: str = "data_dir"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; ``x`` float32 in ``[0, 1]``, ``(N, 1, 28, 28)``.

    Identity: ``x == images / 255`` with a channel axis inserted; ``y`` the label bytes.
    """
    files = find_idx_files(folders)
    if files is None:
        raise InvalidArgument(
            argument,
            [str(f) for f in folders],
            f"no folder holds the four {kind} idx files {sorted(FILES.values())} "
            "(each optionally .gz)",
        )
    out = []
    for split in ("train", "test"):
        ipath, lpath = files[f"{split}_images"], files[f"{split}_labels"]
        images = read_idx(ipath, IMAGES_MAGIC, kind)
        labels = read_idx(lpath, LABELS_MAGIC, kind)
        if images.shape[1:] != (28, 28):
            raise InvalidArgument(
                f"{kind} file", str(ipath), f"images are {images.shape[1:]}, expected (28, 28)"
            )
        if images.shape[0] != labels.shape[0]:
            raise InvalidArgument(
                f"{kind} file",
                str(lpath),
                f"{labels.shape[0]} labels for {images.shape[0]} images",
            )
        if labels.size and labels.max() > 9:
            raise InvalidArgument(
                f"{kind} file", str(lpath), f"label {int(labels.max())} is not in [0, 9]"
            )
        out += [images.astype(np.float32)[:, None] / np.float32(255.0), labels.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


def mnist_folders(data_dir: pathlib.Path) -> list[pathlib.Path]:
    """Where MNIST's files are looked for: ``data_dir`` and ``data_dir/MNIST/raw``."""
    return [data_dir, data_dir / "MNIST" / "raw"]


def load_mnist_arrays(
    data_dir: pathlib.Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's ``(x_train, y_train, x_test, y_test)`` from ``data_dir`` (see module doc)."""
    folders = mnist_folders(data_dir)
    if find_idx_files(folders) is None:
        missing = [s for s in FILES.values() if _find(folders, s) is None]
        what = f"has no MNIST file {missing[0]}[.gz]" if missing else "has no folder with all"
        raise InvalidArgument(
            "data_dir",
            str(data_dir),
            f"{what} (needs {sorted(FILES.values())} in one of {[str(f) for f in folders]})",
        )
    return load_idx_arrays(folders, "MNIST")
