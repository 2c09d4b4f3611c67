"""Input checks shared by the certificates: each returns the checked value or raises a ValueError
naming the argument, the value and the allowed range. Pure numpy. The scalar checks
(``check_alpha``, ``check_integer``, ``check_count``, ``check_positive``) and
[`ArgumentError`][smoothcert.errors.ArgumentError] live in [`smoothcert.errors`][smoothcert.errors]
and are imported from here too."""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, check_alpha, check_count, check_integer, check_positive

__all__ = ["FLOAT_ERROR", "ArgumentError", "check_alpha", "check_count", "check_counts", "check_integer",
           "check_positive", "check_probability", "integer_array"]

FLOAT_ERROR = 1e-9
"""Margin below which a certificate's float decision is re-done in exact arithmetic; the float
error of Delta (Theorem 1) is at most about ``2.2e-16 * d``, far below this for image-sized d."""


def integer_array(values: object, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array) & (array == np.round(array))):
            raise ValueError(f"{name} must hold integers, got {values!r}")
        array = array.astype(np.int64)
    return array.astype(np.int64, copy=False)


def check_counts(count: object, n: object) -> tuple[np.ndarray, np.ndarray]:
    """Integer arrays ``count`` and ``n`` broadcast together, with ``0 <= count <= n``, ``n >= 1``."""
    c, total = np.broadcast_arrays(integer_array(count, "count"), integer_array(n, "n"))
    if np.any(total < 1):
        raise ValueError(f"the number of samples n must be >= 1, got {n!r}")
    if np.any(c < 0):
        raise ValueError(f"counts must be >= 0, got {count!r}")
    if np.any(c > total):
        raise ValueError(f"a count exceeds the number of samples n: count={count!r}, n={n!r}")
    return c, total


def check_probability(p: object, name: str) -> np.ndarray:
    """``p`` as a float array; ValueError unless every entry lies in [0, 1]."""
    array = np.asarray(p, dtype=float)
    if not np.all((array >= 0.0) & (array <= 1.0)):  # also rejects NaN
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return array
