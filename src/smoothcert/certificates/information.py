"""Information per smoothed sample: ablation vs. Lee et al. (2019) noise (Levine & Feizi 2020, Discussion).

Both assume, as the paper does, an original image X uniform over S^d with ``|S| = levels``.
Ablation keeps k pixels exactly (Eq. 20).  Lee et al.'s scheme keeps each pixel with probability
kappa and otherwise replaces it by a uniformly chosen *different* value of S, so pixels carry
Eq. 21's information; the supplement derives it from ``I = d (H(X_o) - H(X_o | Y_o))``.
"""

from __future__ import annotations

import math

from scipy.special import xlogy

from .checks import check_integer


def mutual_information_ablation(k: int, levels: int = 256) -> float:
    """Eq. 20: ``I_ablate = k log2 |S|`` bits; each of the k retained pixels is seen exactly.

    Args:
        k: Pixels each ablation keeps.
        levels: Values per pixel |S|.
    """
    return check_integer(k, "k", 0) * math.log2(check_integer(levels, "levels (|S|)", 2))


def mutual_information_lee(d: int, kappa: float, levels: int = 256) -> float:
    """Eq. 21: ``d (log2|S| + kappa log2 kappa + (1-kappa) log2((1-kappa)/(|S|-1)))`` bits.

    ``0 log 0 = 0``, so ``kappa = 1`` gives ``d log2 |S|`` (every pixel kept).  The information
    vanishes at ``kappa = 1/|S|``, where Y_o is uniform whatever X_o is.

    Args:
        d: Coordinates per image.
        kappa: The probability of keeping a value.
        levels: Values per coordinate |S|.
    """
    d = check_integer(d, "d", 0)
    s = check_integer(levels, "levels (|S|)", 2)
    try:
        kappa = float(kappa)
    except (TypeError, ValueError):
        raise ValueError(f"kappa must be a probability in [0, 1], got {kappa!r}") from None
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must be a probability in [0, 1], got {kappa!r}")
    per_pixel = math.log(s) + xlogy(kappa, kappa) + xlogy(1 - kappa, (1 - kappa) / (s - 1))
    return float(d * max(per_pixel, 0.0) / math.log(2))  # max: round-off below 0 at kappa = 1/|S|
