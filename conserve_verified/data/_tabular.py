"""scikit-learn's bundled tabular medical data sets: breast cancer (Wisconsin) and wine.

* ``breast-cancer``: 569 samples, 30 real features (cell-nucleus measurements from
  digitised fine-needle aspirates), 2 classes (malignant / benign).
* ``wine``: 178 samples, 13 chemical-analysis features, 3 cultivars.

Split: stratified, 25% test, ``random_state=0`` (as for digits).  Features are
standardised with the *training* split's mean and SD (``ddof=0``; a constant
feature is left centred, SD 1), so no test statistic leaks into training.
Shape ``(N, num_features)`` float32, labels int64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_tabular_arrays", "standardise"]


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mu) / sd`` for both splits, ``mu``/``sd`` per feature of ``x_train`` only.

    Identity: the standardised training split has per-feature mean 0 and SD 1
    (SD 0 features: mean 0, unchanged spread).
    """
    mu = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return ((x_train - mu) / sd).astype(np.float32), ((x_test - mu) / sd).astype(np.float32)


def load_tabular_arrays(which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of ``which`` (``"breast-cancer"`` or ``"wine"``)."""
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.model_selection import train_test_split

    bunch = {"breast-cancer": load_breast_cancer, "wine": load_wine}[which]()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    x_tr, x_te = standardise(x_tr, x_te)
    return x_tr, y_tr, x_te, y_te
