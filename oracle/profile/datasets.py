"""Fixed train/held-out splits of scikit-learn's bundled datasets.

The build script trains on these splits and the tests re-check the shipped models on the same held-out
samples, so both must draw them from one place. The datasets ship inside scikit-learn: nothing is
downloaded. scikit-learn is an optional dependency (``.[convert]``) and is imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DATASETS = ("digits", "breast_cancer", "iris", "wine", "credit")
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
    if name == "credit":
        x, y = synthetic_credit()
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, random_state=seed, stratify=y
        )
        return Split(name, x_train, x_test, y_train, y_test)
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


#: Feature names of the synthetic credit data set, in column order.
CREDIT_FEATURES = (
    "annual_income_k",  # thousands per year
    "debt_to_income_pct",
    "credit_history_years",
    "late_payments_2y",
    "credit_utilization_pct",
    "open_accounts",
)


def synthetic_credit(n: int = 4000, seed: int = 7) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """A synthetic loan-applicant data set (label 1 = the applicant defaulted), for the lender example.

    It is SYNTHETIC: features are drawn from plausible ranges and the default probability follows a fixed
    logistic ground truth (higher debt-to-income, utilisation and late payments raise it; income and a long
    credit history lower it) plus noise. scikit-learn bundles no credit data and nothing may be downloaded;
    the point is a recognisable example of a credit-gated dApp, not a real scoring model.
    """
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=np.log(55), sigma=0.45, size=n).clip(12, 400)
    dti = rng.normal(32, 12, size=n).clip(0, 95)
    history = rng.gamma(shape=3.0, scale=3.5, size=n).clip(0, 45)
    late = rng.poisson(0.6, size=n).clip(0, 12).astype(np.float64)
    utilization = rng.beta(2.2, 3.0, size=n) * 100
    accounts = rng.poisson(5, size=n).clip(0, 30).astype(np.float64)
    logit = (-1.2 - 0.018 * (income - 55) + 0.055 * (dti - 32) - 0.09 * (history - 10) + 0.75 * late
             + 0.03 * (utilization - 42) + 0.04 * (accounts - 5))
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(np.int64)
    x = np.column_stack([income, dti, history, late, utilization, accounts]).astype(np.float64)
    return x, y
