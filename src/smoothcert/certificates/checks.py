"""Input checks shared by the certificates: each returns the checked value or raises an
[`ArgumentError`][ArgumentError] (a ValueError) naming the argument, the value and the allowed range. Pure numpy."""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

FLOAT_ERROR = 1e-9
"""Margin below which a certificate's float decision is re-done in exact arithmetic; the float
error of Delta (Theorem 1) is at most about ``2.2e-16 * d``, far below this for image-sized d."""


class ArgumentError(ValueError):
    """A value that one argument cannot take. ``message`` is a template with ``{name}`` and
    ``{value}``: ``str(err)`` fills in the Python ``argument`` and the value's repr ("beta must be
    in (0, 1), got 1.5"), [`for_flag`][for_flag] the command-line flag and the value as typed ("--beta
    must be in (0, 1), got 1.5"). The flag is ``flag`` if given (when it is not the argument's
    name, e.g. ``--max`` for ``max_images``), else ``--`` plus the argument with dashes."""

    def __init__(self, argument: str, value: object, message: str, flag: str | None = None) -> None:
        self.argument, self.value, self.message = argument, value, message
        self.flag = flag
        super().__init__(self._fill(argument, repr(value)))

    def _fill(self, name: str, value: str) -> str:
        return self.message.replace("{name}", name).replace("{value}", value)

    def for_flag(self) -> str:
        """The message naming the command-line flag."""
        return self._fill(self.flag or "--" + self.argument.replace("_", "-"), str(self.value))


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float; [`ArgumentError`][ArgumentError] naming ``name`` unless ``0 < alpha < 1``."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ArgumentError(name, alpha, "{name} must be a number in (0, 1), got {value}") from None
    if not 0.0 < value < 1.0:
        raise ArgumentError(name, alpha, "{name} must be in (0, 1), got {value}")
    return value


def check_integer(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as an int; [`ArgumentError`][ArgumentError] unless it is an integer (and ``>= minimum`` if given)."""
    reason = "{name} must be an integer" + ("" if minimum is None else f" >= {minimum}") + ", got {value}"
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentError(name, value, reason) from None
    if minimum is not None and number < minimum:
        raise ArgumentError(name, value, reason)
    return number


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


def check_positive(value: object, name: str) -> float:
    """``value`` as a float; [`ArgumentError`][ArgumentError] unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ArgumentError(name, value, "{name} must be a finite number > 0, got {value}")
    return float(value)


def check_count(name: str, value: object) -> int:
    """``value`` as an int; [`ArgumentError`][ArgumentError] unless it is a positive integer (a sample or class count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(name, value, "{name} must be a positive integer, got {value}")
    return int(value)
