"""Certificates, one module per threat model, mirroring [`smoothcert.noises`][smoothcert.noises] by name.

- [`ablation`][.ablation]: randomized ablation's L0 radii (Levine & Feizi 2020, Theorem 1, Corollaries
  1 and 2; Jia et al. 2022);
- [`gaussian`][.gaussian]: Gaussian smoothing's L2 radii (Cohen, Rosenfeld & Kolter 2019, Theorem 1);
- [`lee`][.lee]: the L0 certificate of Lee et al.'s discrete noise (Levine & Feizi 2020, Table 7);
- [`bands`][.bands] and [`partition`][.partition]: exact patch and L0 certificates of deterministic votes
  (shared vote logic in [`votes`][.votes]);
- [`information`][.information]: mutual information per sample (Levine & Feizi 2020, Eq. 20-21);
- shared statistics: [`statistics`][.statistics] (Clopper-Pearson, simultaneous class bounds) and
  [`sequential`][.sequential] (the bounds of adaptive sampling); input checks in [`checks`][.checks].

Everything here is pure numpy/scipy: importing it does not build a model.
"""

from .ablation import (
    CERTIFICATES,
    certify_counts,
    check_ablation_size,
    delta,
    log_binom_ratio,
    max_certifiable_radius,
    radius_cor1,
    radius_cor2,
    radius_jia,
    radius_jia_topk,
)
from .bands import largest_certified_patch, patch_certified, patch_delta
from .checks import (
    FLOAT_ERROR,
    ArgumentError,
    check_alpha,
    check_count,
    check_integer,
    check_positive,
    check_probability,
)
from .gaussian import (
    GAUSSIAN_CERTIFICATES,
    certify_gaussian,
    max_gaussian_radius,
    radius_cohen,
    radius_lipschitz,
    radius_lp,
    radius_two_class,
)
from .information import mutual_information_ablation, mutual_information_lee
from .lee import (
    LEE_CERTIFICATES,
    certify_lee,
    exact_threshold,
    lee_threshold,
    max_certifiable_radius_lee,
    radius_lee,
)
from .partition import partition_radius
from .statistics import (
    class_bounds,
    clopper_pearson_lower,
    clopper_pearson_upper,
    vote_bounds,
)
from .votes import certified_against, top_two

__all__ = [
    "CERTIFICATES",
    "FLOAT_ERROR",
    "GAUSSIAN_CERTIFICATES",
    "LEE_CERTIFICATES",
    "ArgumentError",
    "certified_against",
    "certify_counts",
    "certify_gaussian",
    "certify_lee",
    "check_ablation_size",
    "check_alpha",
    "check_count",
    "check_integer",
    "check_positive",
    "check_probability",
    "class_bounds",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "delta",
    "exact_threshold",
    "largest_certified_patch",
    "lee_threshold",
    "log_binom_ratio",
    "max_certifiable_radius",
    "max_certifiable_radius_lee",
    "max_gaussian_radius",
    "mutual_information_ablation",
    "mutual_information_lee",
    "partition_radius",
    "patch_certified",
    "patch_delta",
    "radius_cohen",
    "radius_cor1",
    "radius_cor2",
    "radius_jia",
    "radius_jia_topk",
    "radius_lee",
    "radius_lipschitz",
    "radius_lp",
    "radius_two_class",
    "top_two",
    "vote_bounds",
]
