"""Confidence bounds on the class probabilities of a smoothed classifier, from vote counts.

One-sided Clopper-Pearson bounds computed with ``scipy.stats.beta`` (as in Cohen, Rosenfeld &
Kolter 2019, CERTIFY), made simultaneous over classes with Bonferroni's inequality where a
certificate needs several at once (Levine & Feizi 2020, Corollary 2 and its Discussion).
Every threat model's certificate starts from these bounds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta

from .checks import check_alpha, check_counts, integer_array


def clopper_pearson_lower(count: ArrayLike, n: ArrayLike, alpha: ArrayLike):
    """One-sided Clopper-Pearson lower bound on a binomial proportion at level ``alpha``.

    ``Beta.ppf(alpha, count, n - count + 1)``; 0 when ``count == 0``.  Equals statsmodels'
    ``proportion_confint(count, n, alpha=2 * alpha, method="beta")[0]``.  Vectorised.

    Args:
        count: Successes (scalar or array).
        n: Trials.
        alpha: The probability that the bound is above the true proportion.
    """
    a = check_alpha(alpha)
    c, total = check_counts(count, n)
    lower = beta.ppf(a, np.maximum(c, 1), total - c + 1)
    return np.where(c == 0, 0.0, lower)[()]


def clopper_pearson_upper(count: ArrayLike, n: ArrayLike, alpha: ArrayLike):
    """One-sided Clopper-Pearson upper bound at level ``alpha``: ``Beta.ppf(1 - alpha, count + 1, n - count)``.

    Computed as ``Beta.isf(alpha, ...)``, which keeps its accuracy when ``alpha`` is tiny;
    1 when ``count == n``.  Vectorised.

    Args:
        count: Successes (scalar or array).
        n: Trials.
        alpha: The probability that the bound is below the true proportion.
    """
    a = check_alpha(alpha)
    c, total = check_counts(count, n)
    upper = beta.isf(a, c + 1, np.maximum(total - c, 1))
    return np.where(c == total, 1.0, upper)[()]


def class_bounds(counts: ArrayLike, alpha: float, selected: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class lower and upper bounds on ``p_i(x)`` that hold simultaneously with prob. >= 1 - alpha.

    ``counts`` (..., C) are the votes per class of ``n = counts.sum(-1)`` samples.  Corollary 2
    needs ``lower(A)`` and ``upper(B)`` for every ``B != A`` at once (its Discussion), so the
    failure probability is split with Bonferroni's inequality:

    * ``selected=None``: all 2C one-sided bounds, each at level ``alpha / (2C)``.  They hold
      jointly, so the class A may be chosen after looking at ``counts`` (e.g. their argmax).
    * ``selected`` (...,) class indices fixed independently of ``counts`` (Cohen et al.'s
      separate selection samples, or the true label): only the C bounds ``lower(A)`` and
      ``upper(B), B != A`` are needed, each at level ``alpha / C``; the unused entries are the
      trivially valid ``lower(B) = 0`` and ``upper(A) = 1``.

    Args:
        counts: Votes (..., C) per class.
        alpha: The probability that any of the bounds fails.
        selected: The class (...,) fixed without ``counts``, or None.

    Returns:
        ``(lower, upper)``, each (..., C).
    """
    counts = integer_array(counts, "counts")
    if counts.ndim < 1 or counts.shape[-1] < 1:
        raise ValueError(f"counts must have shape (..., C) with C >= 1 classes, got shape {counts.shape}")
    a = check_alpha(alpha)
    classes = counts.shape[-1]
    n = counts.sum(-1, keepdims=True)
    if selected is None:
        level = a / (2 * classes)
        return clopper_pearson_lower(counts, n, level), clopper_pearson_upper(counts, n, level)
    is_selected = np.arange(classes) == class_index(selected, counts.shape)[..., None]
    level = a / classes
    lower = np.where(is_selected, clopper_pearson_lower(counts, n, level), 0.0)
    upper = np.where(is_selected, 1.0, clopper_pearson_upper(counts, n, level))
    return lower, upper


def class_index(selected: object, counts_shape: tuple[int, ...]) -> np.ndarray:
    index = integer_array(selected, "selected")
    if np.any((index < 0) | (index >= counts_shape[-1])):
        raise ValueError(f"selected must be class indices in [0, {counts_shape[-1]}), got {selected!r}")
    try:
        return np.broadcast_to(index, counts_shape[:-1])
    except ValueError:
        raise ValueError(f"selected of shape {index.shape} does not match counts of shape {counts_shape}") from None


def vote_bounds(counts, n, alpha: float, selected=None, runner_up: bool = False):
    """The class to certify and its confidence bounds, from vote ``counts`` (..., C) of n samples.

    Returns ``(cls, p_lower, p_upper_b)``: ``cls`` is ``selected`` (chosen independently of
    ``counts``, as in CERTIFY) or the argmax; ``p_lower`` is its Clopper-Pearson lower bound at
    level ``alpha`` (``alpha / C`` for the argmax, so that all C candidates hold jointly). With
    ``runner_up`` the bounds come from [`class_bounds`][class_bounds] instead and ``p_upper_b`` is the
    largest upper bound of the other classes, simultaneously valid; otherwise it is None.
    """
    a = check_alpha(alpha)
    counts = integer_array(counts, "counts")
    minimum = 2 if runner_up else 1
    if counts.ndim < 1 or counts.shape[-1] < minimum:
        raise ValueError(f"counts must have shape (..., C) with C >= {minimum}, got {counts.shape}")
    total = integer_array(n, "n")
    check_counts(counts, total[..., None])  # 0 <= counts <= n
    if np.any(counts.sum(-1) != total):
        raise ValueError(f"every row of counts must sum to n={n!r}")
    classes = counts.shape[-1]
    cls = counts.argmax(-1) if selected is None else class_index(selected, counts.shape)
    if not runner_up:
        level = a / classes if selected is None else a
        top = np.take_along_axis(counts, cls[..., None], -1)[..., 0]
        return cls, np.asarray(clopper_pearson_lower(top, total, level)), None
    lower, upper = class_bounds(counts, a, selected=None if selected is None else cls)
    is_cls = np.arange(classes) == cls[..., None]
    return cls, lower[is_cls].reshape(cls.shape), np.where(is_cls, -np.inf, upper).max(-1)
