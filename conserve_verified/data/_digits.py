"""scikit-learn's bundled handwritten digits (1,797 8×8 images, 10 classes).

Split: stratified, 25% test, ``random_state=0`` (1,347 train / 450 test);
pixel values ``/ 16`` into ``[0, 1]``, shape ``(N, 1, 8, 8)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits_arrays"]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of the digits split described above."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return x_tr, y_tr, x_te, y_te
