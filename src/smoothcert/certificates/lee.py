"""The tight L0 certificate of Lee, Yuan, Chang & Jaakkola (NeurIPS 2019) for discrete noise.

Noise ([`smoothcert.noises.Lee`][smoothcert.noises.Lee]): each of the d coordinates (channel values) is kept with
probability kappa and otherwise replaced by one of the other K - 1 values uniformly, so a value
other than x_i has probability ``beta = (1 - kappa) / (K - 1)``.

Certificate.  Let x' differ from x in r coordinates.  The other d - r coordinates are noised
alike under x and x', so the likelihood ratio of a noisy z depends only on the r changed ones: if
u of them equal x, v equal x' and w = r - u - v neither, then ``P_x(z) / P_x'(z) =
(kappa / beta) ** (u - v)``.  With ``t = v - u`` the regions of constant ratio have masses

    P_x(t) = sum_{v - u = t} multinomial(r; u, v, w) kappa^u beta^v ((K - 2) beta)^w,

the r-fold convolution of the one-coordinate law ``{-1: kappa, 0: (K-2) beta, +1: beta}``, and
``P_x'(t) = P_x(-t)``.  By the Neyman-Pearson lemma the classifier that has probability p under
x and the least under x' fills the regions in increasing order of ``P_x'/P_x = (kappa/beta)^t``
(the last one partly); the class is certified at r when that least mass exceeds 1/2.  The mass is
continuous and strictly increasing in p, so this holds iff ``p > threshold(r)``, the p at which
it equals 1/2.  ``threshold`` is non-decreasing in r (a test that ignores one changed coordinate
sees the experiment of r - 1 changes), and the radius is the largest r <= d with
``p_lower > threshold(r)``.  Levine & Feizi (2020, Discussion) quote ``threshold(1) = .596`` for
kappa = 0.1 and K = 256; the certificate does not depend on d beyond ``r <= d``.

Exactness, as in `smoothcert.certificates`: thresholds are computed in floating point
(sums of positive terms, error below ``1e-14 (r + 1)``); a comparison whose margin is below
``FLOAT_ERROR`` plus that is decided again with integers (masses times ``M^r``, where kappa is
the exact rational value of the given float and M its denominator times K - 1), so every returned
radius is the exact answer for the given ``p_lower``.  Conventions as in
`smoothcert.certificates`: abstention is a NaN radius; radius 0 means only x is certified.
"""

from __future__ import annotations

import numbers
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from .checks import FLOAT_ERROR, check_alpha, check_integer, check_probability
from .statistics import vote_bounds

LEE_CERTIFICATES = ("lee",)
"""Names accepted by the Lee noise's ``check_certificate``; the first is the default."""


def check_kappa(kappa: object) -> float:
    """``kappa`` as a float; ValueError unless it is a number with ``0 < kappa < 1``."""
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not 0.0 < float(kappa) < 1.0:
        raise ValueError(f"kappa (the probability of keeping a value) must be a number in (0, 1), got {kappa!r}")
    return float(kappa)


def check_levels(levels: object) -> int:
    """``levels`` (K, the number of values a coordinate takes) as an int; ValueError unless >= 2."""
    return check_integer(levels, "levels (K)", 2)


def _parameters(levels: object, kappa: object) -> tuple[int, float]:
    return check_levels(levels), check_kappa(kappa)


# ----------------------------------------------------------------------------- region masses


def region_masses(r: int, levels: int, kappa: float) -> np.ndarray:
    """``P_x(t)`` for ``t = v - u = -r..r`` (index ``t + r``): the law of t under x (module docstring)."""
    levels, kappa = _parameters(levels, kappa)
    r = check_integer(r, "r", 0)
    masses = np.ones(1)
    for _ in range(r):
        masses = _step(masses, levels, kappa)
    return masses


def _step(masses: np.ndarray, levels: int, kappa: float) -> np.ndarray:
    """One more changed coordinate: t moves by -1 (kept), 0 (another value) or +1 (the value of x')."""
    beta = (1.0 - kappa) / (levels - 1)
    return np.convolve(masses, [kappa, (levels - 2) * beta, beta])


