"""User data in two standard on-disk formats: NumPy ``.npz`` archives and image folders.

``npz:PATH``
    an ``.npz`` archive with arrays ``X`` (``(N, *input_shape)``, numeric) and
    ``y`` (``(N,)``, integer labels ``>= 0``), and optionally ``X_test`` /
    ``y_test`` (both or neither).  Read with ``allow_pickle=False``: an archive
    holding object arrays is refused.  ``uint8`` inputs are scaled by ``1/255``;
    other numeric inputs are cast to float32 unchanged.

``imagefolder:PATH``
    one subfolder per class holding PNG images (``PATH/<class>/*.png``), or the
    same layout under ``PATH/train`` and ``PATH/test``.  Classes are the sorted
    subfolder names (index = position); images are read with Pillow, greyscale
    (``C = 1``) when every image is greyscale, RGB (``C = 3``) otherwise, scaled
    by ``1/255`` to ``(C, H, W)``; all images must have the same size.

Without a test split, a stratified 25% test split is drawn with
``random_state=0`` (as for digits).  ``num_classes = max(label) + 1`` over both
splits.  Every problem raises :class:`~conserve_verified.errors.InvalidArgument`
naming the file and what is wrong.
"""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np

from ..errors import InvalidArgument

__all__ = ["IMAGE_SUFFIXES", "load_imagefolder_arrays", "load_npz_arrays", "split"]

_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: File suffixes read by the image-folder loader (case-insensitive).
IMAGE_SUFFIXES = (".png",)


def split(x: np.ndarray, y: np.ndarray) -> _Arrays:
    """Stratified 25% test split with ``random_state=0`` (unstratified if a class has < 2).

    Identity: the two splits partition the samples (``n_train + n_test == N``).
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    strat = y if counts[counts > 0].min() >= 2 else None
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=strat, random_state=0)
    return x_tr, y_tr, x_te, y_te


def _inputs(x: np.ndarray, where: str, key: str) -> np.ndarray:
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise InvalidArgument(
            where, key, f"must be a numeric array (N, *input_shape), got {x.dtype} {x.shape}"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    out = x.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise InvalidArgument(where, key, "contains NaN or Inf (or values beyond float32)")
    return out


def _labels(y: np.ndarray, n: int, where: str, key: str) -> np.ndarray:
    if y.dtype.kind not in "biu" or y.ndim != 1 or y.shape[0] != n:
        raise InvalidArgument(
            where, key, f"must be integer labels of shape ({n},), got {y.dtype} {y.shape}"
        )
    if y.size and int(y.min()) < 0:
        raise InvalidArgument(where, key, f"label {int(y.min())} is negative")
    return y.astype(np.int64)


def load_npz_arrays(path: pathlib.Path) -> _Arrays:
    """``(x_train, y_train, x_test, y_test)`` of an ``.npz`` archive (see module doc)."""
    where = "npz file"
    if not path.is_file():
        raise InvalidArgument(where, str(path), "file not found")
    if not zipfile.is_zipfile(path):
        raise InvalidArgument(where, str(path), "is not a readable .npz archive (not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise InvalidArgument(
            where, str(path), f"holds object (pickled) arrays, which are refused: {exc}"
        ) from None
    except Exception as exc:
        raise InvalidArgument(
            where, str(path), f"is not a readable .npz archive ({type(exc).__name__}: {exc})"
        ) from None
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise InvalidArgument(where, str(path), f"lacks array(s) {missing}; has {sorted(arrays)}")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise InvalidArgument(where, str(path), "needs both X_test and y_test, or neither")
    src = f"{path}"
    x = _inputs(arrays["X"], f"{where} {src}", "X")
    y = _labels(arrays["y"], x.shape[0], f"{where} {src}", "y")
    if "X_test" not in arrays:
        return split(x, y)
    x_te = _inputs(arrays["X_test"], f"{where} {src}", "X_test")
    if x_te.shape[1:] != x.shape[1:]:
        raise InvalidArgument(
            f"{where} {src}",
            "X_test",
            f"has sample shape {x_te.shape[1:]}, X has {x.shape[1:]}",
        )
    y_te = _labels(arrays["y_test"], x_te.shape[0], f"{where} {src}", "y_test")
    return x, y, x_te, y_te


_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _class_dirs(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)


def _image_files(d: pathlib.Path) -> list[pathlib.Path]:
    return sorted(
        (f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda f: f.name,
    )


def _read_tree(root: pathlib.Path, classes: list[str]) -> tuple[list[pathlib.Path], list[int]]:
    files: list[pathlib.Path] = []
    labels: list[int] = []
    for d in _class_dirs(root):
        if d.name not in classes:
            raise InvalidArgument(
                "image folder", str(d), f"class {d.name!r} is not among the training classes"
            )
        found = _image_files(d)
        if not found:
            raise InvalidArgument("image folder", str(d), "class folder holds no .png images")
        files += found
        labels += [classes.index(d.name)] * len(found)
    return files, labels


def load_imagefolder_arrays(root: pathlib.Path) -> _Arrays:
    """``(x_train, y_train, x_test, y_test)`` of a class-per-subfolder PNG tree (module doc)."""
    from PIL import Image

    if not root.is_dir():
        raise InvalidArgument("image folder", str(root), "is not an existing directory")
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    classes = [d.name for d in _class_dirs(train_root)]
    if len(classes) < 2:
        raise InvalidArgument(
            "image folder",
            str(train_root),
            f"needs at least 2 class subfolders of .png images, found {classes}",
        )
    parts = [_read_tree(train_root, classes)]
    if has_split:
        parts.append(_read_tree(root / "test", classes))
    images: list[list[Image.Image]] = []
    for files, _ in parts:
        loaded: list[Image.Image] = []
        for f in files:
            try:
                with Image.open(f) as opened:
                    opened.load()
                    loaded.append(opened.copy())
            except Exception as exc:
                raise InvalidArgument(
                    "image file", str(f), f"cannot be read by Pillow ({type(exc).__name__}: {exc})"
                ) from None
        images.append(loaded)
    every = [
        (im, f)
        for ims, (files, _) in zip(images, parts, strict=True)
        for im, f in zip(ims, files, strict=True)
    ]
    size = every[0][0].size
    for im, f in every:
        if im.size != size:
            raise InvalidArgument(
                "image file",
                str(f),
                f"is {im.size[0]}x{im.size[1]}, the first image is "
                f"{size[0]}x{size[1]}; all images must have the same size",
            )
    grey = all(im.mode in _GREY_MODES for im, _ in every)
    mode = "L" if grey else "RGB"
    arrays = []
    for ims, (_, labels) in zip(images, parts, strict=True):
        stack = np.stack([np.asarray(im.convert(mode), dtype=np.uint8) for im in ims])
        x = stack[:, None] if grey else stack.transpose(0, 3, 1, 2)
        arrays.append((x.astype(np.float32) / np.float32(255.0), np.asarray(labels, np.int64)))
    if not has_split:
        return split(*arrays[0])
    return arrays[0][0], arrays[0][1], arrays[1][0], arrays[1][1]
