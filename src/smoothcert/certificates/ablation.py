"""L0 certificates of randomized ablation (Levine & Feizi 2020).

Theorem 1: if ``||x - x'||_0 <= rho`` then ``|p_i(x') - p_i(x)| <= Delta(rho)`` for every class,
with ``Delta(rho) = 1 - C(d - rho, k) / C(d, k)``, where ``p_i`` is the probability that the base
classifier returns ``i`` on an input with k of its d pixels retained.  The radii below are the
largest integer ``rho`` satisfying Corollary 1 (Eq. 14), Corollary 2 (Eq. 17) or the
discretised condition of Jia, Wang, Cao, Liu & Gong (ICLR 2022); abstention is a NaN radius,
never radius 0 (radius 0 means "g(x) itself is certified").

Exactness.  ``Delta`` is non-decreasing in ``rho`` and equals 1 at ``rho = d - k + 1``, so each
radius is a vectorised binary search over the integers ``[0, d - k + 1]`` in floating point.  The
float comparison is trusted only when its margin exceeds ``_tolerance`` (a bound on the float
error, about 1e-9); images whose margin at the found radius or the next one is smaller are
decided again with exact rational arithmetic (``fractions.Fraction`` of the given float bounds
and ``math.comb``), so every returned radius is the exact answer for the given ``p`` bounds.

The p bounds passed to the radius functions are assumed to hold with the caller's confidence
``1 - alpha`` ([`smoothcert.certificates.statistics`][smoothcert.certificates.statistics] computes them from vote counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from .checks import (
    FLOAT_ERROR,
    check_alpha,
    check_integer,
    check_probability,
    integer_array,
)
from .statistics import vote_bounds

CERTIFICATES = ("cor1", "cor2", "jia")
"""Names accepted by [`certify_counts`][certify_counts]."""


def _ablation_size(d: int, k: int) -> tuple[int, int]:
    d, k = check_integer(d, "d"), check_integer(k, "k")
    if not 1 <= k <= d:
        raise ValueError(f"the ablation size needs 1 <= k <= d, got k={k} and d={d}")
    return d, k


def check_ablation_size(d: int, k: int) -> None:
    """ValueError unless d and k are integers with ``1 <= k <= d`` (k pixels kept out of d)."""
    _ablation_size(d, k)

# ----------------------------------------------------------------------------- Theorem 1


def _rho(rho: object, d: int) -> np.ndarray:
    array = integer_array(rho, "rho")
    if np.any((array < 0) | (array > d)):
        raise ValueError(f"rho must be an integer L0 distance in [0, d={d}], got {rho!r}")
    return array


def _log_ratio_table(d: int, k: int, rho_max: int) -> np.ndarray:
    """``log(C(d - rho, k) / C(d, k))`` for ``rho = 0..rho_max``: cumulative sums of
    ``log1p(-k / (d - j))``, because ``C(d-rho, k) / C(d, k) = prod_{j<rho} (d-k-j) / (d-j)``."""
    table = np.full(rho_max + 1, -np.inf)
    j = np.arange(min(rho_max, d - k + 1))
    with np.errstate(divide="ignore"):  # the factor with j = d - k is 0
        table[1 : j.size + 1] = np.cumsum(np.log1p(-k / (d - j)))
    table[0] = 0.0
    return table


def log_binom_ratio(rho, d: int, k: int):
    """``log(C(d - rho, k) / C(d, k))`` (Theorem 1); ``-inf`` where ``d - rho < k``.

    Computed as ``sum_{j < rho} log1p(-k / (d - j))`` (the ratio is a product of rho factors
    ``(d-k-j)/(d-j)``).  Each term is accurate to a relative 1e-16 and a running sum of rho
    terms errs by at most about ``1.1e-16 * rho * |result|``; where the result matters for a
    certificate (ratio >= 1/2, |result| <= 0.7) that is below 1e-11 even at ImageNet's d = 50176.
    The lgamma form ``lgamma(d-rho+1) - lgamma(d-rho-k+1) - ...`` cancels terms of size
    ``d log d`` (about 5e5 there) and loses about 1e-10, so it is not used.
    """
    d, k = _ablation_size(d, k)
    rho = _rho(rho, d)
    return _log_ratio_table(d, k, int(rho.max(initial=0)))[rho][()]


def delta(rho: ArrayLike, d: int, k: int):
    """Theorem 1, Eq. 4: ``Delta(rho) = 1 - C(d - rho, k) / C(d, k)``; vectorised over ``rho``.

    Args:
        rho: The number of changed pixels (scalar or array).
        d: Pixels per image.
        k: Pixels each ablation keeps.
    """
    return (0.0 - np.expm1(log_binom_ratio(rho, d, k)))[()]  # 0.0 - : no -0.0 at rho = 0


@lru_cache(maxsize=4096)
def _comb(n: int, k: int) -> int:
    return math.comb(n, k)


def _exact_delta(d: int, k: int, rho: int) -> Fraction:
    return 1 - Fraction(_comb(d - rho, k), _comb(d, k))


# ----------------------------------------------------------------------------- radius search


def _tolerance(d: int, k: int, discretised: bool) -> float:
    """Bound on |float margin - exact margin|: float error of Delta, plus 2/N for Jia et al.'s
    rounding of the p bounds to multiples of 1/N, N = C(d, k) (the float margin skips it)."""
    return FLOAT_ERROR + 1e-15 * d + (2 / _comb(d, k) if discretised else 0.0)


def _largest_rho(
    margin: Callable[[np.ndarray], np.ndarray],
    exact: Callable[[int, Fraction], bool],
    shape: tuple[int, ...],
    d: int,
    k: int,
    discretised: bool = False,
) -> np.ndarray:
    """Largest integer rho in [0, d - k] whose condition holds, NaN where even rho = 0 fails.

    ``margin(Delta)`` is the float margin of the condition for every image (> 0: certified) with
    ``Delta`` of shape ``shape``; ``exact(i, Delta)`` decides it exactly for image i of the
    flattened inputs.  Both must be non-increasing in Delta.
    """
    top = d - k + 1  # Delta(top) = 1: no condition holds there
    deltas = -np.expm1(_log_ratio_table(d, k, top))
    lo = np.full(shape, -1, dtype=np.int64)  # largest rho known to hold (-1: none)
    hi = np.full(shape, top, dtype=np.int64)  # smallest rho known to fail
    while np.any(open_ := hi - lo > 1):
        mid = (lo + hi) // 2
        holds = margin(deltas[mid]) > 0
        lo = np.where(open_ & holds, mid, lo)
        hi = np.where(open_ & ~holds, mid, hi)

    tol = _tolerance(d, k, discretised)
    near = np.abs(margin(deltas[np.maximum(lo, 0)])) < tol
    near &= lo >= 0
    near |= np.abs(margin(deltas[lo + 1])) < tol
    radius = lo.ravel()
    for i in np.flatnonzero(near.ravel()):
        rho = int(radius[i])  # the exact condition is monotone too: walk from the float answer
        if rho >= 0 and not exact(i, _exact_delta(d, k, rho)):
            rho -= 1
            while rho >= 0 and not exact(i, _exact_delta(d, k, rho)):
                rho -= 1
        else:
            while rho + 1 < top and exact(i, _exact_delta(d, k, rho + 1)):
                rho += 1
        radius[i] = rho
    radius = radius.reshape(shape)
    return np.where(radius >= 0, radius, np.nan)[()]


def radius_cor1(p_lower: ArrayLike, d: int, k: int):
    """Corollary 1 (Eq. 14): the largest rho with ``p_lower - Delta(rho) > 0.5``.

    NaN (abstain) where ``p_lower <= 0.5``; radius 0 means only x itself is certified.

    Args:
        p_lower: The lower confidence bound on the top class's probability p_A (scalar or array).
        d: Pixels per image.
        k: Pixels each ablation keeps.
    """
    d, k = _ablation_size(d, k)
    p = check_probability(p_lower, "p_lower")
    flat = p.ravel()
    half = Fraction(1, 2)
    return _largest_rho(
        lambda dlt: p - dlt - 0.5,
        lambda i, dlt: Fraction(float(flat[i])) - dlt > half,
        p.shape,
        d,
        k,
    )


def radius_cor2(p_lower_a: ArrayLike, p_upper_b: ArrayLike, d: int, k: int):
    """Corollary 2 (Eq. 17): the largest rho with ``p_lower_a - Delta > p_upper_b + Delta``.

    ``p_upper_b`` is the largest upper bound over the classes B != A; the bounds must hold
    simultaneously (see [`class_bounds`][class_bounds]).  NaN where no rho >= 0 qualifies.

    Args:
        p_lower_a: The lower bound on the top class's probability.
        p_upper_b: The largest upper bound on another class's probability (simultaneous with it).
        d: Pixels per image.
        k: Pixels each ablation keeps.
    """
    d, k = _ablation_size(d, k)
    pa, pb = np.broadcast_arrays(check_probability(p_lower_a, "p_lower_a"), check_probability(p_upper_b, "p_upper_b"))
    fa, fb = pa.ravel(), pb.ravel()
    return _largest_rho(
        lambda dlt: pa - pb - 2 * dlt,
        lambda i, dlt: Fraction(float(fa[i])) - Fraction(float(fb[i])) > 2 * dlt,
        pa.shape,
        d,
        k,
    )


def _round_up(p: float, n: int) -> int:
    """``ceil(p * N)``: p_i(x) is a multiple of 1/N, so ``p >= p_lower`` implies ``p >= ceil(p_lower N)/N``."""
    return math.ceil(Fraction(p) * n)


def _round_down(p: float, n: int) -> int:
    return math.floor(Fraction(p) * n)


def radius_jia(p_lower_a: ArrayLike, p_upper_b: ArrayLike, d: int, k: int):
    """Jia et al. (ICLR 2022) top-1 certificate: the largest rho with ``p'_A - Delta > p'_B + Delta``.

    ``p'_A = ceil(p_lower_a N) / N`` and ``p'_B = floor(min(p_upper_b, 1 - p_lower_a) N) / N``
    with ``N = C(d, k)``: every ``p_i(x)`` is a count of k-subsets over N, and ``p_B <= 1 - p_A``.
    Equals [`radius_jia_topk`][radius_jia_topk] with ``top=1``.  NaN where no rho >= 0 qualifies.

    Args:
        p_lower_a: The lower bound on the top class's probability.
        p_upper_b: The largest upper bound on another class's probability (simultaneous with it).
        d: Pixels per image.
        k: Pixels each ablation keeps.
    """
    d, k = _ablation_size(d, k)
    pa, pb = np.broadcast_arrays(check_probability(p_lower_a, "p_lower_a"), check_probability(p_upper_b, "p_upper_b"))
    return radius_jia_topk(pa, pb[..., None], d, k, top=1)


def radius_jia_topk(p_lower_label: ArrayLike, p_upper_others: ArrayLike, d: int, k: int, top: int):
    """Largest rho for which the label provably stays among the ``top`` classes of g (Jia et al. 2022).

    ``p_lower_label`` (...,) bounds p_l(x) from below; ``p_upper_others`` (..., m) bounds from
    above every other class (m >= top), all simultaneously.  With ``N = C(d, k)``,
    ``p'_l = ceil(p_lower_label N)/N``, the others' bounds rounded down to multiples of 1/N and
    sorted ``p'_1 >= p'_2 >= ...``, and ``S_t = min(sum_{j=top-t+1}^{top} p'_j, 1 - p'_l)``,
    rho is certified iff for some ``t`` in ``1..top``:

        p'_l - Delta(rho) > (S_t + Delta(rho)) / t.

    Proof (the structure of Jia et al.'s Theorem 1).  Let E be the event that the retained set
    meets the rho changed pixels, ``P(E) <= Delta`` (Theorem 1).  Off E the ablated inputs of x and
    x' coincide, so ``p_l(x') >= p_l(x) - Delta`` and, for any set U of other classes,
    ``sum_U p_j(x') <= sum_U p_j(x) + P(E) <= sum_U p_j(x) + Delta``: the t classes share one
    Delta.  If l left the top ``top`` classes, some ``top`` classes would each have
    ``p_j(x') >= p_l(x')``; the t of them with the smallest upper bounds have bounds summing to
    at most ``sum_{j=top-t+1}^{top} p'_j``, and their true sum is also at most ``1 - p_l(x)``;
    so ``t (p_l(x) - Delta) <= S_t + Delta`` for every t, contradicting the condition.
    For ``top=1`` this is ``p'_l - Delta > min(p'_1, 1 - p'_l) + Delta`` ([`radius_jia`][radius_jia]).

    Args:
        p_lower_label: Lower bounds (...,) on the label's probability.
        p_upper_others: Upper bounds (..., m) on every other class's probability, m >= ``top``.
        d: Pixels per image.
        k: Pixels each ablation keeps.
        top: How many top classes the label must stay among.
    """
    d, k = _ablation_size(d, k)
    top = check_integer(top, "top")
    pl = check_probability(p_lower_label, "p_lower_label")
    others = check_probability(p_upper_others, "p_upper_others")
    if others.ndim < 1 or not 1 <= top <= others.shape[-1]:
        raise ValueError(
            f"top must be in [1, number of other classes]; got top={top} with p_upper_others of shape {others.shape}"
        )
    try:
        shape = np.broadcast_shapes(pl.shape, others.shape[:-1])
    except ValueError:
        raise ValueError(
            f"p_lower_label of shape {pl.shape} does not match p_upper_others of shape {others.shape}"
        ) from None
    pl = np.broadcast_to(pl, shape)
    largest = -np.sort(-np.broadcast_to(others, (*shape, others.shape[-1])), axis=-1)[..., :top]
    t = np.arange(1, top + 1)
    sums = np.minimum(np.cumsum(largest[..., ::-1], axis=-1), (1 - pl)[..., None])  # S_t, t = 1..top

    def margin(dlt: np.ndarray) -> np.ndarray:
        return np.max((t * pl[..., None] - sums - (t + 1) * dlt[..., None]) / (t + 1), axis=-1)

    n = _comb(d, k)
    flat_l, flat_o = pl.reshape(-1), largest.reshape(-1, top)

    def exact(i: int, dlt: Fraction) -> bool:
        label = _round_up(float(flat_l[i]), n)
        partial = 0
        for count, bound in enumerate(flat_o[i, ::-1], start=1):
            partial += _round_down(float(bound), n)
            if count * label - min(partial, n - label) > (count + 1) * dlt * n:
                return True
        return False

    return _largest_rho(margin, exact, shape, d, k, discretised=True)


def max_certifiable_radius(n: int, alpha: float, d: int, k: int):
    """Largest radius Corollary 1 can give with n samples: ``radius_cor1(alpha ** (1/n))``.

    ``alpha ** (1/n)`` is the Clopper-Pearson lower bound when all n votes go to one class
    (Beta(n, 1) has CDF ``x ** n``), so no image can be certified beyond this.

    Args:
        n: Estimation samples.
        alpha: The failure probability of the confidence bound.
        d: Pixels per image.
        k: Pixels each ablation keeps.
    """
    n = check_integer(n, "n")
    if n < 1:
        raise ValueError(f"the number of samples n must be >= 1, got {n}")
    return radius_cor1(check_alpha(alpha) ** (1.0 / n), d, k)


# ----------------------------------------------------------------------------- convenience

def certify_counts(counts: ArrayLike, n: ArrayLike, alpha: float, d: int, k: int, certificate: str = "cor1",
                   selected: ArrayLike | None = None):
    """Certify images from their vote counts: returns ``(predict, p_lower, radius)``.

    ``counts`` (..., C): votes per class of the n estimation samples of each image (each row
    must sum to n).  ``selected`` (...,): the class to certify for each image, chosen
    independently of ``counts`` (Cohen et al.'s CERTIFY picks it from separate selection
    samples); ``None`` certifies the argmax of ``counts`` with bounds made simultaneous over
    classes so that the data-dependent choice stays valid.

    * ``"cor1"`` (Corollary 1): ``p_lower`` is the Clopper-Pearson lower bound of the selected
      class at level ``alpha`` (at ``alpha / C`` with ``selected=None``: all C lower bounds then
      hold jointly).
    * ``"cor2"`` / ``"jia"`` (Corollary 2 / [`radius_jia`][radius_jia]): bounds from
      [`class_bounds`][class_bounds], ``p_upper_b`` the largest upper bound of the other classes.

    ``predict`` is the certified class, or -1 where the radius is NaN (abstain).

    Args:
        counts: Votes (..., C) of the ``n`` estimation samples.
        n: Estimation samples per image (each row of ``counts`` sums to it).
        alpha: The probability that a certificate is wrong is at most ``alpha``.
        d: Pixels per image.
        k: Pixels each ablation keeps.
        certificate: ``"cor1"``, ``"cor2"`` or ``"jia"``.
        selected: The class (...,) to certify, chosen without ``counts``; None: their argmax.
    """
    if certificate not in CERTIFICATES:
        raise ValueError(f"certificate must be one of {CERTIFICATES}, got {certificate!r}")
    cls, p_lower, p_upper_b = vote_bounds(counts, n, alpha, selected, runner_up=certificate != "cor1")
    if certificate == "cor1":
        radius = radius_cor1(p_lower, d, k)
    else:
        radius = (radius_cor2 if certificate == "cor2" else radius_jia)(p_lower, p_upper_b, d, k)
    predict = np.where(np.isnan(radius), -1, cls)
    return predict[()], p_lower[()], radius