def _threshold(masses, ascending: bool, total, divide):
    """The p at which the least mass under x' of a set with mass p under x is half of ``total``
    (Neyman-Pearson), in units of ``total``.

    ``masses`` are the ``P_x(t)`` times ``total``; ``P_x'(t)`` is their reverse.  Regions are taken
    in increasing likelihood ratio (t ascending iff ``ascending``).  The same code runs on floats
    (``total = 1.0``, ``divide`` float division) and on integers (``total = M^r``, ``divide = Fraction``).
    """
    under_x = list(masses) if ascending else list(masses)[::-1]
    under_x_prime = under_x[::-1]
    filled_x = filled_x_prime = 0
    for a, b in zip(under_x, under_x_prime, strict=True):
        if 2 * (filled_x_prime + b) >= total:  # the crossing region has b > 0
            return filled_x + divide((total - 2 * filled_x_prime) * a, 2 * b)
        filled_x, filled_x_prime = filled_x + a, filled_x_prime + b
    raise AssertionError("the masses under x' sum to more than half of the total")


def _ascending(levels: int, kappa: float) -> bool:
    """Is the ratio ``(kappa / beta)^t`` non-decreasing in t, i.e. ``kappa >= beta``?"""
    return Fraction(kappa) * (levels - 1) >= 1 - Fraction(kappa)


def _divide(x: float, y: float) -> float:
    return x / y


def lee_threshold(r: int, levels: int, kappa: float) -> float:
    """The p_lower that Lee et al.'s certificate needs to exceed for L0 radius r (float; 0.5 at r = 0).

    Args:
        r: The L0 radius (changed coordinates).
        levels: Values per coordinate K.
        kappa: The probability of keeping a value.
    """
    levels, kappa = _parameters(levels, kappa)
    return float(_threshold(region_masses(r, levels, kappa), _ascending(levels, kappa), 1.0, _divide))


_LAST_EXACT: dict[tuple[int, float], tuple[int, list[int]]] = {}
"""The last integer masses computed per (K, kappa): radius walks ask for r, r + 1, ... in turn."""


def _exact_masses(r: int, levels: int, kappa: float) -> list[int]:
    """``M^r P_x(t)`` as integers, ``M = m (K - 1)`` with ``kappa = numerator / m`` exactly."""
    exact = Fraction(kappa)
    keep, each = exact.numerator * (levels - 1), exact.denominator - exact.numerator  # M kappa, M beta
    start, masses = _LAST_EXACT.get((levels, kappa), (0, [1]))
    if start > r:
        start, masses = 0, [1]
    for _ in range(start, r):
        new = [0] * (len(masses) + 2)
        for i, value in enumerate(masses):
            new[i] += value * keep
            new[i + 1] += value * (levels - 2) * each
            new[i + 2] += value * each
        masses = new
    _LAST_EXACT[levels, kappa] = (r, masses)
    return masses


def exact_threshold(r: int, levels: int, kappa: float) -> Fraction:
    """[`lee_threshold`][lee_threshold] in exact rational arithmetic, for the exact value of the float kappa.

    Args:
        r: The L0 radius (changed coordinates).
        levels: Values per coordinate K.
        kappa: The probability of keeping a value.
    """
    levels, kappa = _parameters(levels, kappa)
    r = check_integer(r, "r", 0)
    scale = (Fraction(kappa).denominator * (levels - 1)) ** r
    return _threshold(_exact_masses(r, levels, kappa), _ascending(levels, kappa), scale, Fraction) / scale


# ----------------------------------------------------------------------------- radius


def _tolerance(r: int) -> float:
    return FLOAT_ERROR + 1e-14 * (r + 1)


def _thresholds(levels: int, kappa: float, p_max: float, d: int) -> np.ndarray:
    """Float thresholds for r = 0, 1, ... up to the first one above ``p_max`` (plus tolerance) or r = d."""
    ascending = _ascending(levels, kappa)
    masses, values = np.ones(1), [0.5]
    while len(values) <= d and values[-1] <= p_max + _tolerance(len(values)):
        masses = _step(masses, levels, kappa)
        values.append(float(_threshold(masses, ascending, 1.0, _divide)))
    return np.maximum.accumulate(values)  # exactly non-decreasing; the float error is below the tolerance


