"""Fixed train/held-out splits of scikit-learn's bundled datasets.

The build script trains on these splits and the tests re-check the shipped models on the same held-out
samples, so both must draw them from one place. The datasets ship inside scikit-learn: nothing is
downloaded. scikit-learn is an optional dependency (``.[convert]``) and is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DATASETS = ("digits", "breast_cancer", "iris", "wine")
TEST_SIZE = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """A stratified train/held-out split; features float64, labels int64."""

    name: str
    x_train: npt.NDArray[np.float64]
    x_test: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.int64]
    y_test: npt.NDArray[np.int64]


def load_split(name: str, test_size: float = TEST_SIZE, seed: int = SPLIT_SEED) -> Split:
    """The held-out split of a bundled dataset, identical on every run and machine."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    x, y = loaders[name](return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        np.asarray(x, dtype=np.float64),
        np.asarray(y, dtype=np.int64),
        test_size=test_size,
        random_state=seed,
        stratify=y,
    )
    return Split(name, x_train, x_test, y_train, y_test)
