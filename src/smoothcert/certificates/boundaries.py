"""Exact group-sequential boundaries for a binomial proportion, by dynamic programming.

A sequential test of "p <= tau" looks at the vote count ``S_j`` after ``n_1 < ... < n_J``
samples and rejects at the first look with ``S_j >= c_j``. Bonferroni's union over the looks
(the ``looks`` bound of [`smoothcert.certificates.sequential`][smoothcert.certificates.sequential]) ignores that the
looks share their samples; here the boundaries are computed from the exact distribution of the
path instead, as in group-sequential clinical trials (Jennison & Turnbull 2000, ch. 7 and 12): at
p = tau the count at each look, given no crossing so far, is the previous one convolved with a
binomial, and ``c_j`` is the smallest count whose first-crossing probability fits the share of
``alpha`` spent by look j (the error-spending approach of Lan & DeMets 1983). The crossing
probability at p = tau is then at most ``alpha`` exactly, whatever the number of looks, and it
only falls for p < tau (an upper-boundary crossing is an increasing event in the votes).

Futility boundaries are the mirror image: ``f_j`` is the largest count whose first-stop
probability at p = theta fits the share of ``beta`` spent by look j. They decide when to stop,
never what is certified.

All counts are exact integers; the probabilities are computed in floating point (FFT
convolutions, error far below 1e-9), and a boundary is only accepted with that margin.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import binom

MARGIN = 1e-9
"""Relative slack under a spending budget that a boundary's probability must keep (rounding of the convolutions)."""

SLACK = 1e-12
"""Absolute slack likewise: an FFT convolution's rounding error is absolute (about 1e-15 here), so a
budget below it buys no boundary."""


def spent(level: float, looks: np.ndarray, rho: float) -> np.ndarray:
    """The cumulative error spent by each look: ``level (n_j / n_J) ** rho`` (Kim & DeMets' power family)."""
    looks = np.asarray(looks, dtype=float)
    return level * (looks / looks[-1]) ** rho


def _step(distribution: np.ndarray, samples: int, p: float) -> np.ndarray:
    """The count's distribution after ``samples`` more Bernoulli(p) votes."""
    if samples == 0:
        return distribution
    return np.clip(fftconvolve(distribution, binom.pmf(np.arange(samples + 1), samples, p)), 0.0, None)


@lru_cache(maxsize=4096)
def _crossing(tau: float, looks: tuple[int, ...], cumulative: tuple[float, ...]) -> tuple[int, ...]:
    distribution, previous, used, bounds = np.ones(1), 0, 0.0, []
    for look, budget in zip(looks, cumulative):
        distribution = _step(distribution, look - previous, tau)
        tail = np.cumsum(distribution[::-1])[::-1]  # tail[k] = P(S_j >= k, no crossing before)
        fits = np.flatnonzero(tail <= (budget - used) * (1 - MARGIN) - SLACK)
        # else the count past the support: reached only by paths that crossed at an earlier look,
        # so a boundary that spends nothing more (n_j + 1, none, if no look has cut the support)
        bound = int(fits[0]) if len(fits) else len(distribution)
        if bound < len(distribution):
            used += float(tail[bound])
            distribution = distribution[:bound]
        bounds.append(bound)
        previous = look
    return tuple(bounds)


def crossing_bounds(tau: float, looks: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Efficacy boundaries ``c_j`` (``n_j + 1``: no crossing possible at look j) of the test of
    ``p <= tau`` that spends ``cumulative[j]`` of its level by look j; ``P_tau(exists j: S_j >= c_j)``
    is at most ``cumulative[-1]``. Where every path with ``S_j >= c`` has crossed at an earlier look,
    ``c_j`` is at most that ``c``, so a path that reaches a count has crossed by then at the latest
    (what makes boundaries of several thresholds comparable look by look)."""
    return np.array(_crossing(float(tau), tuple(int(m) for m in looks), tuple(float(a) for a in cumulative)))


@lru_cache(maxsize=4096)
def _futility(theta: float, looks: tuple[int, ...], cumulative: tuple[float, ...]) -> tuple[int, ...]:
    distribution, previous, used, bounds = np.ones(1), 0, 0.0, []
    for look, budget in zip(looks, cumulative):
        distribution = _step(distribution, look - previous, theta)
        head = np.cumsum(distribution)  # head[k] = P(S_j <= k, no stop before)
        fits = np.flatnonzero(head <= (budget - used) * (1 - MARGIN))
        bound = int(fits[-1]) if len(fits) else -1
        if bound >= 0:
            used += float(head[bound])
            distribution = distribution.copy()
            distribution[: bound + 1] = 0.0
        bounds.append(bound)
        previous = look
    return tuple(bounds)


def futility_bounds(theta: float, looks: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Futility boundaries ``f_j`` (-1: no stop at look j): stopping at the first ``S_j <= f_j``
    happens with probability at most ``cumulative[-1]`` when p = theta (more often below theta)."""
    return np.array(_futility(float(theta), tuple(int(m) for m in looks), tuple(float(b) for b in cumulative)))


def crossing_probability(bounds: np.ndarray, looks: np.ndarray, p: float) -> float:
    """``P_p(exists j: S_j >= bounds[j])``, computed exactly on the count's distribution (for tests and reports)."""
    distribution, previous, total = np.ones(1), 0, 0.0
    for look, bound in zip(looks, bounds):
        distribution = _step(distribution, int(look) - previous, p)
        if bound <= look:
            total += float(distribution[bound:].sum())
            distribution = distribution[:bound]
        previous = int(look)
    return total