def radius_lee(p_lower: ArrayLike, d: int, levels: int, kappa: float):
    """Largest L0 radius r <= d (in coordinates) with ``p_lower > threshold(r)``; NaN where
    ``p_lower <= 1/2`` (abstain), d where ``p_lower = 1`` (every threshold is below 1).
    Vectorised over ``p_lower``; exact (module docstring).

    Args:
        p_lower: The lower confidence bound on the top class's probability p_A (scalar or array).
        d: Coordinates per image (channel values, C*H*W): the largest radius.
        levels: Values per coordinate K.
        kappa: The probability of keeping a value.
    """
    levels, kappa = _parameters(levels, kappa)
    d = check_integer(d, "d", 1)
    p = check_probability(p_lower, "p_lower")
    certain = p == 1.0
    thresholds = _thresholds(levels, kappa, float(p[~certain].max(initial=0.0)), d)
    radius = np.searchsorted(thresholds, p, side="left") - 1  # thresholds[r] < p for r <= radius
    last = len(thresholds) - 1
    at = np.abs(p - thresholds[np.maximum(radius, 0)]) < _tolerance(last)
    above = np.abs(p - thresholds[np.minimum(radius + 1, last)]) < _tolerance(last)
    flat_p, flat_r = p.ravel(), radius.ravel()
    for i in np.flatnonzero(((at & (radius >= 0) | above & (radius < d)) & ~certain).ravel()):
        exact_p = Fraction(float(flat_p[i]))
        rho = int(flat_r[i])  # the exact condition is monotone in r: walk from the float answer
        while rho >= 0 and not exact_p > exact_threshold(rho, levels, kappa):
            rho -= 1
        while rho < d and exact_p > exact_threshold(rho + 1, levels, kappa):
            rho += 1
        flat_r[i] = rho
    radius = np.where(certain, d, flat_r.reshape(p.shape))
    return np.where(radius >= 0, radius, np.nan)[()]


def max_certifiable_radius_lee(n: int, alpha: float, d: int, levels: int, kappa: float):
    """Largest radius Lee et al.'s certificate can give with n samples: ``radius_lee(alpha ** (1/n))``
    (the Clopper-Pearson lower bound when all n votes agree).

    Args:
        n: Estimation samples.
        alpha: The failure probability of the confidence bound.
        d: Coordinates per image (C*H*W).
        levels: Values per coordinate K.
        kappa: The probability of keeping a value.
    """
    n = check_integer(n, "n", 1)
    return radius_lee(check_alpha(alpha) ** (1.0 / n), d, levels, kappa)


def certify_lee(counts: ArrayLike, n: ArrayLike, alpha: float, d: int, levels: int, kappa: float,
                selected: ArrayLike | None = None):
    """Certify images from vote ``counts`` (..., C): returns ``(predict, p_lower, radius)``.

    ``p_lower`` is the Clopper-Pearson lower bound of the ``selected`` class (chosen independently
    of ``counts``, as in CERTIFY) at level ``alpha``, or of the argmax at ``alpha / C``, as in
    [`smoothcert.certificates.certify_counts`][smoothcert.certificates.certify_counts]; ``predict`` is -1 where the radius is NaN.

    Args:
        counts: Votes (..., C) of the ``n`` estimation samples.
        n: Estimation samples per image (each row of ``counts`` sums to it).
        alpha: The probability that a certificate is wrong is at most ``alpha``.
        d: Coordinates per image (C*H*W).
        levels: Values per coordinate K.
        kappa: The probability of keeping a value.
        selected: The class (...,) to certify, chosen without ``counts``; None: their argmax.
    """
    cls, p_lower, _ = vote_bounds(counts, n, alpha, selected)
    radius = radius_lee(p_lower, d, levels, kappa)
    return np.where(np.isnan(radius), -1, cls)[()], p_lower[()], radius

