"""Reproductions of published tables and figures at a chosen scale, our numbers beside the papers'.

``import smoothcert`` does not import this package: ``smoothcert.reproduce`` and the other
reproductions it names load it on first use. One module per reproduction:

- ``table1``: Levine & Feizi (2020) Table 1 (k sweep) and Table 8 (NULL encodings), ``reproduce``;
  ``demo``, the README's main job (Table 1's k = 45 row), then fixed against adaptive sampling
- ``figure1``: Levine & Feizi (2020) Figure 1, ablated samples with the base classifier's labels
- ``smoothing``: Gaussian training methods beside Jeong & Shin (2020) supplement Table 2
- ``l0_consistency``: randomized ablation trained with and without consistency regularization
- ``table7``: Lee et al.'s (2019) noise against randomized ablation, Levine & Feizi (2020) Table 7
- ``denoised``: denoised smoothing (MSE, stability, DE-CROP supplement Table 1) and denoised ablation
- ``patch``: column smoothing against patches (Levine & Feizi, NeurIPS 2020)
- ``partition``: partition voting (Hammoudeh & Lowd, AAAI 2024) against randomized ablation

``published`` holds the papers' numbers, ``common`` the shared train, certify and table steps, and
:func:`run` is ``smoothcert reproduce TABLE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..certificates import check_alpha
from ..checkpoint import read_config
from .common import check_positive
from .denoised import reproduce_denoised
from .figure1 import figure_samples
from .l0_consistency import reproduce_l0_consistency
from .partition import reproduce_partition
from .patch import reproduce_patch
from .published import (
    CONSISTENCY_MNIST,
    CONSISTENCY_RADII,
    DECROP_TABLE1,
    DENOISED_RADII,
    FPA_MNIST_MEDIAN,
    PATCH_CIFAR10,
    SALMAN_CIFAR10,
    TABLE1,
    TABLE7,
    TABLE8,
)
from .smoothing import reproduce_smoothing
from .table1 import compare_sampling, demo, reproduce
from .table7 import reproduce_table7

# the tables of ``smoothcert reproduce TABLE`` (and of :func:`run`)
TABLES = ("table1", "table7", "table8", "smoothing", "l0-consistency", "denoised", "patch", "partition")

__all__ = [
    "CONSISTENCY_MNIST", "CONSISTENCY_RADII", "DECROP_TABLE1", "DENOISED_RADII", "FPA_MNIST_MEDIAN", "PATCH_CIFAR10",
    "SALMAN_CIFAR10", "TABLE1", "TABLE7", "TABLE8", "TABLES", "compare_sampling", "demo", "figure_samples", "reproduce",
    "reproduce_denoised", "reproduce_l0_consistency", "reproduce_partition", "reproduce_patch", "reproduce_smoothing",
    "reproduce_table7", "run",
]


def run(
    table: str, *, out: str | Path | None = None, max_images: int | None = None, n0: int | None = None,
    n: int | None = None, alpha: float | None = None, epochs: int | None = None, recipe: str = "fast",
    ks: Sequence[int] | None = None, kappas: Sequence[float] | None = None, sigmas: Sequence[float] | None = None,
    groups: Sequence[int] | None = None, classifier: str | Path | None = None,
    ablation_checkpoint: str | Path | None = None, seed: int = 0, device: str = "auto", progress: bool = True,
) -> str:
    """``smoothcert reproduce TABLE``: check the options before anything runs, then reproduce ``table``
    (one of :data:`TABLES`) and return its markdown. None (or an empty list) keeps the reproduction's
    default; an option the table does not take is ignored (``recipe``: smoothing, denoised, patch and
    partition use ``fast``). Errors name the command-line flags (``max_images`` is ``--max``)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    check_positive(max_images=max_images, n0=n0, n=n, epochs=epochs)
    if alpha is not None:
        check_alpha(alpha)
    given = {"max_images": max_images, "n0": n0, "n": n, "alpha": alpha, "epochs": epochs, "out": out}
    shared = {k: v for k, v in given.items() if v is not None}
    shared.update(seed=seed, device=device, progress=progress)
    if table == "denoised":
        if epochs is not None:
            raise ValueError("reproduce denoised has its own schedules (see reproductions.reproduce_denoised); "
                             "drop --epochs")
        if classifier is not None:
            read_config(classifier)  # a given classifier must exist (without it one is trained under --out)
        return reproduce_denoised(**shared, **({"classifier": classifier} if classifier else {}))
    if table == "smoothing":
        return reproduce_smoothing(**shared, **({"sigmas": sigmas} if sigmas else {}))
    if table == "table7":
        chosen = {"ks": ks, "kappas": kappas, "ablation_checkpoint": ablation_checkpoint}
        return reproduce_table7(**shared, recipe=recipe, **{k: v for k, v in chosen.items() if v is not None})
    if table == "patch":
        if {"n0", "n", "alpha"} & shared.keys():
            raise ValueError("reproduce patch certifies exactly: drop --n0, --n and --alpha")
        return reproduce_patch(**shared)
    if table == "partition":
        return reproduce_partition(**shared, **({"groups": groups} if groups else {}),
                                   **({"classifier": classifier} if classifier else {}))
    if table == "l0-consistency":
        return reproduce_l0_consistency(**shared, recipe=recipe)
    return reproduce(table, **shared, recipe=recipe, ks=ks)
