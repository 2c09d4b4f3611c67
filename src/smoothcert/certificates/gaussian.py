"""L2 certificates of Gaussian randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

The smoothed classifier is ``g(x) = argmax_c P(f(x + eps) = c)`` with ``eps ~ N(0, sigma^2 I)``
added in [0, 1] pixel space (lecture, Eq. 1), so every radius here is in pixel units.
Theorem 1 (lecture): if ``P(f(x + eps) = c_A) >= p_A >= p_B >= max_{c != c_A} P(f(x + eps) = c)``
then ``g(x + delta) = c_A`` for ``||delta||_2 < R = sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))``.
Cohen et al.'s CERTIFY uses ``p_B = 1 - p_A``, i.e. ``R = sigma Phi^-1(p_A)``.

Conventions (as in `smoothcert.certificates`): abstention is a NaN radius.  Cohen et al.
state Theorem 1 for the open ball ``||delta||_2 < R`` (the lecture writes ``<=``), which is
empty for ``R = 0``: with ``p_A = p_B``
(e.g. ``p_A = 0.5`` for Cohen's form) g(x) may be a tie, so these cases abstain.  Cohen et al.'s
code abstains only for ``p_A < 0.5`` and reports radius 0 at exactly 0.5; the difference is
this single point.  Every returned radius is therefore > 0; it is ``inf`` when ``p_A = 1`` (and
``p_B < 1``), since then f = c_A almost everywhere around x and g is constant.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from .checks import check_alpha, check_integer, check_positive, check_probability
from .statistics import vote_bounds

GAUSSIAN_CERTIFICATES = ("cohen", "two-class")
"""Names accepted by [`certify_gaussian`][certify_gaussian]; the first is the default."""


def check_sigma(sigma: float) -> float:
    """Return the noise level ``sigma`` as a float; ValueError unless it is finite and > 0."""
    return check_positive(sigma, "sigma")


def _certified(radius: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """``radius`` where ``margin > 0`` (a class is certified), NaN (abstain) elsewhere."""
    with np.errstate(invalid="ignore"):
        return np.where(margin > 0, radius, np.nan)[()]


def radius_cohen(p_lower: ArrayLike, sigma: float):
    """Cohen et al.'s CERTIFY radius ``sigma * Phi^-1(p_lower)`` (Theorem 1 with ``p_B = 1 - p_A``).

    NaN (abstain) where ``p_lower <= 0.5`` (see the module docstring for 0.5); ``inf`` at 1.
    Vectorised over ``p_lower``.

    Args:
        p_lower: The lower confidence bound on the top class's probability p_A (scalar or array).
        sigma: The noise's standard deviation.
    """
    s = check_sigma(sigma)
    p = check_probability(p_lower, "p_lower")
    return _certified(s * norm.ppf(p), p - 0.5)


def radius_two_class(p_lower_a: ArrayLike, p_upper_b: ArrayLike, sigma: float):
    """Theorem 1 (lecture): ``sigma/2 * (Phi^-1(p_lower_a) - Phi^-1(p_upper_b))``.

    ``p_upper_b`` bounds every class other than A from above; the bounds must hold together.
    NaN where ``p_lower_a <= p_upper_b`` (no positive radius).  Vectorised, broadcasting.

    Args:
        p_lower_a: The lower bound on the top class's probability.
        p_upper_b: The upper bound on every other class's probability (simultaneous with it).
        sigma: The noise's standard deviation.
    """
    s = check_sigma(sigma)
    pa, pb = np.broadcast_arrays(check_probability(p_lower_a, "p_lower_a"), check_probability(p_upper_b, "p_upper_b"))
    with np.errstate(invalid="ignore"):  # inf - inf where both are 0 or both 1: masked below
        radius = s / 2 * (norm.ppf(pa) - norm.ppf(pb))
    return _certified(radius, pa - pb)


def radius_lp(p_lower_a: ArrayLike, p_upper_b: ArrayLike, sigma: float, d: int, p: float):
    """L_p radius of Gaussian smoothing for ``p >= 2`` (lecture, "Gaussian Smoothing for L_P Attacks"):
    ``r_p = sigma / (2 d^(1/2 - 1/p)) * (Phi^-1(p_lower_a) - Phi^-1(p_upper_b))``.

    ``||delta||_2 <= d^(1/2 - 1/p) ||delta||_p``, so the L_p ball of radius ``r_p`` lies in the
    L2 ball of [`radius_two_class`][radius_two_class]; ``p = 2`` gives that radius, ``p = inf`` divides it by
    ``sqrt(d)``.  ``d`` is the number of input scalars the noise is added to (C*H*W, not the
    pixel count of ablation).  NaN where ``p_lower_a <= p_upper_b``.

    Args:
        p_lower_a: The lower bound on the top class's probability.
        p_upper_b: The upper bound on every other class's probability (simultaneous with it).
        sigma: The noise's standard deviation.
        d: Input scalars the noise is added to (C*H*W).
        p: The norm, ``p >= 2`` (``np.inf`` allowed).
    """
    dim = check_integer(d, "d", 1)
    try:
        order = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a number >= 2, got {p!r}") from None
    if not order >= 2.0:  # also rejects NaN
        raise ValueError(f"this certificate holds for L_p norms with p >= 2, got p={p!r}")
    return radius_two_class(p_lower_a, p_upper_b, sigma) / dim ** (0.5 - 1.0 / order)


def radius_lipschitz(p_a: ArrayLike, p_b: ArrayLike, lipschitz: float):
    """Theorem 0 (lecture): an L-Lipschitz ``f: R^d -> [0, 1]^K`` keeps its top class within
    ``||delta||_2 <= (P_A - P_B) / (2L)``, with ``P_A`` the top and ``P_B`` the runner-up score.

    Theorem 1 is this applied to ``Phi^-1(f_hat)``, which is ``1/sigma``-Lipschitz.  NaN where
    ``P_A <= P_B``.  Vectorised, broadcasting.

    Args:
        p_a: The top class's score P_A.
        p_b: The runner-up's score P_B.
        lipschitz: The Lipschitz constant L of ``f``.
    """
    lip = check_positive(lipschitz, "the Lipschitz constant L")
    pa, pb = np.broadcast_arrays(check_probability(p_a, "p_a"), check_probability(p_b, "p_b"))
    return _certified((pa - pb) / (2 * lip), pa - pb)


def max_gaussian_radius(n: int, alpha: float, sigma: float):
    """Largest radius CERTIFY can return with n samples: ``sigma * Phi^-1(alpha^(1/n))``.

    ``alpha^(1/n)`` is the Clopper-Pearson lower bound when all n votes go to one class
    (3.81 sigma at n = 100,000, alpha = 0.001); NaN when even that is <= 0.5 (n too small).

    Args:
        n: Estimation samples.
        alpha: The failure probability of the confidence bound.
        sigma: The noise's standard deviation.
    """
    samples = check_integer(n, "the number of samples n", 1)
    return radius_cohen(check_alpha(alpha) ** (1.0 / samples), sigma)


def certify_gaussian(counts: ArrayLike, n: ArrayLike, alpha: float, sigma: float, certificate: str = "cohen",
                     selected: ArrayLike | None = None):
    """Certify images from their vote counts under Gaussian noise: ``(predict, p_lower, radius)``.

    Mirrors [`smoothcert.certificates.certify_counts`][smoothcert.certificates.certify_counts].  ``counts`` (..., C): votes of the
    n estimation samples (rows sum to n); ``selected`` (...,): the class to certify, chosen
    independently of ``counts`` (Cohen et al.'s selection samples); ``None`` certifies the
    argmax with bounds made simultaneous over classes.

    * ``"cohen"``: ``p_lower`` is the Clopper-Pearson lower bound of the class at level ``alpha``
      (``alpha / C`` with ``selected=None``), radius [`radius_cohen`][radius_cohen] (CERTIFY).
    * ``"two-class"``: bounds from [`class_bounds`][smoothcert.certificates.class_bounds], ``p_B`` the
      largest upper bound of the other classes clipped to ``1 - p_lower`` (valid because
      ``p_B <= 1 - p_A`` and the bounds hold jointly), radius [`radius_two_class`][radius_two_class].

    ``predict`` is the certified class, or -1 where the radius is NaN (abstain).

    Args:
        counts: Votes (..., C) of the ``n`` estimation samples.
        n: Estimation samples per image (each row of ``counts`` sums to it).
        alpha: The probability that a certificate is wrong is at most ``alpha``.
        sigma: The noise's standard deviation.
        certificate: ``"cohen"`` or ``"two-class"``.
        selected: The class (...,) to certify, chosen without ``counts``; None: their argmax.
    """
    if certificate not in GAUSSIAN_CERTIFICATES:
        raise ValueError(f"certificate must be one of {GAUSSIAN_CERTIFICATES}, got {certificate!r}")
    s = check_sigma(sigma)
    cls, p_lower, p_upper_b = vote_bounds(counts, n, alpha, selected, runner_up=certificate == "two-class")
    if certificate == "cohen":
        radius = radius_cohen(p_lower, s)
    else:
        radius = radius_two_class(p_lower, np.minimum(p_upper_b, 1.0 - p_lower), s)
    predict = np.where(np.isnan(radius), -1, cls)
    return predict[()], p_lower[()], radius
